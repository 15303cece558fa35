"""The bad-input catalogue (doc/bad-input.rst): one case per kind.

Each case takes a REAL answer of the real Ceilometer v2 API or Gnocchi and,
through the mutate hook of proxies.FaultProxy, spoils one sample (or the
whole page) of one stream, then runs one pass of the real pipeline
(sync.run_pass: source driver, sink, checkpoints) over two streams:

- ``bad``: the spoiled one.  The bad item is either normalised as the
  catalogue says, or quarantined with a reason naming the problem; the rest
  of its page lands and its checkpoint moves.  An unreadable page fails the
  stream for this pass and its checkpoint does NOT move.
- ``good``: untouched; it always lands completely (the pass goes on).

Case ids are the "test id" column of doc/bad-input.rst.
"""

import dataclasses
import datetime
import json
import re
import typing
import uuid

import pytest
import sqlalchemy as sa
from telemetry_stack import seed

from meter_export import service
from meter_export import sources
from meter_export import sync
from meter_export.sources import gnocchi as gnocchi_source
from meter_export.storage import migrate
from meter_export.storage import samples as sink_mod
from tests.functional import proxies

UTC = datetime.UTC
T0 = datetime.datetime(2017, 1, 1, tzinfo=UTC)
SAMPLES = 8
TARGET = 2
PAGE_SIZE = 5  # 8 samples: two keyset pages, so paging is exercised too
INVALID_UTF8 = "INVALID-UTF8-MARK"


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    mutate: typing.Callable  # (rows or body, target id) -> rows / bytes / (status, bytes)
    expect: str  # quarantined | normalised | unreadable | empty
    pattern: str = ""  # quarantine reason, or stream error, as a regex
    check: typing.Callable = None  # normalised: (landed target row) -> None
    dbs: tuple = ("sqlite",)
    target: int = TARGET
    path: str = "/v1/aggregates"  # Gnocchi: the answers mutated


ALL_DBS = ("sqlite", "postgresql", "mysql")


# -- mutations of one Ceilometer sample ----------------------------------------


def on_target(change):
    """A mutation applying ``change(sample)`` to the target sample in place."""

    def mutate(rows, target_id):
        for row in rows:
            if isinstance(row, dict) and row.get("id") == target_id:
                change(row)
        return rows

    return mutate


def set_field(name, value):
    return on_target(lambda row: row.__setitem__(name, value))


def drop_field(*names):
    return on_target(lambda row: [row.pop(n, None) for n in names])


def replace_target(value):
    def mutate(rows, target_id):
        return [value if isinstance(r, dict) and r.get("id") == target_id else r for r in rows]

    return mutate


def append_copy(**changes):
    def mutate(rows, target_id):
        extra = [dict(r, **changes) for r in rows if r.get("id") == target_id]
        return rows + extra

    return mutate


def invalid_utf8(field):
    """The target's ``field`` (a string, or inside the metadata) gets bytes \\xff\\xfe."""

    def mutate(rows, target_id):
        for row in rows:
            if row.get("id") == target_id:
                if field == "metadata":
                    row["metadata"] = dict(row.get("metadata") or {}, note=INVALID_UTF8)
                else:
                    row[field] = INVALID_UTF8
        return json.dumps(rows).encode().replace(INVALID_UTF8.encode(), b"r-\xff\xfe-x")

    return mutate


def whole_body(status, body):
    return lambda rows, target_id: (status, body)


