"""Rating on real PostgreSQL, MariaDB and SQLite: the same Decimal totals,
worked out by hand below, on each."""

import datetime
import itertools
from decimal import Decimal as D

import pytest
import sqlalchemy as sa
import yaml

from meter_export.rating import mappings as mappings_mod
from meter_export.rating import pricelist
from meter_export.rating import rater as rater_mod
from meter_export.storage import migrate
from meter_export.storage import prices as prices_mod
from meter_export.storage import usage as usage_mod
from meter_export.storage.samples import Sink
from tests.samples import make_sample

UTC = datetime.UTC
H = datetime.datetime(2026, 11, 1, 10, tzinfo=UTC)
HOUR = datetime.timedelta(hours=1)

MAPPINGS = """
- meter: vcpus
  service: compute.vcpus
  unit: vcpu
  type: Virtual Machine
  transformer: max
  metadata:
    name: {sources: [display_name, name]}
    flavor: {sources: [flavor_name], template: "flavor %s"}
- {meter: net.bytes, service: net.out, unit: B, type: Network, transformer: delta}
- {meter: memory.usage, service: memory, unit: MB, type: Virtual Machine, transformer: mean}
- meter: instance
  unit: hour
  type: Virtual Machine
  transformer: uptime
  transformer_config: {tracked_states: [active], prefix: "vm."}
  res_id_template: "%s-uptime"
- meter: cluster
  service: coe.worker
  unit: worker
  type: COE
  transformer: max
  volume: {source: metadata.node_count}
  filters: ["metadata.status == 'ok'"]
- {meter: ip.floating, unit: ip, type: Floating IP, transformer: max, volume: 1}
"""

PRICES = """
currency: EUR
prices:
  - {service: compute.vcpus, unit: vcpu, per: hour, price: 0.01, valid_from: 2026-01-01, valid_to: '2026-11-01T11:00:00Z'}
  - {service: compute.vcpus, unit: vcpu, per: hour, price: "0.02", valid_from: '2026-11-01T11:00:00Z'}
  - {service: net.out, unit: B, per: unit, price: 0.000001, valid_from: 2026-01-01}
  - {service: vm.m1, unit: hour, per: hour, price: 0.1, valid_from: 2026-01-01}
  - {service: vm.m2, unit: hour, per: hour, price: 0.2, valid_from: 2026-01-01}
  - {service: coe.worker, unit: worker, per: hour, price: 1.5, valid_from: 2026-01-01}
  - {service: ip.floating, unit: ip, per: hour, price: 0.005, valid_from: 2026-01-01}
"""

_ids = itertools.count(1000)


def sample(meter, resource, minutes, volume, project="p1", **metadata):
    return make_sample(
        next(_ids),
        counter_name=meter,
        counter_volume=float(volume),
        resource_id=resource,
        project_id=project,
        timestamp=H + datetime.timedelta(minutes=minutes),
        resource_metadata=metadata,
    )


SCENARIO = [
    # vcpus: r1 max 4 in hour 10; the sample exactly at 11:00 belongs to hour 11
    sample("vcpus", "r1", 0, 2, display_name="", name="vm-one", flavor_name="m1"),
    sample("vcpus", "r1", 30, 4, name="vm-one", flavor_name="m1"),
    sample("vcpus", "r1", 60, 8, name="vm-one", flavor_name="m1"),
    sample("vcpus", "r2", 15, 1, project="p2", display_name="two"),
    # net.bytes: carried 100; +50, reset (+30), +40 = 120
    sample("net.bytes", "r1", -10, 100),
    sample("net.bytes", "r1", 10, 150),
    sample("net.bytes", "r1", 20, 30),
    sample("net.bytes", "r1", 40, 70),
    # memory: mean of 1, 1, 2 = 1.333333333333 (no price: unrated)
    sample("memory.usage", "r1", 0, 1),
    sample("memory.usage", "r1", 20, 1),
    sample("memory.usage", "r1", 40, 2),
    # instance: active m1 carried from 09:50, m2 from 10:10, shut off at 10:40
    sample("instance", "r1", -10, 1, status="active", flavor_name="m1"),
    sample("instance", "r1", 10, 1, status="active", flavor_name="m2"),
    sample("instance", "r1", 40, 1, status="shutoff", flavor_name="m2"),
    # cluster: only the 'ok' sample counts, its volume from metadata: 3
    sample("cluster", "r3", 0, 0, project="p3", node_count="3", status="ok"),
    sample("cluster", "r3", 30, 0, project="p3", node_count="5", status="failed"),
    # floating IP: fixed volume 1 whatever the sample says
    sample("ip.floating", "r4", 5, 0, project="p3"),
]

