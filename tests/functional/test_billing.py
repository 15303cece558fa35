"""Sales orders on the three databases, with money worked out by hand."""

import concurrent.futures
import datetime
import threading
from decimal import Decimal as D

import pytest
import sqlalchemy as sa

from meter_export.billing import errors
from meter_export.storage import dialects
from meter_export.storage import orders as store
from tests.functional import billing_data as data
from tests.functional.billing_data import T0
from tests.functional.billing_data import H

DAY = 24 * H


@pytest.fixture
def engine(db_url):
    engine = data.prepare(db_url, pool_size=20, max_overflow=40)
    yield engine
    engine.dispose()


def test_order_total_is_the_sum_of_lines_rounded_once(engine):
    # vm-1: 24 h x 0.048 = 1.152 -> 1.15; vm-2: 10 h x 0.0125 = 0.125 -> 0.12
    # (half-even); vol-1: 24 x 20 GB-h x 0.0005 = 0.24. Total 1.51.
    data.add(engine, data.hours("p1", "vm-1", "m1.small", T0, 24))
    data.add(engine, data.hours("p1", "vm-2", "m1.tiny", T0, 10, price="0.0125"))
    data.add(engine, data.hours("p1", "vol-1", "b1.standard", T0, 24, quantity="20", price="0.0005"))
    data.add(engine, data.hours("p2", "vm-9", "m1.small", T0, 24))  # another project
    data.add(engine, data.hours("p1", "vm-1", "m1.small", T0 + DAY, 5))  # after end
    data.mark_final(engine, T0 + 2 * DAY)
    order = data.billing(engine).order("p1", "2026-10-02")
    assert (order.period.start, order.period.end, order.currency) == (T0, T0 + DAY, "EUR")
    assert [(x.resource_id, x.quantity, x.cost, x.kind) for x in order.lines] == [
        ("vm-1", D(24), D("1.15"), "usage"),
        ("vm-2", D(10), D("0.12"), "usage"),
        ("vol-1", D(480), D("0.24"), "usage"),
    ]
    assert order.total == D("1.51")
    assert order.id is not None and order.issued_at == data.NOW


def test_next_order_starts_at_the_last_end_and_an_empty_one_is_refused(engine):
    data.add(engine, data.hours("p1", "vm-1", "m1.small", T0, 48))
    data.mark_final(engine, T0 + 2 * DAY)
    bill = data.billing(engine)
    first = bill.order("p1", "2026-10-02")
    second = bill.order("p1", "2026-10-03")
    assert (first.total, second.total) == (D("1.15"), D("1.15"))
    assert second.period.start == first.period.end
    with pytest.raises(errors.EmptyPeriod, match="must be after the end of its last order, 2026-10-03T00:00:00Z"):
        bill.order("p1", "2026-10-03")


def test_an_end_past_the_completeness_mark_is_refused(engine):
    data.add(engine, data.hours("p1", "vm-1", "m1.small", T0, 48))
    data.mark_final(engine, T0 + 30 * H)
    with pytest.raises(errors.NotFinal, match="final up to 2026-10-02T06:00:00Z"):
        data.billing(engine).order("p1", "2026-10-03")
    with engine.connect() as conn:
        assert store.of_project(conn, "p1") == []


def test_order_end_defaults_to_today_midnight_and_cannot_be_future(engine):
    data.add(engine, data.hours("p1", "vm-1", "m1.small", data.NOW - 3 * DAY, 10))
    data.mark_final(engine, data.NOW)
    bill = data.billing(engine)
    with pytest.raises(errors.BadParameter, match="end: .* future"):
        bill.order("p1", "2026-11-21")
    with pytest.raises(errors.BadParameter, match="end: .*whole hour"):
        bill.order("p1", "2026-11-19T10:30:00Z")
    order = bill.order("p1")
    assert order.period.end == datetime.datetime(2026, 11, 20, tzinfo=data.UTC)


