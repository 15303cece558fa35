"""CeilometerSource against the REAL Ceilometer 9.0.7 v2 API.

Each test uses its own meter name: the server (and its DB) is shared by the
whole session.
"""

import datetime
import uuid

import pytest
from oslo_config import cfg

from meter_export import service
from meter_export import sources
from meter_export import sync
from meter_export.sources import ceilometer

UTC = datetime.UTC
T0 = datetime.datetime(2017, 1, 1, 0, 0)
STRATEGIES = ["keyset", "desc"]


def make_conf(tmp_path, endpoint, strategy="auto", page_size=7):
    path = tmp_path / ("meter-export-%s.conf" % uuid.uuid4().hex[:6])
    path.write_text(
        "[service_credentials]\nauth_type = none\nendpoint = %s\n"
        "[source]\ndriver = ceilometer\nmax_retries = 1\ntimeout = 30\n"
        "[ceilometer]\npage_size = %d\nstrategy = %s\n" % (endpoint, page_size, strategy)
    )
    conf = cfg.ConfigOpts()
    service.register_opts(conf)
    conf(["--config-file", str(path)], project="meter-export")
    return conf


def make_stream(meter, **filter_fields):
    meter_spec = sources.MeterSpec(meter)
    return sources.Stream("ceilometer", sources.Filter("f", (meter_spec,), **filter_fields), meter_spec)


def fetch_all(conf, stream, start, end):
    source = ceilometer.CeilometerSource(conf)
    items = [item for page in source.fetch(stream, start.replace(tzinfo=UTC), end.replace(tzinfo=UTC)) for item in page]
    assert all(isinstance(i, sources.Sample) for i in items), [i for i in items if not isinstance(i, sources.Sample)]
    return items


def by_id(items):
    return {i.message_id: (i.counter_volume, i.timestamp, i.project_id) for i in items}


def expected(seeded, start, end, **equal):
    out = {}
    for s in seeded:
        if start <= s["timestamp"] < end and all(s[k] == v for k, v in equal.items()):
            out[s["message_id"]] = (s["counter_volume"], s["timestamp"].replace(tzinfo=UTC), s["project_id"])
    return out


@pytest.fixture(scope="module")
def bursts(ceilometer_server):
    """340 samples in bursts of 20 (two projects), one message_id stored
    twice, and samples exactly on the window bounds."""
    from telemetry_stack import ceilometer as stack

    meter = "burst." + uuid.uuid4().hex[:6]
    seeded = stack.burst_samples(meter, T0, 340, burst=20, projects=("p0", "p1"))
    seeded.append(dict(seeded[45]))  # the same message_id stored twice
    seeded.append(stack.meter_message(meter, T0 - datetime.timedelta(microseconds=1), -1.0))
    assert ceilometer_server.seed(seeded) == len(seeded)
    return meter, seeded


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_bursts_fetched_completely(tmp_path, ceilometer_server, bursts, strategy):
    meter, seeded = bursts
    start, end = T0, T0 + datetime.timedelta(seconds=160)  # the last burst (160 s) sits on end
    items = fetch_all(make_conf(tmp_path, ceilometer_server.endpoint, strategy), make_stream(meter), start, end)
    assert len(items) == len({i.message_id for i in items})
    want = expected(seeded, start, end)
    assert len(want) == 320
    assert by_id(items) == want


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_start_inclusive_end_exclusive(tmp_path, ceilometer_server, bursts, strategy):
    meter, seeded = bursts
    start, end = T0 + datetime.timedelta(seconds=10), T0 + datetime.timedelta(seconds=30)
    items = fetch_all(make_conf(tmp_path, ceilometer_server.endpoint, strategy), make_stream(meter), start, end)
    assert {i.timestamp for i in items} == {(start + datetime.timedelta(seconds=10 * k)).replace(tzinfo=UTC) for k in (0, 1)}
    assert by_id(items) == expected(seeded, start, end)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_filter_on_project_isolates(tmp_path, ceilometer_server, bursts, strategy):
    meter, seeded = bursts
    start, end = T0, T0 + datetime.timedelta(seconds=200)
    stream = make_stream(meter, project_id="p1")
    items = fetch_all(make_conf(tmp_path, ceilometer_server.endpoint, strategy), stream, start, end)
    assert {i.project_id for i in items} == {"p1"}
    assert by_id(items) == expected(seeded, start, end, project_id="p1")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_raw_query_items(tmp_path, ceilometer_server, bursts, strategy):
    meter, seeded = bursts
    start, end = T0, T0 + datetime.timedelta(seconds=200)
    stream = make_stream(meter, raw_query=[{"field": "resource_id", "op": "eq", "value": "r3"}])
    items = fetch_all(make_conf(tmp_path, ceilometer_server.endpoint, strategy), stream, start, end)
    assert by_id(items) == expected(seeded, start, end, resource_id="r3")
    assert items