# Hand-computed: (service, resource, hour) -> quantity, and the costs.
EXPECTED_QUANTITIES = {
    ("compute.vcpus", "r1", H): D("4"),
    ("compute.vcpus", "r2", H): D("1"),
    ("compute.vcpus", "r1", H + HOUR): D("8"),
    ("net.out", "r1", H): D("120"),
    ("memory", "r1", H): D("1.333333333333"),
    ("vm.m1", "r1-uptime", H): D("0.166666666667"),
    ("vm.m2", "r1-uptime", H): D("0.5"),
    ("coe.worker", "r3", H): D("3"),
    ("ip.floating", "r4", H): D("1"),
    # hour 9 has the carried samples at 09:50: a counter's first sample (no
    # increase yet) and 10 minutes of m1
    ("net.out", "r1", H - HOUR): D("0"),
    ("vm.m1", "r1-uptime", H - HOUR): D("0.166666666667"),
}
EXPECTED_COST = {
    # 4x0.01, 8x0.02 (the new price), 120x0.000001, 2x 0.166666666667x0.1, 0.5x0.2
    "p1": D("0.04") + D("0.16") + D("0.00012") + 2 * D("0.0166666666667") + D("0.1"),
    "p2": D("0.01"),
    "p3": D("4.5") + D("0.005"),
}


@pytest.fixture
def sink(db_url):
    s = Sink(db_url)
    migrate.upgrade(s)
    yield s
    s.close()


def make_rater(sink):
    return rater_mod.Rater(sink, mappings_mod.parse(yaml.safe_load(MAPPINGS)), carry_in=3600)


def load_prices(sink, tmp_path):
    path = tmp_path / "prices.yaml"
    path.write_text(PRICES)
    return prices_mod.load(sink.engine, sink.metadata.tables["prices"], pricelist.load(str(path)))


def quantities(sink):
    usage = sink.metadata.tables["usage"]
    with sink.engine.connect() as conn:
        return {(r.service, r.resource_id, r.period_start): r.quantity for r in conn.execute(sa.select(usage))}


def rated(sink):
    with sink.engine.connect() as conn:
        return usage_mod.read_rated(conn, sink.metadata, H - HOUR, H + 2 * HOUR)


def cost_by_project(rows):
    totals = {}
    for r in rows:
        totals[r.project_id] = totals.get(r.project_id, D(0)) + r.cost
    return totals


def test_the_scenario_rates_to_the_hand_computed_totals(sink, tmp_path):
    sink.write(SCENARIO)
    assert load_prices(sink, tmp_path) == (7, 0)
    rater = make_rater(sink)
    assert rater.rate_range(H - HOUR, H + 2 * HOUR) == len(EXPECTED_QUANTITIES)
    assert quantities(sink) == EXPECTED_QUANTITIES
    rows = rated(sink)
    assert cost_by_project(rows) == EXPECTED_COST
    assert sum(r.cost for r in rows) == D("4.8484533333334")
    vcpu = {(r.resource_id, r.period_start): r for r in rows if r.service == "compute.vcpus"}
    assert vcpu[("r1", H)].unit_price == D("0.01") and vcpu[("r1", H + HOUR)].unit_price == D("0.02")
    assert all(r.currency == "EUR" and not r.final for r in rows)
    assert {r.service for r in rows} == {s for s, _, _ in EXPECTED_QUANTITIES} - {"memory"}