def truncated(rows, target_id):
    text = json.dumps(rows).encode()
    return 200, text[: len(text) // 2]


def timestamp_shift(render):
    """Re-render the target's naive UTC timestamp with ``render(aware)``."""

    def change(row):
        row["timestamp"] = render(datetime.datetime.fromisoformat(row["timestamp"]).replace(tzinfo=UTC))

    return on_target(change)


def same_instant(row):
    assert row["timestamp"] == row["seeded_timestamp"], row


def volume_is(value):
    def check(row):
        assert row["counter_volume"] == value and type(row["counter_volume"]) is float, row

    return check


def nulls(row):
    assert (row["counter_unit"], row["project_id"], row["user_id"], row["recorded_at"], row["source"]) == (None,) * 5, row


CEILOMETER_CASES = [
    # missing fields
    Case("ceilometer-missing-meter", drop_field("meter"), "quarantined", r"^meter is missing$"),
    Case("ceilometer-missing-timestamp", drop_field("timestamp"), "quarantined", r"timestamp None is not a string"),
    Case("ceilometer-missing-volume", drop_field("volume"), "quarantined", r"volume None is not a number"),
    Case("ceilometer-missing-type", drop_field("type"), "quarantined", r"counter_type is missing"),
    Case("ceilometer-missing-message-id", drop_field("id"), "quarantined", r"no message_id"),
    Case(
        "ceilometer-missing-optional-fields",
        drop_field("unit", "project_id", "user_id", "recorded_at", "source"),
        "normalised",
        check=nulls,
    ),
    Case("ceilometer-unknown-extra-field", set_field("colour", "blue"), "normalised", check=lambda row: None),
    # volumes
    Case("ceilometer-volume-nan", set_field("volume", float("nan")), "quarantined", r"volume nan is not finite"),
    Case("ceilometer-volume-infinity", set_field("volume", float("inf")), "quarantined", r"volume inf is not finite"),
    Case("ceilometer-volume-minus-infinity", set_field("volume", float("-inf")), "quarantined", r"volume -inf is not finite"),
    Case("ceilometer-volume-string", set_field("volume", "12"), "quarantined", r"volume '12' is not a number"),
    Case("ceilometer-volume-null", set_field("volume", None), "quarantined", r"volume None is not a number"),
    Case("ceilometer-volume-boolean", set_field("volume", True), "quarantined", r"volume True is not a number"),
    Case("ceilometer-volume-integer", set_field("volume", 7), "normalised", check=volume_is(7.0)),
    # timestamps
    Case(
        "ceilometer-timestamp-offset",
        timestamp_shift(lambda t: t.astimezone(datetime.timezone(datetime.timedelta(hours=2))).isoformat()),
        "normalised",
        check=same_instant,
    ),
    Case("ceilometer-timestamp-zulu", timestamp_shift(lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")), "normalised", check=same_instant),
    Case("ceilometer-timestamp-naive-space", timestamp_shift(lambda t: t.strftime("%Y-%m-%d %H:%M:%S")), "normalised", check=same_instant),
    Case(
        "ceilometer-timestamp-date-only", set_field("timestamp", "2017-01-01"), "quarantined", r"timestamp '2017-01-01' has no time of day"
    ),
    Case(
        "ceilometer-timestamp-future",
        set_field("timestamp", "2100-01-01T00:00:00"),
        "quarantined",
        r"timestamp 2100-01-01T00:00:00\+00:00 is in the future",
    ),
    Case("ceilometer-timestamp-garbage", set_field("timestamp", "yesterday"), "quarantined", r"Invalid isoformat string: 'yesterday'"),
    Case("ceilometer-timestamp-number", set_field("timestamp", 1483228800), "quarantined", r"timestamp 1483228800 is not a string"),
    Case("ceilometer-recorded-at-garbage", set_field("recorded_at", "soon"), "quarantined", r"Invalid isoformat string: 'soon'"),
    # metadata
    Case(
        "ceilometer-metadata-huge",
        set_field("metadata", {"blob": "x" * 70000}),
        "quarantined",
        r"resource_metadata is 700\d\d bytes, more than 65535",
        dbs=ALL_DBS,
    ),
    Case("ceilometer-metadata-list", set_field("metadata", ["a", "b"]), "quarantined", r"metadata is a list, not an object"),
    Case("ceilometer-metadata-string", set_field("metadata", "flavor=m1"), "quarantined", r"metadata is a str, not an object"),
    Case(
        "ceilometer-metadata-null",
        set_field("metadata", None),
        "normalised",
        check=lambda row: row["resource_metadata"] in ({}, None) or pytest.fail(row),
    ),
    Case(
        "ceilometer-metadata-nul",
        set_field("metadata", {"k": "a\x00b"}),
        "quarantined",
        r"resource_metadata contains a NUL character",
        dbs=ALL_DBS,
    ),
    # strings
    Case("ceilometer-invalid-utf8-resource-id", invalid_utf8("resource_id"), "quarantined", r"resource_id is not valid UTF-8", dbs=ALL_DBS),
    Case(
        "ceilometer-invalid-utf8-metadata",
        invalid_utf8("metadata"),
        "quarantined",
        r"resource_metadata is not JSON-serialisable",
        dbs=ALL_DBS,
    ),
    Case(
        "ceilometer-nul-in-resource-id",
        set_field("resource_id", "r\x00x"),
        "quarantined",
        r"resource_id contains a NUL character",
        dbs=ALL_DBS,
    ),
    Case(
        "ceilometer-resource-id-too-long",
        set_field("resource_id", "r" * 300),
        "quarantined",
        r"resource_id is 300 characters, longer than its column \(255\)",
        dbs=ALL_DBS,
    ),
    Case(
        "ceilometer-non-bmp-text",
        set_field("resource_id", "vm-\U0001f600-é"),
        "normalised",
        check=lambda row: row["resource_id"] == "vm-\U0001f600-é" or pytest.fail(row),
        dbs=ALL_DBS,
    ),
    # one page
    Case(
        "ceilometer-duplicate-id-different-content",
        append_copy(volume=999.5),
        "quarantined",
        r"read twice with different content; the later copy was kept",
        check=volume_is(999.5),
    ),
    Case("ceilometer-duplicate-id-same-content", append_copy(), "normalised", check=lambda row: None),
    Case("ceilometer-sample-not-an-object", replace_target("oops"), "quarantined", r"sample is a str, not an object"),
    Case("ceilometer-empty-page", lambda rows, target_id: [], "empty"),
    Case("ceilometer-html-body-200", whole_body(200, proxies.HTML_BODY), "unreadable", r"truncated or invalid JSON body"),
    Case("ceilometer-truncated-json-200", truncated, "unreadable", r"truncated or invalid JSON body"),
    Case(
        "ceilometer-object-instead-of-list",
        whole_body(200, b'{"error_message": {"faultstring": "nope"}}'),
        "unreadable",
        r"the answer is a JSON dict, not a list",
    ),
    Case(
        "ceilometer-unusable-page-cursor",
        set_field("timestamp", "garbage"),
        "unreadable",
        r"cannot page past the last row of a full page",
        target=PAGE_SIZE - 1,
    ),
]


# -- mutations of one Gnocchi point ---------------------------------------------


def on_point(change):
    """``change(point)`` on the target point of the bad metric's series."""

    def mutate(body, target):
        metric_id, index = target
        series = ((body.get("measures") or {}).get(metric_id) or {}).get("mean")
        if series and len(series) > index:
            series[index] = change(list(series[index]))
        return json.dumps(body).encode()

    return mutate


def gnocchi_whole(status, body):
    return lambda original, target: (status, body)


def _shifted(point, render):
    when = datetime.datetime.fromisoformat(point[0])
    return [render(when)] + point[1:]


GNOCCHI_CASES = [
    Case("gnocchi-value-nan", on_point(lambda p: p[:2] + [float("nan")]), "quarantined", r"value is not a finite number"),
    Case("gnocchi-value-infinity", on_point(lambda p: p[:2] + [float("inf")]), "quarantined", r"value is not a finite number"),
    Case("gnocchi-value-null", on_point(lambda p: p[:2] + [None]), "quarantined", r"value is not a finite number"),
    Case("gnocchi-value-string", on_point(lambda p: p[:2] + ["12"]), "quarantined", r"value is not a finite number"),
    Case("gnocchi-point-too-short", on_point(lambda p: p[:2]), "quarantined", r"value is not a finite number"),
    Case("gnocchi-timestamp-garbage", on_point(lambda p: ["garbage"] + p[1:]), "quarantined", r"unparsable timestamp"),
    Case("gnocchi-timestamp-date-only", on_point(lambda p: [p[0][:10]] + p[1:]), "quarantined", r"unparsable timestamp"),
    Case(
        "gnocchi-timestamp-naive",
        on_point(lambda p: _shifted(p, lambda t: t.astimezone(UTC).replace(tzinfo=None).isoformat())),
        "normalised",
    ),
    Case(
        "gnocchi-timestamp-offset",
        on_point(lambda p: _shifted(p, lambda t: t.astimezone(datetime.timezone(datetime.timedelta(hours=-5))).isoformat())),
        "normalised",
    ),
    Case("gnocchi-measures-not-an-object", gnocchi_whole(200, b"[]"), "unreadable", r"the answer has no measures object"),
    Case("gnocchi-html-body-200", gnocchi_whole(200, proxies.HTML_BODY), "unreadable", r"truncated or invalid JSON body"),
    Case(
        "gnocchi-search-page-not-a-list",
        gnocchi_whole(200, b'{"resources": []}'),
        "unreadable",
        r"the answer is not a list of resources",
        path="/v1/search/resource",
    ),
]


def _params(cases):
    return [pytest.param(case, db, id="%s-%s" % (case.id, db)) for case in cases for db in case.dbs]


# -- the pass -------------------------------------------------------------------


def make_conf(tmp_path, db_url, source_lines, filters_yaml, initial_start):
    filters = tmp_path / "filters.yaml"
    filters.write_text(filters_yaml)
    path = tmp_path / "meter-export.conf"
    path.write_text(
        "[database]\nconnection = %s\n%s\n"
        "[sync]\nfilters_file = %s\ninitial_start = %s\nlookback = 0\nsettle = 0\nmax_window = 999999999\n"
        % (db_url, source_lines, filters, initial_start)
    )
    return service.prepare_service(["--config-file", str(path)])


def one_pass(conf):
    """(results by meter, the Sink) of one pass over every stream."""
    from meter_export import filters as filters_mod

    target = sink_mod.Sink.from_conf(conf)
    migrate.upgrade(target)
    source = sources.get_driver(conf)
    source._sleep = lambda seconds: None  # NOTE(bad-input): retries without the backoff
    try:
        streams = sync.streams(conf.source.driver, filters_mod.load(conf.sync.filters_file))
        results = sync.run_pass(sources.DriverPool.of(source), target, streams, conf)
    finally:
        source.close()
    return {r.stream.meter.name: r for r in results}, target


def read(target, table_name, **where):
    table = target.metadata.tables[table_name]
    query = sa.select(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with target.engine.connect() as conn:
        return [row._asdict() for row in conn.execute(query)]


def checkpoint(target, stream):
    return target.checkpoint(stream.key)


def assert_outcome(case, results, target, bad, good, rows_of, target_id, expected_rest, expected_all):
    """The checks shared by every source; ``rows_of(meter)`` gives the landed
    rows of a meter keyed like ``expected_*``."""
    good_result, bad_result = results[good], results[bad]
    assert good_result.error is None and good_result.complete, good_result
    assert set(rows_of(good)) == expected_all(good)
    assert checkpoint(target, good_result.stream) is not None
    quarantined = read(target, "quarantine")
    if case.expect == "unreadable":
        assert bad_result.error and re.search(case.pattern, bad_result.error), bad_result.error
        assert checkpoint(target, bad_result.stream) is None, "an unreadable page moved the checkpoint"
        assert quarantined == []
        return
    assert bad_result.error is None and bad_result.complete, bad_result
    assert checkpoint(target, bad_result.stream) is not None, "the checkpoint did not move"
    landed = rows_of(bad)
    if case.expect == "empty":
        assert landed == {} and quarantined == []
        return
    assert set(landed) - {target_id} == expected_rest(bad), "the rest of the page did not land"
    if case.expect == "quarantined":
        assert [q["stream"] for q in quarantined] == [str(bad_result.stream)], quarantined
        [q] = quarantined
        assert re.search(case.pattern, q["reason"]), q["reason"]
        assert q["payload"]
        if case.check is None:
            assert target_id not in landed
    else:
        assert quarantined == [], quarantined
        assert target_id in landed
    if case.check is not None:
        case.check(landed[target_id])


# -- Ceilometer -------------------------------------------------------------------


@pytest.fixture(scope="module")
def ceilometer_data(ceilometer_server):
    """Two meters of SAMPLES samples each, 10 s apart from T0 (naive UTC)."""
    from telemetry_stack import ceilometer as stack

    tag = uuid.uuid4().hex[:6]
    meters = {"bad": "bad.%s" % tag, "good": "good.%s" % tag}
    messages = {}
    for meter in meters.values():
        messages[meter] = [
            stack.meter_message(meter, T0 + datetime.timedelta(seconds=10 * i), float(i) + 0.5, resource_id="r%d" % i)
            for i in range(SAMPLES)
        ]
    assert ceilometer_server.seed([m for ms in messages.values() for m in ms]) == 2 * SAMPLES
    return meters, messages


def ceilometer_hook(case, meter, target_id):
    def mutate(request, status, body):
        if not request.path.startswith(("/v2/query/samples", "/v2/samples")) or meter not in request.text:
            return None
        rows = json.loads(body)
        if target_id not in {r.get("id") for r in rows} and case.expect not in ("empty", "unreadable"):
            return None
        changed = case.mutate(rows, target_id)
        if isinstance(changed, tuple):
            return changed
        return status, changed if isinstance(changed, bytes) else json.dumps(changed).encode()

    return mutate


def ceilometer_rows(target, messages):
    seeded = {m["message_id"]: m["timestamp"] for ms in messages.values() for m in ms}

    def rows_of(meter):
        out = {}
        for row in read(target, "samples", counter_name=meter):
            row["seeded_timestamp"] = seeded.get(row["message_id"])
            out[row["message_id"]] = row
        return out

    return rows_of


@pytest.mark.parametrize(("case", "db"), _params(CEILOMETER_CASES))
def test_ceilometer(case, db, request, tmp_path, ceilometer_server, ceilometer_data):
    meters, messages = ceilometer_data
    db_url = request.getfixturevalue({"sqlite": "sqlite_url", "postgresql": "pg_url", "mysql": "mysql_url"}[db])
    target_id = messages[meters["bad"]][case.target]["message_id"]
    with proxies.FaultProxy(ceilometer_server.endpoint, mutate=ceilometer_hook(case, meters["bad"], target_id)) as proxy:
        source = (
            "[source]\ndriver = ceilometer\nmax_retries = 1\ntimeout = 30\n"
            "[service_credentials]\nauth_type = none\nendpoint = %s\n"
            "[ceilometer]\npage_size = %d\nstrategy = keyset\n" % (proxy.endpoint, PAGE_SIZE)
        )
        filters = "filters:\n  - name: c\n    meters: [%s, %s]\n" % (meters["bad"], meters["good"])
        conf = make_conf(tmp_path, db_url, source, filters, (T0 - datetime.timedelta(minutes=1)).isoformat())
        results, target = one_pass(conf)
    try:
        ids = {meter: {m["message_id"] for m in ms} for meter, ms in messages.items()}
        assert_outcome(
            case,
            results,
            target,
            meters["bad"],
            meters["good"],
            ceilometer_rows(target, messages),
            target_id,
            expected_rest=lambda meter: ids[meter] - {target_id},
            expected_all=lambda meter: ids[meter],
        )
    finally:
        target.close()


def test_ceilometer_unknown_meter(tmp_path, sqlite_url, ceilometer_server, ceilometer_data):
    """A meter the source has never heard of: an empty answer, no error; the
    checkpoint moves (there is nothing to wait for)."""
    meters, messages = ceilometer_data
    unknown = "no.such.meter.%s" % uuid.uuid4().hex[:6]
    source = "[source]\ndriver = ceilometer\n[service_credentials]\nauth_type = none\nendpoint = %s\n" % ceilometer_server.endpoint
    filters = "filters:\n  - name: c\n    meters: [%s, %s]\n" % (unknown, meters["good"])
    results, target = one_pass(make_conf(tmp_path, sqlite_url, source, filters, (T0 - datetime.timedelta(minutes=1)).isoformat()))
    try:
        assert results[unknown].error is None and results[unknown].written == 0
        assert checkpoint(target, results[unknown].stream) is not None
        assert results[meters["good"]].written == SAMPLES
    finally:
        target.close()


# -- Gnocchi ----------------------------------------------------------------------

NOW_HOUR = datetime.datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
POLICY = "mx-e2e-5min"


@pytest.fixture(scope="module")
def gnocchi_data(gnocchi_server):
    client = seed.make_client(gnocchi_server.endpoint)
    seed.ensure_resource_types(client)
    seed.ensure_archive_policy(client, POLICY, granularity=300)
    project = str(uuid.uuid4())
    start = NOW_HOUR - datetime.timedelta(minutes=5 * SAMPLES)
    seeded = seed.seed_project(
        client, project, {"cpu": "ns", "memory": "MB"}, resources=1, start=start, end=NOW_HOUR, archive_policy=POLICY
    )
    gnocchi_server.wait_processed(timeout=120)
    [resource] = seeded.resources
    return project, resource, seeded.points, start


def gnocchi_hook(case, metric_id):
    # NOTE(bad-input): both streams send the same search; the bad stream
    # (cpu, listed first) sends the first one (a wrong shape is not retried).
    searches = iter(range(1))

    def mutate(request, status, body):
        if not request.path.startswith(case.path):
            return None
        if metric_id in request.text or (case.path != "/v1/aggregates" and next(searches, None) is not None):
            changed = case.mutate(json.loads(body), (metric_id, TARGET))
            return changed if isinstance(changed, tuple) else (status, changed)
        return None

    return mutate


@pytest.mark.parametrize(("case", "db"), _params(GNOCCHI_CASES))
def test_gnocchi(case, db, request, tmp_path, gnocchi_server, gnocchi_data):
    project, resource, points, start = gnocchi_data
    db_url = request.getfixturevalue({"sqlite": "sqlite_url", "postgresql": "pg_url", "mysql": "mysql_url"}[db])
    metric_id = resource["metrics"]["cpu"]
    target_ts = points[(resource["id"], "cpu")][TARGET][0]
    target_id = gnocchi_source.message_id(metric_id, 300.0, "mean", target_ts)
    with proxies.FaultProxy(gnocchi_server.endpoint, mutate=gnocchi_hook(case, metric_id)) as proxy:
        source = (
            "[source]\nmax_retries = 1\n[service_credentials]\nauth_type = gnocchi-basic\nuser = admin\nendpoint = %s\n" % proxy.endpoint
        )
        filters = "filters:\n  - name: p\n    query: {project_id: %s, resource_type: instance}\n    meters: [cpu, memory]\n" % project
        conf = make_conf(tmp_path, db_url, source, filters, (start - datetime.timedelta(minutes=1)).isoformat())
        results, target = one_pass(conf)
    try:
        expected = {m: {(ts, v) for ts, v in points[(resource["id"], m)]} for m in ("cpu", "memory")}
        target_point = (target_ts, dict(points[(resource["id"], "cpu")])[target_ts])

        def rows_of(meter):
            return {
                r["message_id"] if r["message_id"] == target_id else (r["timestamp"], r["counter_volume"]): r
                for r in read(target, "samples", counter_name=meter)
            }

        assert_outcome(
            case,
            results,
            target,
            "cpu",
            "memory",
            rows_of,
            target_id,
            expected_rest=lambda meter: expected[meter] - {target_point},
            expected_all=lambda meter: expected[meter],
        )
        if case.expect == "normalised":
            landed = read(target, "samples", message_id=target_id)
            assert [(r["timestamp"], r["counter_volume"]) for r in landed] == [target_point]
    finally:
        target.close()


def test_catalogue_has_at_least_20_kinds_and_is_documented():
    import os

    ids = [c.id for c in CEILOMETER_CASES + GNOCCHI_CASES] + ["ceilometer-unknown-meter"]
    assert len(set(ids)) == len(ids) >= 20
    doc = os.path.join(os.path.dirname(__file__), "..", "..", "doc", "bad-input.rst")
    with open(doc) as f:
        text = f.read()
    assert [i for i in ids if i not in text] == [], "cases missing from doc/bad-input.rst"
