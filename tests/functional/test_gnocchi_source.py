"""GnocchiSource against a real Gnocchi 4.7.1 seeded with known points."""

import datetime
import uuid

import pytest
from oslo_config import cfg
from telemetry_stack import seed

from meter_export import service
from meter_export import sources
from meter_export.sources import gnocchi

UTC = datetime.UTC
HOUR = datetime.timedelta(hours=1)
POLICY = "mx-test-5min"
METERS = {"cpu": "ns", "memory": "MB"}
# NOTE(gnocchi): well in the past but inside the policy's timespan, which
# counts back from each metric's newest point.
END = datetime.datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - datetime.timedelta(days=1)
START = END - 6 * HOUR


@pytest.fixture(scope="module")
def client(gnocchi_server):
    client = seed.make_client(gnocchi_server.endpoint)
    seed.ensure_resource_types(client)
    seed.ensure_archive_policy(client, POLICY, granularity=300, extra_granularities=[(3600, 86400 * 30)])
    return client


@pytest.fixture(scope="module")
def project(client, gnocchi_server):
    """3 instances x 2 meters x 6 h of 5-minute points, plus a neighbour project."""
    seeded = seed.seed_project(client, str(uuid.uuid4()), METERS, resources=3, start=START, end=END, archive_policy=POLICY)
    seed.seed_project(client, str(uuid.uuid4()), METERS, resources=2, start=START, end=END, archive_policy=POLICY)
    gnocchi_server.wait_processed(timeout=120)
    return seeded


@pytest.fixture
def conf(gnocchi_server, tmp_path):
    path = tmp_path / "meter-export.conf"
    path.write_text(
        "[source]\nname = test-cloud\nmax_retries = 1\n"
        "[service_credentials]\nauth_type = gnocchi-basic\nuser = admin\nendpoint = %s\n" % gnocchi_server.endpoint
    )
    conf = cfg.ConfigOpts()
    service.register_opts(conf)
    conf(["--config-file", str(path)], project="meter-export")
    return conf


def stream(project_id=None, meter="cpu", **kwargs):
    meter_spec = sources.MeterSpec(meter, **{k: kwargs.pop(k) for k in ("granularity", "aggregation", "counter_type") if k in kwargs})
    flt = sources.Filter("f", (meter_spec,), project_id=project_id, resource_type="instance", **kwargs)
    return sources.Stream("test-cloud", flt, meter_spec)


def fetch(conf, strm, start=START, end=END):
    driver = gnocchi.GnocchiSource(conf)
    try:
        return [item for page in driver.fetch(strm, start, end) for item in page]
    finally:
        driver.close()


def expected(seeded, meter, start=START, end=END):
    return {(rid, ts): value for (rid, m), points in seeded.points.items() if m == meter for ts, value in points if start <= ts < end}


def as_dict(items):
    assert all(isinstance(i, sources.Sample) for i in items)
    got = {(s.resource_id, s.timestamp): s.counter_volume for s in items}
    assert len(got) == len(items), "duplicate samples"
    return got


def test_window_returns_exactly_the_seeded_points(conf, project):
    pid = project.resources[0]["project_id"]
    items = fetch(conf, stream(pid, counter_type="cumulative"))
    assert as_dict(items) == expected(project, "cpu")
    assert len(items) == 3 * 72
    metric_ids = {r["id"]: r["metrics"]["cpu"] for r in project.resources}
    users = {r["id"]: r["user_id"] for r in project.resources}
    for s in items:
        assert s.message_id == gnocchi.message_id(metric_ids[s.resource_id], 300, "mean", s.timestamp)
        assert (s.counter_name, s.counter_type, s.counter_unit, s.source) == ("cpu", "cumulative", "ns", "test-cloud")
        assert (s.project_id, s.user_id, s.recorded_at) == (pid, users[s.resource_id], None)
        assert s.timestamp.utcoffset() == datetime.timedelta(0)
        assert s.resource_metadata["flavor_id"] == "m1.small" and "metrics" not in s.resource_metadata


def test_unit_comes_from_the_metric(conf, project):
    items = fetch(conf, stream(project.resources[0]["project_id"], meter="memory"))
    assert as_dict(items) == expected(project, "memory")
    assert {s.counter_unit for s in items} == {"MB"}


def test_start_is_inclusive_and_end_exclusive(conf, project):
    start, end = START + HOUR, START + 2 * HOUR
    items = fetch(conf, stream(project.resources[0]["project_id"]), start, end)
    assert as_dict(items) == expected(project, "cpu", start, end)
    stamps = sorted({s.timestamp for s in items})
    assert stamps[0] == start and stamps[-1] == end - datetime.timedelta(minutes=5) and len(stamps) == 12