def test_auto_picks_keyset_on_sql(tmp_path, ceilometer_server):
    source = ceilometer.CeilometerSource(make_conf(tmp_path, ceilometer_server.endpoint, "auto"))
    assert source.strategy() == "keyset"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_late_sample_appears_on_refetch(tmp_path, ceilometer_server, strategy):
    from telemetry_stack import ceilometer as stack

    meter = "late." + uuid.uuid4().hex[:6]
    ceilometer_server.seed(stack.burst_samples(meter, T0, 30, burst=10))
    conf = make_conf(tmp_path, ceilometer_server.endpoint, strategy)
    start, end = T0, T0 + datetime.timedelta(minutes=1)
    before = fetch_all(conf, make_stream(meter), start, end)
    assert len(before) == 30
    late = {
        "counter_type": "gauge",
        "counter_unit": "unit",
        "counter_volume": 42.5,
        "resource_id": "r-late",
        "project_id": "p0",
        "timestamp": "2017-01-01T00:00:10.000000",
    }
    [stored] = stack.post_samples(ceilometer_server.endpoint, meter, [late])
    after = fetch_all(conf, make_stream(meter), start, end)
    assert {i.message_id for i in after} == {i.message_id for i in before} | {stored["message_id"]}
    [got] = [i for i in after if i.message_id == stored["message_id"]]
    assert got.counter_volume == 42.5
    assert got.timestamp == datetime.datetime(2017, 1, 1, 0, 0, 10, tzinfo=UTC)
    assert got.recorded_at > got.timestamp


def test_posted_sample_maps_every_field(tmp_path, ceilometer_server):
    from telemetry_stack import ceilometer as stack

    meter = "fields." + uuid.uuid4().hex[:6]
    sample = {
        "counter_type": "cumulative",
        "counter_unit": "ns",
        "counter_volume": 1.5,
        "resource_id": "r1",
        "project_id": "p9",
        "user_id": "u9",
        "timestamp": "2017-01-01T00:00:05.250000",
        "resource_metadata": {"flavor.name": "m1.small", "size": "3"},
    }
    [stored] = stack.post_samples(ceilometer_server.endpoint, meter, [sample])
    [got] = fetch_all(make_conf(tmp_path, ceilometer_server.endpoint), make_stream(meter), T0, T0 + datetime.timedelta(seconds=6))
    assert got.message_id == stored["message_id"]
    assert (got.counter_name, got.counter_type, got.counter_unit) == (meter, "cumulative", "ns")
    assert (got.project_id, got.user_id, got.resource_id, got.source) == ("p9", "u9", "r1", "p9:openstack")
    assert got.timestamp == datetime.datetime(2017, 1, 1, 0, 0, 5, 250000, tzinfo=UTC)
    assert got.recorded_at.tzinfo is UTC
    assert got.resource_metadata == {"flavor.name": "m1.small", "size": "3"}


@pytest.fixture(scope="module")
def odd_server(request, tmp_path_factory):
    """Factory of extra servers (410 Gone, non-admin), stopped at the end."""
    from telemetry_stack import ceilometer as stack

    started = []

    def start(*args):
        server = stack.CeilometerServer(str(tmp_path_factory.mktemp("ceilometer-odd")), extra_args=args)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_gnocchi_backed_is_a_config_error(tmp_path, ceilometer_server, odd_server, strategy):
    server = odd_server("--gnocchi")
    source = ceilometer.CeilometerSource(make_conf(tmp_path, server.endpoint, strategy))
    with pytest.raises(sources.SourceConfigError, match="use \\[source\\] driver = gnocchi"):
        list(source.fetch(make_stream("cpu"), T0.replace(tzinfo=UTC), (T0 + datetime.timedelta(hours=1)).replace(tzinfo=UTC)))


