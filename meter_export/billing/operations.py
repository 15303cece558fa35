"""Order, draft, historic and range: Distil's sales-order operations.

The thin shell around the pure core: it reads rated usage and the orders in
one transaction, lets periods/lines decide, and stores an order once.
"""

import logging

from meter_export import utils
from meter_export.billing import errors
from meter_export.billing import lines
from meter_export.billing import periods
from meter_export.billing import usage
from meter_export.storage import orders as store

LOG = logging.getLogger(__name__)


class Billing:
    """The operations over one database engine."""

    def __init__(self, engine, currency="EUR", clock=utils.utcnow):
        self.engine, self.currency, self.clock = engine, currency, clock

    def _end(self, text, default, now):
        end = default if text is None else periods.parse_instant(text, "end")
        return periods.check_not_future(end, now, "end")

    def _compute(self, conn, project_id, end, issued_at):
        issued = store.periods_of(conn, project_id)
        # NOTE(billing): the first usage and the adjustments are looked up only
        # when they can matter: fewer round trips for every draft.
        last_end = issued[-1][1].end if issued else None
        period = periods.next_period(last_end, None if issued else usage.first_usage(conn, project_id), end)
        sums = usage.rated_sums(conn, project_id, period)
        currency = lines.currency_of(sums, self.currency)
        adjustments = ()
        if issued:
            current = usage.sums_by_order(conn, project_id, store.ORDERS, issued[0])
            adjustments = lines.adjustment_lines(current, store.billed_by_order(conn, project_id), currency)
        return lines.Order(project_id, period, currency, lines.usage_lines(sums, currency) + adjustments, issued_at=issued_at)

    def order(self, project_id, end=None):
        """Issue and store the project's next order, up to ``end`` (default today 00:00 UTC).

        :raises errors.BillingError: EmptyPeriod, NotFinal, Overlap, BadParameter...
        """
        now = self.clock()
        end = periods.require_whole_hour(self._end(end, periods.midnight(now), now), "end")
        store.prepare_lock(self.engine, project_id)
        with self.engine.begin() as conn:
            store.lock(conn, project_id, now)
            order = self._compute(conn, project_id, end, now)
            periods.check_final(order.period, usage.final_until(conn))
            # NOTE(billing): the check in the same transaction as the insert;
            # on PostgreSQL the exclusion constraint backs it up.
            if store.overlapping(conn, project_id, order.period):
                raise errors.Overlap(store._overlap_message(order))
            order_id = store.insert(conn, order)
        LOG.info("Issued sales order %s for project %s, [%s, %s), %s %s", order_id, project_id, *_log_fields(order))
        return store_get(self.engine, order_id)

    def draft(self, project_id, end=None):
        """The next order up to ``end`` (default now), not stored.

        :returns: (Order, final_until); lines not yet final are provisional.
        """
        now = self.clock()
        end = self._end(end, now, now)
        with self.engine.connect() as conn:
            return self._compute(conn, project_id, end, None), usage.final_until(conn)

    def historic(self, project_id, date):
        """The issued order containing ``date``, beside it computed again today.

        :returns: (issued Order, regenerated Order, difference lines).
        """
        instant = periods.parse_instant(date, "date")
        with self.engine.connect() as conn:
            issued = store.containing(conn, project_id, instant)
            sums = usage.rated_sums(conn, project_id, issued.period)
        regenerated = lines.Order(project_id, issued.period, issued.currency, lines.usage_lines(sums, issued.currency))
        return issued, regenerated, lines.difference(issued.lines, regenerated.lines)

    def range(self, project_id, start, end=None):
        """The issued orders intersecting ``[start, end)`` (end default now)."""
        now = self.clock()
        start = periods.parse_instant(start, "start")
        end = self._end(end, now, now)
        if end <= start:
            raise errors.BadParameter("end", "%s must be after start %s" % (periods.iso(end), periods.iso(start)))
        with self.engine.connect() as conn:
            return store.intersecting(conn, project_id, start, end)

    def show(self, order_id):
        return store_get(self.engine, order_id)

    def orders(self, project_id):
        with self.engine.connect() as conn:
            return store.of_project(conn, project_id)

    def usage(self, project_id, start, end=None, group_by="service"):
        """Rated usage over ``[start, end)`` grouped by service, resource or hour."""
        if group_by not in usage.GROUPINGS:
            raise errors.BadParameter("group_by", "%r is not one of %s" % (group_by, ", ".join(usage.GROUPINGS)))
        now = self.clock()
        if start is None:
            raise errors.BadParameter("start", "required, an ISO 8601 UTC date or datetime")
        start, end = periods.parse_instant(start, "start"), self._end(end, now, now)
        if end <= start:
            raise errors.BadParameter("end", "%s must be after start %s" % (periods.iso(end), periods.iso(start)))
        period = periods.Period(start, end)
        with self.engine.connect() as conn:
            return period, usage.grouped(conn, project_id, period, group_by)

    def final_until(self):
        with self.engine.connect() as conn:
            return usage.final_until(conn)


def store_get(engine, order_id):
    with engine.connect() as conn:
        return store.get(conn, order_id)


def _log_fields(order):
    return periods.iso(order.period.start), periods.iso(order.period.end), order.total, order.currency