def test_unaligned_window_keeps_only_buckets_inside(conf, project):
    start, end = START + datetime.timedelta(minutes=7), START + datetime.timedelta(minutes=31)
    items = fetch(conf, stream(project.resources[0]["project_id"]), start, end)
    assert sorted({s.timestamp for s in items}) == [START + datetime.timedelta(minutes=m) for m in (10, 15, 20, 25, 30)]


def test_project_filter_isolates(conf, project):
    # NOTE(gnocchi): the module seeded a neighbour project with the same meters.
    everything = fetch(conf, stream(None))
    mine = fetch(conf, stream(project.resources[0]["project_id"]))
    assert {s.project_id for s in mine} == {project.resources[0]["project_id"]}
    assert len({s.project_id for s in everything}) >= 2
    assert set(as_dict(mine)) < set(as_dict(everything))


def test_raw_query_and_resource_id_narrow_the_search(conf, project):
    pid = project.resources[0]["project_id"]
    by_name = fetch(conf, stream(pid, raw_query={"=": {"display_name": "vm-001"}}))
    by_id = fetch(conf, stream(pid, resource_id=project.resources[1]["id"]))
    assert {s.resource_id for s in by_name} == {project.resources[1]["id"]} == {s.resource_id for s in by_id}
    assert len(by_name) == 72


def test_default_granularity_is_the_finest_and_coarser_can_be_asked(conf, project):
    pid = project.resources[0]["project_id"]
    hourly = fetch(conf, stream(pid, granularity=3600, aggregation="max"))
    points = expected(project, "cpu")
    for s in hourly:
        bucket = [v for (rid, ts), v in points.items() if rid == s.resource_id and s.timestamp <= ts < s.timestamp + HOUR]
        assert len(bucket) == 12 and s.counter_volume == max(bucket)
        metric_id = next(r["metrics"]["cpu"] for r in project.resources if r["id"] == s.resource_id)
        assert s.message_id == gnocchi.message_id(metric_id, 3600, "max", s.timestamp)
    assert len(hourly) == 3 * 6


def test_rereading_gives_identical_message_ids(conf, project):
    pid = project.resources[0]["project_id"]
    first = fetch(conf, stream(pid))
    second = fetch(conf, stream(pid))
    assert [s.message_id for s in first] == [s.message_id for s in second]
    assert len({s.message_id for s in first}) == len(first)


def test_small_chunks_give_several_pages_and_the_same_samples(conf, project):
    conf.set_override("metrics_per_request", 2, group="gnocchi")
    driver = gnocchi.GnocchiSource(conf)
    pages = list(driver.fetch(stream(project.resources[0]["project_id"]), START, END))
    assert len(pages) == 2
    assert as_dict([i for p in pages for i in p]) == expected(project, "cpu")


def test_points_pushed_later_appear_in_a_later_fetch(conf, client, gnocchi_server):
    resources = seed.create_resources(client, str(uuid.uuid4()), 2, {"cpu": "ns"}, archive_policy=POLICY)
    pushed = seed.push_points(client, resources, ["cpu"], START, START + HOUR)
    gnocchi_server.wait_processed(timeout=60)
    strm = stream(resources[0]["project_id"])
    first = fetch(conf, strm, START, END)
    assert as_dict(first) == {(rid, ts): v for (rid, _), pts in pushed.items() for ts, v in pts}
    pushed_later = seed.push_points(client, resources, ["cpu"], START + HOUR, START + 2 * HOUR)
    gnocchi_server.wait_processed(timeout=60)
    second = fetch(conf, strm, START, END)
    assert len(second) == 2 * 24
    assert {(s.resource_id, s.timestamp) for s in second} >= {(rid, ts) for (rid, _), pts in pushed_later.items() for ts, _ in pts}
    assert {s.message_id for s in first} < {s.message_id for s in second}


def test_aggregation_missing_from_policy_is_a_config_error(conf, project):
    with pytest.raises(sources.SourceConfigError, match="aggregation 'std'"):
        fetch(conf, stream(project.resources[0]["project_id"], aggregation="std"))


def test_unknown_resource_type_is_a_config_error(conf, project):
    strm = stream(project.resources[0]["project_id"])
    strm = sources.Stream(strm.source, sources.Filter("f", strm.filter.meters, resource_type="nope"), strm.meter)
    with pytest.raises(sources.SourceConfigError, match="nope"):
        fetch(conf, strm)


def test_no_server_is_unavailable_after_retries(conf):
    from telemetry_stack import gnocchi as stack

    conf.set_override("endpoint_override", "http://127.0.0.1:%d" % stack.free_port(), group="gnocchi")
    conf.set_override("max_retries", 1, group="source")
    driver = gnocchi.GnocchiSource(conf)
    driver._sleep = lambda seconds: None
    with pytest.raises(sources.SourceUnavailable):
        list(driver.fetch(stream("p"), START, END))