def test_other_project_with_non_admin_token_is_a_config_error(tmp_path, ceilometer_server, odd_server):
    server = odd_server("--non-admin", "p0")
    source = ceilometer.CeilometerSource(make_conf(tmp_path, server.endpoint, "desc"))
    window = T0.replace(tzinfo=UTC), (T0 + datetime.timedelta(hours=1)).replace(tzinfo=UTC)
    with pytest.raises(sources.SourceConfigError, match="401"):
        list(source.fetch(make_stream("cpu", project_id="p1"), *window))


def test_unreachable_is_unavailable(tmp_path):
    from telemetry_stack import ceilometer as stack

    source = ceilometer.CeilometerSource(make_conf(tmp_path, "http://127.0.0.1:%d" % stack.free_port(), "desc"))
    with pytest.raises(sources.SourceUnavailable):
        list(source.fetch(make_stream("cpu"), T0.replace(tzinfo=UTC), (T0 + datetime.timedelta(hours=1)).replace(tzinfo=UTC)))


def census_case(tmp_path, ceilometer_server, strategy, window_samples=None):
    """A meter with samples on day 0 and day 2 (30 of p0 on each), a source
    (see census_source) and p0's stream."""
    from telemetry_stack import ceilometer as stack

    meter = "census." + uuid.uuid4().hex[:6]
    day2 = T0 + datetime.timedelta(days=2)
    seeded = stack.burst_samples(meter, T0, 60, burst=10, projects=("p0", "p1")) + stack.burst_samples(meter, day2, 30, burst=10)
    assert ceilometer_server.seed(seeded) == len(seeded)
    return seeded, census_source(tmp_path, ceilometer_server, strategy, window_samples), make_stream(meter, project_id="p0")


def census_source(tmp_path, ceilometer_server, strategy="auto", window_samples=None):
    """A source on the server; ``window_samples`` sets [sync] window_samples."""
    conf = make_conf(tmp_path, ceilometer_server.endpoint, strategy)
    if window_samples:
        conf.set_override("window_samples", window_samples, group="sync")
    return ceilometer.CeilometerSource(conf)


def aware(value):
    return value.replace(tzinfo=UTC)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_census_is_one_request_and_windows_outside_it_cost_none(tmp_path, ceilometer_server, strategy):
    """Fewer samples than a window holds: one statistics request, one bucket
    from the first sample to the last; a window before or after it is not
    asked for, and one page at a time still reads the rest exactly."""
    seeded, source, stream = census_case(tmp_path, ceilometer_server, strategy)
    start, end = aware(T0 - datetime.timedelta(days=1)), aware(T0 + datetime.timedelta(days=4))
    census = source.census(stream, start, end)
    assert source.requests == 1
    last = max(s["timestamp"] for s in seeded if s["project_id"] == "p0")
    assert census.buckets == ((aware(T0), aware(last) + datetime.timedelta(seconds=1), 60),)
    for window in ((start, aware(T0)), (aware(last) + datetime.timedelta(seconds=1), end)):
        assert list(source.fetch(stream, *window, census)) == []
    assert source.requests == 1
    items = [i for page in source.fetch(stream, start, end, census) for i in page]
    assert by_id(items) == expected(seeded, start.replace(tzinfo=None), end.replace(tzinfo=None), project_id="p0")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_census_counts_per_period_when_more_than_a_window(tmp_path, ceilometer_server, strategy):
    """More samples than a window holds: a second request counts them per
    period between the first and the last; a window between its buckets
    (day 1) is not asked for."""
    seeded, source, stream = census_case(tmp_path, ceilometer_server, strategy, window_samples=40)
    start, end = aware(T0 - datetime.timedelta(days=1)), aware(T0 + datetime.timedelta(days=4))
    census = source.census(stream, start, end)
    assert source.requests == 2
    (first, first_end, on_day0), (second, _, on_day2) = census.buckets  # periods of whole hours from T0
    assert (first, on_day0, on_day2) == (aware(T0), 30, 30)
    assert first_end < aware(T0 + datetime.timedelta(days=1)) and second > aware(T0 + datetime.timedelta(days=1))
    assert list(source.fetch(stream, first_end, second, census)) == []
    assert source.requests == 2
    items = [i for page in source.fetch(stream, start, end, census) for i in page]
    assert by_id(items) == expected(seeded, start.replace(tzinfo=None), end.replace(tzinfo=None), project_id="p0")