def test_late_usage_is_an_adjustment_on_the_next_order_naming_the_corrected_one(engine):
    data.add(engine, data.hours("p1", "vm-1", "m1.small", T0, 10))  # 10 h -> 0.48
    data.mark_final(engine, T0 + 3 * DAY)
    bill = data.billing(engine)
    first = bill.order("p1", "2026-10-02")
    assert first.total == D("0.48")
    # late: one more hour of vm-1 and 3 h of a new vm-2 inside the billed day,
    # then a day of ordinary usage.
    data.add(engine, data.hours("p1", "vm-1", "m1.small", T0 + 10 * H, 1))
    data.add(engine, data.hours("p1", "vm-2", "m1.small", T0 + 20 * H, 3))
    data.add(engine, data.hours("p1", "vm-1", "m1.small", T0 + DAY, 24))
    issued, regenerated, diff = bill.historic("p1", "2026-10-01T12:00:00Z")
    assert issued == first  # issued orders never change
    assert regenerated.total == D("0.67")  # 11 h -> 0.528 -> 0.53; 3 h -> 0.144 -> 0.14
    assert [(x.resource_id, x.quantity, x.cost) for x in diff] == [("vm-1", D(1), D("0.05")), ("vm-2", D(3), D("0.14"))]
    second = bill.order("p1", "2026-10-03")
    usage_lines = [(x.resource_id, x.cost) for x in second.lines if x.kind == "usage"]
    adjustments = [(x.resource_id, x.quantity, x.cost, x.adjusts) for x in second.lines if x.kind == "adjustment"]
    assert usage_lines == [("vm-1", D("1.15"))]
    assert adjustments == [("vm-1", D(1), D("0.05"), first.id), ("vm-2", D(3), D("0.14"), first.id)]
    assert second.total == D("1.34")
    third = bill.order("p1", "2026-10-04")  # nothing billed twice
    assert third.lines == () and third.total == 0
    # everything billed for day one is its usage rounded once per line.
    assert first.total + D("0.05") + D("0.14") == regenerated.total


def test_usage_older_than_the_first_order_is_not_lost(engine):
    data.add(engine, data.hours("p1", "vm-1", "m1.small", T0 + DAY, 2))
    data.mark_final(engine, T0 + 3 * DAY)
    bill = data.billing(engine)
    first = bill.order("p1", "2026-10-03")
    assert first.period.start == T0 + DAY and first.total == D("0.10")  # 0.096
    data.add(engine, data.hours("p1", "vm-1", "m1.small", T0, 1))  # before the first order
    second = bill.order("p1", "2026-10-04")
    assert [(x.kind, x.adjusts, x.quantity, x.cost) for x in second.lines] == [("adjustment", first.id, D(1), D("0.04"))]


def test_draft_is_not_stored_and_flags_provisional_lines(engine):
    data.add(engine, data.hours("p1", "vm-1", "m1.small", T0, 24))
    data.add(engine, data.hours("p1", "vm-1", "m1.small", T0 + DAY, 2, final=False))
    data.mark_final(engine, T0 + DAY)
    bill = data.billing(engine)
    draft, final_until = bill.draft("p1", "2026-10-03")
    assert final_until == T0 + DAY and draft.id is None
    assert [(x.quantity, x.cost, x.provisional) for x in draft.lines] == [(D(26), D("1.25"), True)]  # 1.248
    assert bill.orders("p1") == []
    default, _ = bill.draft("p1")
    assert default.period.end == data.NOW


def test_range_returns_the_orders_intersecting_it(engine):
    data.add(engine, data.hours("p1", "vm-1", "m1.small", T0, 72))
    data.mark_final(engine, T0 + 3 * DAY)
    bill = data.billing(engine)
    ids = [bill.order("p1", "2026-10-0%d" % d).id for d in (2, 3, 4)]
    assert [o.id for o in bill.range("p1", "2026-10-02", "2026-10-03")] == [ids[1]]
    assert [o.id for o in bill.range("p1", "2026-10-01T23:00:00Z", "2026-10-03T01:00:00Z")] == ids
    assert [o.id for o in bill.range("p1", "2026-10-01")] == ids
    with pytest.raises(errors.NotFound):
        bill.historic("p1", "2026-10-04")
    with pytest.raises(errors.BadParameter, match="^end: "):
        bill.range("p1", "2026-10-03", "2026-10-02")


def test_mixed_currencies_are_refused(engine):
    data.add(engine, data.hours("p1", "vm-1", "m1.small", T0, 1))
    data.add(engine, data.hours("p1", "vm-2", "m1.large", T0, 1, currency="USD"))
    data.mark_final(engine, T0 + DAY)
    with pytest.raises(errors.MixedCurrencies, match="EUR, USD"):
        data.billing(engine).order("p1", "2026-10-02")