@pytest.mark.parametrize("with_query", [True, False], ids=["project", "no-query"])
def test_census_counts_the_points_with_and_without_a_query(conf, project, with_query):
    """A filter with no query still gets a census: Gnocchi 4.7.1 answers 500
    to a groupby without a search, so the driver sends one matching all."""
    source = gnocchi.GnocchiSource(conf)
    try:
        census = source.census(stream(project.resources[0]["project_id"] if with_query else None), START, END)
    finally:
        source.close()
    counted = sum(c for _, _, c in census.buckets)
    ours = sum(len(p) for (rid, meter), p in project.points.items() if meter == "cpu")
    # NOTE(gnocchi): a count may be above the points (coarser granularities
    # of the policy are counted too), never below.
    assert counted >= ours > 0
    assert {r["id"] for r in project.resources} <= set(census.detail)


def lookup_requests(conf, strm):
    """Requests a first fetch spends learning its metrics' units and policies:
    a second fetch, in a new pass of the same driver, has them cached."""
    driver = gnocchi.GnocchiSource(conf)

    def one_fetch():
        sent = driver.requests
        items = [i for page in driver.fetch(strm, START, END) for i in page]
        return driver.requests - sent, items

    try:
        first, items = one_fetch()
        driver.new_pass()
        again, _ = one_fetch()
        return first - again, items
    finally:
        driver.close()


def fresh_meter():
    """A metric name no other test uses: the server holds only ours."""
    return "mx.lookup.%s" % uuid.uuid4().hex[:8]


@pytest.mark.parametrize(("instances", "lookups"), [(20, 1), (3, 3)], ids=["one-listing", "a-get-each"])
def test_a_first_pass_lists_the_metrics_of_a_name_once_it_pays(conf, client, instances, lookups):
    """Above LIST_FIRST_PAGE_ABOVE unknown metrics one listing page finds all
    of a small cloud's (it was one GET each below 50); below it, GETs."""
    meter = fresh_meter()
    resources = seed.create_resources(client, str(uuid.uuid4()), instances, {meter: "B"}, archive_policy=POLICY)
    spent, _ = lookup_requests(conf, stream(resources[0]["project_id"], meter=meter))
    assert spent == lookups


def test_listing_stops_while_gets_are_cheaper_and_every_metric_is_known(conf, client, gnocchi_server, monkeypatch):
    """Pages of the name's listing, in id order, only while more than
    LIST_BY_NAME_ABOVE of ours are unknown; the rest one GET each. Sizes
    shrunk so that a cloud of 30 metrics has several pages."""
    monkeypatch.setattr(gnocchi, "METRIC_PAGE", 4)
    monkeypatch.setattr(gnocchi, "LIST_BY_NAME_ABOVE", 5)
    meter = fresh_meter()
    ours = seed.create_resources(client, str(uuid.uuid4()), 20, {meter: "B"}, archive_policy=POLICY)
    theirs = seed.create_resources(client, str(uuid.uuid4()), 10, {meter: "B"}, archive_policy=POLICY)
    seed.push_points(client, ours, [meter], START, START + HOUR)
    gnocchi_server.wait_processed(timeout=120)
    wanted = {r["metrics"][meter] for r in ours}
    every = sorted([r["metrics"][meter] for r in ours + theirs])
    pages, unknown = 0, set(wanted)
    for first in range(0, len(every), 4):
        pages += 1
        unknown -= set(every[first : first + 4])
        if len(every[first : first + 4]) < 4 or len(unknown) <= 5:
            break
    spent, items = lookup_requests(conf, stream(ours[0]["project_id"], meter=meter))
    assert spent == pages + len(unknown)
    assert pages > 1 and unknown
    assert len(items) == 20 * 12 and {s.counter_unit for s in items} == {"B"}


def test_the_streams_of_a_pass_share_their_filters_resource_search(conf, project, monkeypatch):
    """One search per filter and pass, whichever driver of the pool reads
    which meter; the next pass searches again (resources come and go)."""
    searched = []
    search = gnocchi.GnocchiSource._search

    def counted(self, flt):
        searched.append(flt.name)
        return search(self, flt)

    monkeypatch.setattr(gnocchi.GnocchiSource, "_search", counted)
    pid = project.resources[0]["project_id"]
    pool = sources.DriverPool(lambda: gnocchi.GnocchiSource(conf), size=2)
    try:
        for _ in range(2):
            pool.new_pass()
            with pool.lease("cpu") as first, pool.lease("memory") as second:
                assert first is not second
                read = (("cpu", first), ("memory", second))
                got = {m: as_dict([i for page in d.fetch(stream(pid, meter=m), START, END) for i in page]) for m, d in read}
            assert got == {m: expected(project, m) for m in METERS}
    finally:
        pool.close()
    assert searched == ["f", "f"]
