"""The one place billing reads rating's output: ``rated_usage`` and the mark.

Billing never calls rating's internals (DESIGN.md): it reads the view's
columns below. A rated hour belongs to the period containing its start.
"""

import collections

import sqlalchemy as sa

from meter_export.billing import lines
from meter_export.storage import dialects
from meter_export.storage import schema
from meter_export.storage.types import ExactDecimal
from meter_export.storage.types import TimestampUTC

RATED = sa.table(
    "rated_usage",
    sa.column("project_id", sa.String()),
    sa.column("user_id", sa.String()),
    sa.column("resource_id", sa.String()),
    sa.column("service", sa.String()),
    sa.column("unit", sa.String()),
    sa.column("period_start", TimestampUTC()),
    sa.column("period_end", TimestampUTC()),
    sa.column("quantity", ExactDecimal(*schema.QUANTITY)),
    sa.column("unit_price", ExactDecimal(*schema.PRICE)),
    sa.column("cost", ExactDecimal(*schema.PRICE)),
    sa.column("currency", sa.String()),
    sa.column("final", sa.Integer()),  # 1 when final, else 0
)
_CHECKPOINTS = schema.make_metadata().tables["checkpoints"]
_COMPLETENESS = schema.make_metadata().tables["completeness"]
_USAGE = schema.make_metadata().tables["usage"]
_KEY = ("resource_id", "service", "unit", "unit_price", "currency")
_GROUPS = {
    "service": ("service", "unit", "currency"),
    "resource": ("resource_id", "service", "unit", "currency"),
    "hour": ("period_start", "service", "unit", "currency"),
}
GROUPINGS = tuple(_GROUPS)


def final_until(conn):
    """The completeness mark: rated usage before it is final; None: nothing is.

    NOTE(billing): the oldest ``final_until`` of rating's completeness marks:
    every stream is final up to there, so every hour ending by then is final
    (rated_usage's ``final`` says the same per hour, for the hour's meter).
    """
    return conn.execute(sa.select(sa.func.min(_COMPLETENESS.c.final_until))).scalar()


def first_usage(conn, project_id):
    """The project's first usage hour.

    NOTE(billing): read from rating's ``usage`` table, whose index answers it
    at once; MIN over the view pays its join for every row of the project
    (measured: as long as the whole draft's GROUP BY on a year of usage).
    """
    usage = _USAGE.c
    return conn.execute(sa.select(sa.func.min(usage.period_start)).where(usage.project_id == project_id)).scalar()


def _in(period):
    return sa.and_(RATED.c.period_start >= period.start, RATED.c.period_start < period.end)


def _sums(conn, names, where, source=RATED, *extra):
    """{(values of names): [quantity, cost, all final]} over the rows matching ``where``.

    Exact on every database: SUM where NUMERIC is exact, else added up here.
    ``extra`` are labelled columns of a joined ``source``, named first in ``names``.
    """
    columns = list(extra) + [RATED.c[n] for n in names[len(extra) :]]
    # NOTE(billing): a group is final when its last hour ends by the mark.
    # Not min(final): the view computes final with two correlated EXISTS per
    # row, which made a year's draft 3x the plain GROUP BY (bench/billing.py).
    mark = final_until(conn)
    final = sa.func.max(RATED.c.period_end)
    result = {}
    if dialects.rules(conn.dialect).exact_arithmetic:
        sums = (sa.func.sum(RATED.c.quantity), sa.func.sum(RATED.c.cost), final)
        query = sa.select(*columns, *sums).select_from(source).where(where).group_by(*columns)
        for row in conn.execute(query):
            result[tuple(row[: len(names)])] = [row[-3], row[-2], mark is not None and row[-1] <= mark]
        return result
    # NOTE(billing): the view's cost would be a float product here; the exact
    # one is quantity x unit_price, both exact text.
    acc = collections.defaultdict(lambda: [lines.ZERO, lines.ZERO, True])
    query = sa.select(*columns, RATED.c.quantity, RATED.c.unit_price, RATED.c.period_end).select_from(source).where(where)
    for row in conn.execute(query):
        entry = acc[tuple(row[: len(names)])]
        entry[0] += row[-3]
        entry[1] += row[-3] * row[-2]
        entry[2] = entry[2] and mark is not None and row[-1] <= mark
    return dict(acc)


def _rated_sum(values, totals):
    resource_id, service, unit, unit_price, currency = values
    return lines.RatedSum(lines.Key(resource_id, service, unit, unit_price), currency, totals[0], totals[1], totals[2])


def rated_sums(conn, project_id, period):
    """[RatedSum] of the project over the period, one per key (unrounded)."""
    sums = _sums(conn, _KEY, sa.and_(RATED.c.project_id == project_id, _in(period)))
    return [_rated_sum(values, totals) for values, totals in sums.items()]


def sums_by_order(conn, project_id, orders_table, first_order):
    """{order id: {Key: (quantity, cost)}}: today's rated usage of each issued period.

    One query joining the orders' periods. Usage older than the first order
    (stored after it was issued) counts towards the first order, so no rated
    hour is left out of every order.
    """
    if first_order is None:
        return {}
    first_id, first_period = first_order
    orders = orders_table
    inside = sa.and_(RATED.c.period_start >= orders.c.period_start, RATED.c.period_start < orders.c.period_end)
    joined = RATED.join(orders, sa.and_(orders.c.project_id == RATED.c.project_id, inside))
    by_order = _sums(conn, ("order_id",) + _KEY, RATED.c.project_id == project_id, joined, orders.c.id.label("order_id"))
    before = _sums(conn, _KEY, sa.and_(RATED.c.project_id == project_id, RATED.c.period_start < first_period.start))
    result = collections.defaultdict(dict)
    for (order_id, *values), totals in by_order.items():
        result[order_id][_rated_sum(values, totals).key] = (totals[0], totals[1])
    for values, totals in before.items():
        key = _rated_sum(values, totals).key
        quantity, cost = result[first_id].get(key, (lines.ZERO, lines.ZERO))
        result[first_id][key] = (quantity + totals[0], cost + totals[1])
    return dict(result)


def grouped(conn, project_id, period, group_by):
    """Rated usage of a project over a period, grouped by service, resource or hour.

    :returns: [dict] with the group's columns, quantity, cost (unrounded) and final.
    """
    names = _GROUPS[group_by]
    sums = _sums(conn, names, sa.and_(RATED.c.project_id == project_id, _in(period)))
    rows = [dict(zip(names, values, strict=True), quantity=t[0], cost=t[1], final=t[2]) for values, t in sums.items()]
    return sorted(rows, key=lambda r: tuple(str(r[n]) for n in names))


def streams_complete_until(conn):
    """[(source, filter, meter, complete_until)] of the live streams."""
    c = _CHECKPOINTS.c
    query = sa.select(c.source, c.filter_name, c.meter, c.complete_until).where(c.scope == schema.LIVE_SCOPE)
    return [tuple(row) for row in conn.execute(query.order_by(c.source, c.filter_name, c.meter))]
