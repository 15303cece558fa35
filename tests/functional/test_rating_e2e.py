"""Rated usage end to end: the real Gnocchi and the real Ceilometer v2 API,
through the real CLI, to rated_usage totals worked out in the test."""

import datetime
import uuid
from decimal import Decimal as D

import sqlalchemy as sa
from telemetry_stack import ceilometer as stack
from telemetry_stack import seed

from meter_export.storage import engine as storage_engine
from meter_export.storage import schema
from meter_export.storage import usage as usage_mod
from tests.functional import e2e
from tests.functional import test_sync_gnocchi as gnocchi_e2e

UTC = datetime.UTC
HOUR = datetime.timedelta(hours=1)
MINUTE = datetime.timedelta(minutes=1)
NOW_HOUR = datetime.datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def add_rating(config, tmp_path, mappings, prices):
    (tmp_path / "mappings.yaml").write_text(mappings)
    (tmp_path / "prices.yaml").write_text(prices)
    with open(config, "a") as f:
        f.write("[rating]\nmappings_file = %s\n" % (tmp_path / "mappings.yaml"))
    return str(tmp_path / "prices.yaml")


def rated(db_url, start, end):
    engine = sa.create_engine(storage_engine.dress_url(db_url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return usage_mod.read_rated(conn, schema.make_metadata(), start, end)
    finally:
        engine.dispose()


def test_ceilometer_uptime_to_rated_cost_through_run_once(db_url, ceilometer_server, tmp_path):
    project, hour = "p-" + uuid.uuid4().hex[:8], NOW_HOUR - 5 * HOUR
    naive = hour.replace(tzinfo=None)

    def instance(minutes, status, flavor):
        metadata = {"status": status, "instance_type": flavor, "display_name": "vm"}
        return stack.meter_message("instance", naive + minutes * MINUTE, 1.0, resource_id="vm-1", project_id=project, metadata=metadata)

    # active m1 from hour-0:10, resized to m2 at 0:10, shut off at 0:40
    ceilometer_server.seed([instance(-10, "active", "m1"), instance(10, "active", "m2"), instance(40, "shutoff", "m2")])
    credentials = {"_source": "driver = ceilometer", "auth_type": "none", "endpoint": ceilometer_server.endpoint}
    filters = "filters:\n  - name: p\n    query: {project_id: %s}\n    meters: [instance]\n" % project
    config = e2e.write_config(tmp_path, db_url, credentials, filters, lookback=3600)
    prices = add_rating(
        config,
        tmp_path,
        "- {meter: instance, unit: hour, type: VM, transformer: uptime, transformer_config: {tracked_states: [active], prefix: vm.}}\n",
        "currency: EUR\nprices:\n"
        "  - {service: vm.m1, unit: hour, per: hour, price: 0.1, valid_from: 2026-01-01}\n"
        "  - {service: vm.m2, unit: hour, per: hour, price: '0.2', valid_from: 2026-01-01}\n",
    )
    e2e.cli(config, "dbsync")
    e2e.cli(config, "prices", "load", prices)
    e2e.cli(config, "run", "--once")
    rows = rated(db_url, hour - 2 * HOUR, NOW_HOUR + HOUR)
    got = {(r.service, r.period_start): (r.quantity, r.cost, r.final) for r in rows}
    # 10 min of m1 before the hour, 10 min of m1 and 30 min of m2 in it; all
    # five hours behind checkpoint - lookback, so final
    assert got == {
        ("vm.m1", hour - HOUR): (D("0.166666666667"), D("0.0166666666667"), True),
        ("vm.m1", hour): (D("0.166666666667"), D("0.0166666666667"), True),
        ("vm.m2", hour): (D("0.5"), D("0.1"), True),
    }
    assert sum(r.cost for r in rows) == D("0.1333333333334")




def test_gnocchi_backfill_rates_what_it_loaded(db_url, gnocchi_server, tmp_path):
    client = seed.make_client(gnocchi_server.endpoint)
    seed.ensure_resource_types(client)
    seed.ensure_archive_policy(client, gnocchi_e2e.POLICY, granularity=300)
    project = str(uuid.uuid4())
    start, end = NOW_HOUR - 6 * HOUR, NOW_HOUR - 3 * HOUR
    seeded = gnocchi_e2e.seed_project(client, gnocchi_server, project, start - HOUR, end + HOUR)
    config = e2e.write_config(tmp_path, db_url, gnocchi_e2e.credentials(gnocchi_server), gnocchi_e2e.filters_for(project))
    prices = add_rating(
        config,
        tmp_path,
        "- {meter: memory, service: ram, unit: MB, type: VM, transformer: max}\n",
        "currency: EUR\nprices:\n  - {service: ram, unit: MB, per: hour, price: 0.0001, valid_from: 2026-01-01}\n",
    )
    e2e.cli(config, "dbsync")
    e2e.cli(config, "prices", "load", prices)
    e2e.cli(config, "backfill", "--start", start.isoformat(), "--end", end.isoformat())
    # By hand: each resource's largest memory point in each hour, times the price.
    want = {}
    for (rid, meter), points in seeded.points.items():
        for ts, value in points:
            if meter == "memory" and start <= ts < end:
                key = (rid, ts.replace(minute=0, second=0, microsecond=0))
                want[key] = max(want.get(key, D("-1")), D(repr(value)))
    rows = rated(db_url, start - HOUR, end + HOUR)
    assert {(r.resource_id, r.period_start): r.quantity for r in rows} == want
    assert sum(r.cost for r in rows) == sum(want.values()) * D("0.0001")
    assert len(want) == 2 * 3  # two resources, three hours
