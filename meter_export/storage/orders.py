"""Reading and writing the sales order tables (one writer module per family).

An issued order is written once and never changed. Two orders of a project
never overlap: on PostgreSQL the exclusion constraint refuses the second one;
on MySQL/MariaDB and SQLite ``lock`` serialises the check and the insert of
a project's orders in one transaction (storage/dialects.py decides which).
"""

import collections

import sqlalchemy as sa

from meter_export.billing import errors
from meter_export.billing import lines as lines_mod
from meter_export.billing import periods
from meter_export.storage import dialects
from meter_export.storage import schema

_METADATA = schema.make_metadata()
ORDERS = _METADATA.tables["sales_orders"]
LINES = _METADATA.tables["sales_order_lines"]
LOCKS = _METADATA.tables["sales_order_locks"]


def prepare_lock(engine, project_id):
    """Make the project's lock row exist, in its own transaction.

    NOTE(billing): inserting it inside the serialised transaction would let two
    first orders of a project both miss the row and deadlock on its insert.
    """
    rules = dialects.rules(engine.dialect)
    if rules.orders_lock is None:
        return
    with engine.begin() as conn:
        conn.execute(rules.insert_ignore(rules.insert(LOCKS).values(project_id=project_id, taken_at=None), ["project_id"]))


def lock(conn, project_id, now):
    """Serialise this project's order creation until the transaction ends."""
    rules = dialects.rules(conn.dialect)
    if rules.orders_lock is not None:
        rules.orders_lock(conn, LOCKS, project_id, now)


def overlapping(conn, project_id, period):
    query = sa.select(ORDERS.c.id).where(
        ORDERS.c.project_id == project_id, ORDERS.c.period_start < period.end, ORDERS.c.period_end > period.start
    )
    return [row.id for row in conn.execute(query)]


def insert(conn, order):
    """Store an order and its lines; returns its id.

    :raises errors.Overlap: the database refused an overlapping period.
    """
    try:
        with conn.begin_nested():
            order_id = conn.execute(
                ORDERS.insert().values(
                    project_id=order.project_id,
                    period_start=order.period.start,
                    period_end=order.period.end,
                    issued_at=order.issued_at,
                    currency=order.currency,
                    total=order.total,
                )
            ).inserted_primary_key[0]
    except sa.exc.IntegrityError as e:
        if dialects.rules(conn.dialect).orders_overlap(e):
            raise errors.Overlap(_overlap_message(order))
        raise
    if order.lines:
        conn.execute(LINES.insert(), [_line_row(order_id, line) for line in order.lines])
    return order_id


def _overlap_message(order):
    start, end = periods.iso(order.period.start), periods.iso(order.period.end)
    return "project %s already has an order overlapping [%s, %s)" % (order.project_id, start, end)


def _line_row(order_id, line):
    return dict(
        order_id=order_id,
        resource_id=line.resource_id,
        service=line.service,
        unit=line.unit,
        quantity=line.quantity,
        unit_price=line.unit_price,
        cost=line.cost,
        kind=line.kind,
        adjusts=line.adjusts,
    )


def _order(row, order_lines):
    period = periods.Period(row.period_start, row.period_end)
    return lines_mod.Order(row.project_id, period, row.currency, tuple(order_lines), id=row.id, issued_at=row.issued_at)


def _load(conn, where):
    rows = conn.execute(sa.select(ORDERS).where(where).order_by(ORDERS.c.period_start)).all()
    if not rows:
        return []
    by_order = collections.defaultdict(list)
    query = sa.select(LINES).where(LINES.c.order_id.in_([r.id for r in rows])).order_by(LINES.c.id)
    for line in conn.execute(query):
        by_order[line.order_id].append(
            lines_mod.Line(line.resource_id, line.service, line.unit, line.quantity, line.unit_price, line.cost, line.kind, line.adjusts)
        )
    return [_order(row, by_order[row.id]) for row in rows]


def get(conn, order_id):
    """:raises errors.NotFound:"""
    found = _load(conn, ORDERS.c.id == order_id)
    if not found:
        raise errors.NotFound("no sales order %s" % order_id)
    return found[0]


def of_project(conn, project_id):
    return _load(conn, ORDERS.c.project_id == project_id)


def containing(conn, project_id, instant):
    """:raises errors.NotFound: no order of the project contains ``instant``."""
    found = _load(conn, sa.and_(ORDERS.c.project_id == project_id, ORDERS.c.period_start <= instant, ORDERS.c.period_end > instant))
    if not found:
        raise errors.NotFound("no sales order of project %s contains %s" % (project_id, periods.iso(instant)))
    return found[0]


def intersecting(conn, project_id, start, end):
    return _load(conn, sa.and_(ORDERS.c.project_id == project_id, ORDERS.c.period_start < end, ORDERS.c.period_end > start))


def periods_of(conn, project_id):
    """[(order id, Period)] of the project, oldest first."""
    query = sa.select(ORDERS.c.id, ORDERS.c.period_start, ORDERS.c.period_end).where(ORDERS.c.project_id == project_id)
    return [(r.id, periods.Period(r.period_start, r.period_end)) for r in conn.execute(query.order_by(ORDERS.c.period_start))]


_BILLED_COLUMNS = ("resource_id", "service", "unit", "unit_price", "quantity", "cost")


def billed_by_order(conn, project_id):
    """{order id: {Key: (quantity, cost)}}: everything billed for each period.

    An order's own usage lines plus the adjustments later orders carried for it.
    """
    billed_for = sa.func.coalesce(LINES.c.adjusts, LINES.c.order_id)
    query = (
        sa.select(billed_for.label("period_of"), *[LINES.c[name] for name in _BILLED_COLUMNS])
        .select_from(LINES.join(ORDERS, LINES.c.order_id == ORDERS.c.id))
        .where(ORDERS.c.project_id == project_id)
    )
    result = collections.defaultdict(dict)
    # NOTE(billing): added up here, not with SUM: SQLite keeps money as text.
    for row in conn.execute(query):
        key = lines_mod.Key(row.resource_id, row.service, row.unit, row.unit_price)
        quantity, cost = result[row.period_of].get(key, (lines_mod.ZERO, lines_mod.ZERO))
        result[row.period_of][key] = (quantity + row.quantity, cost + row.cost)
    return dict(result)