def test_fifty_concurrent_creations_leave_one_order_per_period(engine):
    data.add(engine, data.hours("p1", "vm-1", "m1.small", T0, 96))
    data.mark_final(engine, T0 + 4 * DAY)
    bill = data.billing(engine)
    barrier = threading.Barrier(50)
    ends = ["2026-10-0%d" % (2 + i % 3) for i in range(50)]

    def create(end):
        barrier.wait()
        try:
            return bill.order("p1", end)
        except errors.Refused as e:
            return e

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        results = list(pool.map(create, ends))
    issued = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert issued and len(issued) + len(refused) == 50
    assert all(isinstance(r, (errors.Overlap, errors.EmptyPeriod)) and str(r) for r in refused)
    stored = bill.orders("p1")
    assert sorted(o.id for o in stored) == sorted(o.id for o in issued)
    for a, b in zip(stored, stored[1:], strict=False):
        assert a.period.end <= b.period.start  # never overlapping
    # and no hour billed twice: the orders add up to the rated hours billed.
    assert sum(o.total for o in stored) == sum((D("0.048") * int((o.period.end - o.period.start) / H)).quantize(D("0.01")) for o in stored)


@pytest.mark.parametrize("url", ["pg_url", "sqlite_url"])
def test_the_database_itself_refuses_an_overlapping_order(request, url):
    # NOTE(billing): PostgreSQL by its exclusion constraint, SQLite by a
    # trigger; MySQL/MariaDB only through the lock row (dialects.py says why).
    engine = data.prepare(request.getfixturevalue(url))
    row = dict(project_id="p1", issued_at=T0, currency="EUR", total=D(0))
    with engine.begin() as conn:
        conn.execute(store.ORDERS.insert().values(period_start=T0, period_end=T0 + DAY, **row))
        conn.execute(store.ORDERS.insert().values(period_start=T0 + DAY, period_end=T0 + 2 * DAY, **row))  # back to back
        conn.execute(store.ORDERS.insert().values(period_start=T0, period_end=T0 + DAY, **dict(row, project_id="p2")))
    with pytest.raises(sa.exc.IntegrityError, match="sales_orders_no_overlap"):
        with engine.begin() as conn:
            conn.execute(store.ORDERS.insert().values(period_start=T0 + 12 * H, period_end=T0 + 36 * H, **row))
    with pytest.raises(sa.exc.IntegrityError, match="sales_orders_no_overlap"):
        with engine.begin() as conn:
            conn.execute(store.ORDERS.update().where(store.ORDERS.c.period_start == T0 + DAY).values(period_start=T0 + 23 * H))
    engine.dispose()


def test_migration_0004_adds_the_billing_tables_to_an_older_schema(db_url):
    from alembic import command

    from meter_export.storage import migrate
    from meter_export.storage import samples

    sink = samples.Sink(db_url)
    new = {"sales_orders", "sales_order_lines", "sales_order_locks", "pass_requests"}
    with sink.engine.begin() as conn:
        command.upgrade(migrate._config(conn, sink), "0003")  # the schema before billing, by its migrations
    assert not new & set(sa.inspect(sink.engine).get_table_names())
    assert migrate.upgrade(sink) == migrate.head()
    assert new <= set(sa.inspect(sink.engine).get_table_names())
    sink.close()
    engine = data.prepare(db_url, pool_size=20, max_overflow=40)
    data.add(engine, data.hours("p1", "vm-1", "m1.small", T0, 24))
    data.mark_final(engine, T0 + DAY)
    assert data.billing(engine).order("p1", "2026-10-02").total == D("1.15")
    rules = dialects.rules(engine.dialect)
    if rules.orders_exclusion or rules.orders_triggers:
        row = dict(project_id="p1", issued_at=T0, currency="EUR", total=D(0), period_start=T0, period_end=T0 + H)
        with pytest.raises(sa.exc.IntegrityError, match="sales_orders_no_overlap"), engine.begin() as conn:
            conn.execute(store.ORDERS.insert().values(**row))
    engine.dispose()