@pytest.fixture(params=["pg_url", "mysql_url"])
def exact_sink(request):
    s = Sink(request.getfixturevalue(request.param))
    migrate.upgrade(s)
    yield s
    s.close()


def test_sql_sum_of_cost_is_exact_where_the_database_is(exact_sink, tmp_path):
    # NOTE: SQLite computes the view's cost in doubles; read_rated is exact there.
    sink = exact_sink
    sink.write(SCENARIO)
    load_prices(sink, tmp_path)
    make_rater(sink).rate_range(H - HOUR, H + 2 * HOUR)
    with sink.engine.connect() as conn:
        total = conn.execute(sa.text("SELECT SUM(cost) FROM rated_usage")).scalar()
    assert D(total) == D("4.8484533333334")


def test_metadata_comes_from_the_newest_sample_with_fallbacks(sink):
    sink.write(SCENARIO)
    make_rater(sink).rate_range(H, H + HOUR)
    usage = sink.metadata.tables["usage"]
    with sink.engine.connect() as conn:
        meta = {(r.service, r.resource_id): r.resource_metadata for r in conn.execute(sa.select(usage))}
        owner = {(r.service, r.resource_id): r.project_id for r in conn.execute(sa.select(usage))}
    # r1's newest vcpus sample in hour 10 (10:30) has no display_name: name falls back
    assert meta[("compute.vcpus", "r1")] == {"type": "Virtual Machine", "name": "vm-one", "flavor": "flavor m1"}
    assert meta[("compute.vcpus", "r2")] == {"type": "Virtual Machine", "name": "two", "flavor": None}
    assert meta[("vm.m2", "r1-uptime")] == {"type": "Virtual Machine"}
    assert owner[("compute.vcpus", "r2")] == "p2"


def test_rating_twice_changes_nothing_and_a_late_sample_changes_its_hour(sink):
    sink.write(SCENARIO)
    rater = make_rater(sink)
    rater.rate_range(H, H + 2 * HOUR)
    first = quantities(sink)
    rater.rate_range(H, H + 2 * HOUR)
    assert quantities(sink) == first
    sink.write([sample("vcpus", "r2", 50, 6, project="p2")])
    rater.rate_range(H, H + HOUR)
    assert quantities(sink) == {**first, ("compute.vcpus", "r2", H): D("6")}


def test_unrated_usage_is_listed_never_free(sink, tmp_path):
    sink.write(SCENARIO)
    load_prices(sink, tmp_path)
    make_rater(sink).rate_range(H, H + HOUR)
    with sink.engine.connect() as conn:
        unrated = list(conn.execute(sa.text("SELECT service, resource_id, quantity FROM unrated_usage")))
    assert [(s, r, D(str(q))) for s, r, q in unrated] == [("memory", "r1", D("1.333333333333"))]


def test_loading_prices_twice_changes_nothing_and_an_overlap_is_refused(sink, tmp_path):
    assert load_prices(sink, tmp_path) == (7, 0)
    assert load_prices(sink, tmp_path) == (0, 7)
    overlapping = pricelist.parse(
        yaml.safe_load("currency: EUR\nprices: [{service: net.out, unit: B, per: unit, price: '1', valid_from: 2026-06-01}]")
    )
    with pytest.raises(pricelist.PricesError, match="net.out from 2026-06-01T00:00 .* overlaps the loaded price: net.out from 2026-01-01"):
        prices_mod.load(sink.engine, sink.metadata.tables["prices"], overlapping)
    with sink.engine.connect() as conn:
        assert len(prices_mod.all_prices(conn, sink.metadata.tables["prices"])) == 7


def test_unrated_usage_is_counted_by_a_gauge(sink, tmp_path):
    from meter_export import metrics

    sink.write(SCENARIO)
    load_prices(sink, tmp_path)
    make_rater(sink).rate_range(H, H + HOUR)
    (family,) = metrics.UnratedUsageCollector(sink).collect()
    assert [(s.labels, s.value) for s in family.samples] == [({"service": "memory"}, 1)]