@pytest.mark.parametrize("window_samples", [None, 5])
def test_census_of_a_meter_stored_with_two_units_covers_both(tmp_path, ceilometer_server, window_samples):
    """Statistics answer one row per unit, in no order: the census spans them
    all (here unit B from day 0 to day 2, MB on day 1 only), so no window
    holding samples of either is skipped, with or without periods."""
    from telemetry_stack import ceilometer as stack

    meter = "census.units." + uuid.uuid4().hex[:6]
    at = [T0 + datetime.timedelta(days=d, microseconds=250001 * d) for d in range(3)]
    seeded = [stack.meter_message(meter, ts, float(i), unit="B") for i, ts in enumerate((at[0], at[2]))]
    seeded += [stack.meter_message(meter, at[1] + datetime.timedelta(seconds=i), float(i), unit="MB") for i in range(6)]
    assert ceilometer_server.seed(seeded) == len(seeded)
    source, stream = census_source(tmp_path, ceilometer_server, window_samples=window_samples), make_stream(meter, project_id="p0")
    start, end = aware(T0 - datetime.timedelta(days=1)), aware(T0 + datetime.timedelta(days=4))
    census = source.census(stream, start, end)
    assert sum(c for _, _, c in census.buckets) == 8
    assert census.buckets[0][0] <= aware(at[0]) and census.buckets[-1][1] > aware(at[2])
    windows = [(aware(T0 + datetime.timedelta(days=d)), aware(T0 + datetime.timedelta(days=d + 1))) for d in range(3)]
    items = [i for w in windows for page in source.fetch(stream, *w, census) for i in page]
    assert by_id(items) == expected(seeded, start.replace(tzinfo=None), end.replace(tzinfo=None))


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("value", ["1", 1, "m1"])
def test_untyped_raw_query_item_counts_and_reads_the_same_samples(tmp_path, ceilometer_server, strategy, value):
    """A metadata item without a type means what Ceilometer's simple query
    makes of it ("1" and 1 are the integer 1, "m1" a string), in the census
    (statistics) and in the read alike, or the census skips windows the
    read would have filled."""
    from telemetry_stack import ceilometer as stack

    meter = "typed." + uuid.uuid4().hex[:6]
    wanted = {"1": 1, 1: 1, "m1": "m1"}[value]
    at = [T0 + datetime.timedelta(minutes=m) for m in range(6)]
    seeded = [stack.meter_message(meter, ts, float(i), metadata={"flavor": wanted if i % 2 else "other"}) for i, ts in enumerate(at)]
    assert ceilometer_server.seed(seeded) == len(seeded)
    source = census_source(tmp_path, ceilometer_server, strategy)
    stream = make_stream(meter, raw_query=[{"field": "metadata.flavor", "value": value}])
    start, end = aware(T0), aware(T0 + datetime.timedelta(hours=1))
    census = source.census(stream, start, end)
    items = [i for page in source.fetch(stream, start, end, census) for i in page]
    want = {s["message_id"] for s in seeded if s["resource_metadata"]["flavor"] == wanted}
    assert ({i.message_id for i in items}, sum(c for _, _, c in census.buckets)) == (want, 3)


def test_keyset_raw_query_the_statistics_cannot_take_reads_every_window(tmp_path, ceilometer_server):
    """An inequality on metadata is a complex-query leaf for the keyset read,
    but the statistics' simple query refuses it (HTTP 400): no census then,
    every window is read, instead of a stream that fails every pass."""
    from telemetry_stack import ceilometer as stack

    meter = "ineq." + uuid.uuid4().hex[:6]
    seeded = [stack.meter_message(meter, T0 + datetime.timedelta(minutes=i), float(i), metadata={"size": i}) for i in range(6)]
    assert ceilometer_server.seed(seeded) == len(seeded)
    source = census_source(tmp_path, ceilometer_server, "keyset")
    stream = make_stream(meter, raw_query=[{"field": "metadata.size", "op": "ge", "value": "3", "type": "integer"}])
    start, end = aware(T0), aware(T0 + datetime.timedelta(hours=1))
    windows, census = sync.plan(source, stream, start, end, source.conf)
    items = [i for window in windows for page in source.fetch(stream, *window, census) for i in page]
    assert (census, {i.message_id for i in items}) == (None, {s["message_id"] for s in seeded[3:]})
