"""Pure tests of the Ceilometer driver: mapping, dedup, query building, errors."""

import datetime
import json
import re

import pytest
from oslo_config import cfg

from meter_export import service
from meter_export import sources
from meter_export.sources import ceilometer
from meter_export.sources import http

UTC = datetime.UTC


def raw(**overrides):
    item = {
        "id": "m1",
        "meter": "cpu",
        "type": "cumulative",
        "unit": "ns",
        "volume": 4.0,
        "user_id": "u1",
        "project_id": "p0",
        "resource_id": "r1",
        "source": "openstack",
        "timestamp": "2017-01-01T00:00:05.250000",
        "recorded_at": "2026-11-21T20:57:02",
        "metadata": {"flavor.name": "m1.small"},
    }
    item.update(overrides)
    return item


def stream(**filter_fields):
    meter = sources.MeterSpec("cpu")
    return sources.Stream("ceilometer", sources.Filter("f", (meter,), **filter_fields), meter)


def test_maps_every_field_with_aware_utc_timestamps():
    sample = ceilometer.to_item(raw())
    assert sample == sources.Sample(
        message_id="m1",
        counter_name="cpu",
        counter_type="cumulative",
        counter_unit="ns",
        counter_volume=4.0,
        project_id="p0",
        user_id="u1",
        resource_id="r1",
        source="openstack",
        timestamp=datetime.datetime(2017, 1, 1, 0, 0, 5, 250000, tzinfo=UTC),
        recorded_at=datetime.datetime(2026, 11, 21, 20, 57, 2, tzinfo=UTC),
        resource_metadata={"flavor.name": "m1.small"},
    )


def test_integer_volume_becomes_float_and_null_ids_stay_none():
    sample = ceilometer.to_item(raw(volume=3, user_id=None, recorded_at=None, metadata=None))
    assert sample.counter_volume == 3.0 and isinstance(sample.counter_volume, float)
    assert (sample.user_id, sample.recorded_at, sample.resource_metadata) == (None, None, {})


@pytest.mark.parametrize(
    "overrides, reason",
    [
        ({"id": None}, "no message_id"),
        ({"volume": "12"}, "not a number"),
        ({"volume": None}, "not a number"),
        ({"volume": True}, "not a number"),
        ({"volume": float("nan")}, "not finite"),
        ({"volume": float("inf")}, "not finite"),
        ({"timestamp": "yesterday"}, "yesterday"),
        ({"timestamp": None}, "not a string"),
        ({"recorded_at": "garbage"}, "garbage"),
    ],
)
def test_unmappable_items_are_rejected_with_their_payload(overrides, reason):
    item = ceilometer.to_item(raw(**overrides))
    assert isinstance(item, sources.Rejected)
    assert reason in item.reason
    assert item.message_id == overrides.get("id", "m1")
    assert json.loads(item.payload)["meter"] == "cpu"


def test_dedupe_keeps_one_per_message_id_last_wins():
    first, again, other = raw(volume=1.0), raw(volume=1.0), raw(id="m2")
    items = ceilometer.dedupe(ceilometer.to_item(r) for r in (first, other, again))
    assert [(i.message_id, i.counter_volume) for i in items] == [("m2", 4.0), ("m1", 1.0)]


def test_dedupe_a_copy_stored_twice_is_not_a_conflict():
    first, again = raw(volume=1.0, recorded_at="2017-01-01T00:00:01"), raw(volume=1.0, recorded_at="2017-01-01T00:00:02")
    [kept] = ceilometer.dedupe(ceilometer.to_item(r) for r in (first, again))
    assert kept.recorded_at.second == 2


def test_dedupe_quarantines_a_differing_copy_and_keeps_the_last():
    first, second = raw(volume=1.0), raw(volume=2.0)
    kept, superseded = ceilometer.dedupe(ceilometer.to_item(r) for r in (first, second))
    assert (kept.message_id, kept.counter_volume) == ("m1", 2.0)
    assert isinstance(superseded, sources.Rejected) and superseded.message_id == "m1"
    assert "read twice with different content" in superseded.reason
    assert json.loads(superseded.payload)["counter_volume"] == 1.0


def test_dedupe_keeps_every_rejected_without_id():
    items = ceilometer.dedupe([ceilometer.to_item(raw(id=None)), ceilometer.to_item(raw(id=None))])
    assert len(items) == 2


def test_desc_query_sends_every_component():
    q = ceilometer.desc_query(stream(project_id="p1", resource_id="r9"), "2017-01-01T00:00:00.000000", "2017-01-01T01:00:00.000000", "lt")
    assert q == [
        {"field": "timestamp", "op": "ge", "type": "", "value": "2017-01-01T00:00:00.000000"},
        {"field": "timestamp", "op": "lt", "type": "", "value": "2017-01-01T01:00:00.000000"},
        {"field": "meter", "op": "eq", "type": "", "value": "cpu"},
        {"field": "project_id", "op": "eq", "type": "", "value": "p1"},
        {"field": "resource_id", "op": "eq", "type": "", "value": "r9"},
    ]


def test_raw_query_items_are_completed():
    q = ceilometer.desc_query(stream(raw_query=[{"field": "metadata.size", "value": "3", "type": "integer"}]), "a", "b", "le")
    assert q[-1] == {"field": "metadata.size", "op": "eq", "type": "integer", "value": "3"}


@pytest.mark.parametrize("bad", [[{"op": "eq"}], "field=x", [1]])
def test_bad_raw_query_is_a_config_error(bad):
    with pytest.raises(sources.SourceConfigError):
        ceilometer.desc_query(stream(raw_query=bad), "a", "b", "lt")


def test_complex_raw_query_needs_keyset():
    with pytest.raises(sources.SourceConfigError, match="keyset"):
        ceilometer.desc_query(stream(raw_query={"=": {"metadata.a": "b"}}), "a", "b", "lt")


def test_keyset_filter_first_page_and_cursor():
    f = ceilometer.keyset_filter(stream(user_id="u1"), "S", "E")
    assert f == {"and": [{">=": {"timestamp": "S"}}, {"<": {"timestamp": "E"}}, {"=": {"meter": "cpu"}}, {"=": {"user_id": "u1"}}]}
    f = ceilometer.keyset_filter(stream(), "S", "E", cursor=("T", "M"))
    assert f["and"][-1] == {"or": [{">": {"timestamp": "T"}}, {"and": [{"=": {"timestamp": "T"}}, {">": {"message_id": "M"}}]}]}


def test_keyset_filter_translates_raw_query():
    simple = [{"field": "resource_metadata.size", "op": "ge", "value": "3", "type": "integer"}]
    assert ceilometer.keyset_filter(stream(raw_query=simple), "S", "E")["and"][-1] == {">=": {"metadata.size": 3}}
    complex_ = {"=~": {"resource_id": "^r"}}
    assert ceilometer.keyset_filter(stream(raw_query=complex_), "S", "E")["and"][-1] == complex_


class FakeResponse:
    def __init__(self, status, body=b"[]"):
        self.status_code = status
        self.content = body
        self.text = body.decode()


@pytest.mark.parametrize("status", [401, 403, 400, 404])
def test_client_errors_are_config_errors(status):
    body = b'{"error_message": {"faultcode": "Client", "faultstring": "Not Authorized to access project p0"}}'
    with pytest.raises(sources.SourceConfigError, match="Not Authorized"):
        ceilometer._check_status(FakeResponse(status, body))


def test_gone_says_use_gnocchi():
    with pytest.raises(sources.SourceConfigError, match=r"use \[source\] driver = gnocchi"):
        ceilometer._check_status(FakeResponse(410, b"<html>410 Gone</html>"))


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_can_succeed_later(status):
    with pytest.raises(http.TryAgain):
        ceilometer._check_status(FakeResponse(status))


def test_truncated_body_can_succeed_later():
    with pytest.raises(http.TryAgain):
        http.decode(b'[{"id": "m1", "vol')


def make_conf(tmp_path, text):
    path = tmp_path / "meter-export.conf"
    path.write_text(text)
    conf = cfg.ConfigOpts()
    service.register_opts(conf)
    conf(["--config-file", str(path)], project="meter-export")
    return conf


def test_retries_are_bounded_then_unavailable(tmp_path):
    conf = make_conf(tmp_path, "[source]\nmax_retries = 2\n")
    source = ceilometer.CeilometerSource(conf)
    calls = []

    def failing(method, url, body):
        calls.append(url)
        raise http.TryAgain("HTTP 503")

    source._request_once = failing
    source._sleep = lambda seconds: None
    with pytest.raises(sources.SourceUnavailable, match="HTTP 503"):
        source._request("GET", "/v2/samples?q.field=x")
    assert len(calls) == 3


def test_config_errors_are_not_retried(tmp_path):
    source = ceilometer.CeilometerSource(make_conf(tmp_path, "[source]\nmax_retries = 5\n"))
    calls = []

    def gone(method, url, body):
        calls.append(url)
        raise sources.SourceConfigError("gone")

    source._request_once = gone
    with pytest.raises(sources.SourceConfigError):
        source._request("GET", "/v2/samples")
    assert len(calls) == 1


def test_no_network_before_first_fetch(tmp_path):
    source = ceilometer.CeilometerSource(make_conf(tmp_path, "[service_credentials]\nauth_type = none\n"))
    assert source._client is None


def test_strategy_option_is_validated(tmp_path):
    conf = make_conf(tmp_path, "[ceilometer]\nstrategy = bisect\n")
    with pytest.raises(ValueError):
        assert conf.ceilometer.strategy is None  # raises first


def _paged_source(tmp_path, pages):
    """A source whose strategy yields these (rows, boundary) pages, recording each pull."""
    source = ceilometer.CeilometerSource(make_conf(tmp_path, "[ceilometer]\nstrategy = desc\n"))
    pulled = []

    def desc_pages(stream, start, end):
        for rows, boundary in pages:
            pulled.append(len(rows))
            yield rows, boundary and ceilometer.parse_timestamp(boundary)

    source._desc_pages = desc_pages
    source._strategy = "desc"
    return source, pulled


def test_pages_come_out_one_by_one_holding_back_only_the_boundary_instant(tmp_path):
    t1, t2, t3 = "2017-01-01T00:00:03", "2017-01-01T00:00:02", "2017-01-01T00:00:01"
    pages = [
        # desc: newest first; a full page ending at t2 re-reads t2 next time.
        ([raw(id="a", timestamp=t1), raw(id="b", timestamp=t2), raw(id="c", timestamp=t2)], t2),
        ([raw(id="b", timestamp=t2), raw(id="c", timestamp=t2, volume=9.0), raw(id="d", timestamp=t3)], None),
    ]
    source, pulled = _paged_source(tmp_path, pages)
    window = (ceilometer.parse_timestamp("2017-01-01T00:00:00"), ceilometer.parse_timestamp("2017-01-02T00:00:00"))
    fetched = source.fetch(stream(), *window)
    first = next(fetched)
    # NOTE(ceilometer): the first page is out before the second is read,
    # and only "a" in it: b and c sit at the boundary instant.
    assert pulled == [3] and [i.message_id for i in first] == ["a"]
    rest = [i for page in fetched for i in page]
    by_id = {i.message_id: i for i in rest if isinstance(i, sources.Sample)}
    assert sorted(by_id) == ["b", "c", "d"] and by_id["c"].counter_volume == 9.0
    # c changed between the two reads: the earlier copy is quarantined.
    assert [r.message_id for r in rest if isinstance(r, sources.Rejected)] == ["c"]


def test_held_back_keeps_only_samples_at_the_boundary():
    at = ceilometer.parse_timestamp("2017-01-01T00:00:05.250000")
    items = [ceilometer.to_item(raw(id="x")), ceilometer.to_item(raw(id="y", timestamp="2017-01-01T00:00:06")), ceilometer.to_item("junk")]
    now, kept = ceilometer.held_back(items, at)
    assert [i.message_id for i in kept] == ["x"] and len(now) == 2
    assert ceilometer.held_back(items, None) == (items, [])


def test_census_span_spans_every_unit_row_and_ends_past_the_last_sample():
    start, end = datetime.datetime(2017, 1, 1, tzinfo=UTC), datetime.datetime(2017, 1, 10, tzinfo=UTC)
    rows = [
        {"count": 6, "duration_start": "2017-01-02T00:00:00", "duration_end": "2017-01-02T00:00:05"},
        {"count": 2, "duration_start": "2017-01-01T00:00:00.5", "duration_end": "2017-01-03T00:00:00.5"},
        {"count": 0, "duration_start": None, "duration_end": None},
    ]
    first, last = datetime.datetime(2017, 1, 1, 0, 0, 0, 500000, tzinfo=UTC), datetime.datetime(2017, 1, 3, 0, 0, 1, 500000, tzinfo=UTC)
    assert ceilometer.census_span(rows, start, end) == ((first, last, 8),)
    assert ceilometer.census_span(rows[2:], start, end) == ()
    clipped = [{"count": 1, "duration_start": "2016-12-31T00:00:00", "duration_end": "2017-01-09T23:59:59.5"}]
    assert ceilometer.census_span(clipped, start, end) == ((start, end, 1),)


def test_census_periods_come_in_time_order():
    rows = [
        {"count": 3, "period_start": "2017-01-01T07:00:00", "period_end": "2017-01-01T14:00:00"},
        {"count": 4, "period_start": "2017-01-01T00:00:00", "period_end": "2017-01-01T07:00:00"},
    ]
    hour = [datetime.datetime(2017, 1, 1, h, tzinfo=UTC) for h in (0, 7, 14)]
    assert ceilometer.census_periods(rows) == ((hour[0], hour[1], 4), (hour[1], hour[2], 3))


@pytest.mark.parametrize(
    "item, value",
    [
        ({"field": "metadata.size", "value": "3"}, 3),
        ({"field": "resource_metadata.size", "value": 3}, 3),
        ({"field": "metadata.flavor", "value": "m1"}, "m1"),
        ({"field": "metadata.flag", "value": "True"}, True),
        ({"field": "metadata.size", "value": "3", "type": "string"}, "3"),
        ({"field": "metadata.size", "value": "3", "type": "float"}, 3.0),
        ({"field": "resource_id", "value": "1"}, "1"),
    ],
)
def test_simple_value_types_as_the_simple_query_does(item, value):
    got = ceilometer.simple_value(ceilometer.q_item(item["field"], "eq", item["value"], item.get("type", "")))
    assert (got, type(got)) == (value, type(value))


@pytest.mark.parametrize(
    "raw, takes",
    [
        (None, True),
        ([{"field": "metadata.size", "value": "3"}], True),
        ([{"field": "metadata.size", "op": "eq", "value": "3"}, {"field": "metadata.size", "op": "ge", "value": "1"}], False),
        ({"=": {"metadata.size": 3}}, False),
    ],
)
def test_simple_query_takes_equalities_only(raw, takes):
    assert ceilometer.simple_query_takes(raw) is takes


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"field": "timestamp", "op": "lt", "value": "2026-01-01"}, "the windows set it"),
        ({"field": "search_offset", "value": "10"}, "the windows set it"),
        ({"field": "metadata.size", "op": "in", "value": "3"}, "op 'in'"),
        ({"field": "metadata.at", "value": "2026-01-01", "type": "datetime"}, "type 'datetime'"),
        ({"field": "metadata.size", "value": "3", "type": "text"}, "type 'text'"),
        ({"field": "metadata.size", "value": "3.5", "type": "integer"}, "invalid literal"),
        ({"field": "metadata.flag", "value": "maybe", "type": "boolean"}, "maybe"),
        ({"field": "metadata.size", "value": [1, 2]}, "a string or a number"),
        ({"field": "metadata.size", "value": "[1, 2]"}, "give it a type"),
        ({"field": "metadata.size", "value": "None"}, "give it a type"),
        ({"field": "metadata.size", "value": "1e400"}, "give it a type"),
        ({"field": "metadata.size", "value": "3", "kind": "x"}, "unknown key(s) kind"),
        ({"value": "3"}, "an item is a mapping"),
    ],
)
def test_raw_items_ceilometer_cannot_read_as_meant_are_refused(raw, message):
    with pytest.raises(sources.SourceConfigError, match=r"raw_query\[0\]: .*%s" % re.escape(message)):
        ceilometer.simple_raw_items([raw])


@pytest.mark.parametrize(
    "item, value",
    [
        ({"field": "metadata.flag", "value": "yes", "type": "boolean"}, True),
        ({"field": "metadata.flag", "value": " Off ", "type": "boolean"}, False),
        ({"field": "metadata.flag", "value": 1, "type": "boolean"}, True),
        ({"field": "resource_id", "value": "42", "type": "integer"}, "42"),
        ({"field": "metadata.size", "value": 3, "type": "float"}, 3.0),
    ],
)
def test_typed_values_convert_the_text_sent_as_the_api_does(item, value):
    got = ceilometer.simple_value(ceilometer.q_item(item["field"], "eq", item["value"], item["type"]))
    assert (got, type(got)) == (value, type(value))


@pytest.mark.parametrize(
    "raw, leaf",
    [
        ([{"field": "counter_unit", "value": "MB"}], {"=": {"counter_unit": "MB"}}),
        ([{"field": "metadata.size", "op": "ge", "value": "3"}], {">=": {"metadata.size": 3}}),
    ],
)
def test_what_only_the_complex_query_takes_needs_keyset(raw, leaf):
    assert not ceilometer.simple_query_takes(raw)
    with pytest.raises(sources.SourceConfigError, match="needs \\[ceilometer\\] strategy = keyset"):
        ceilometer.desc_query(stream(raw_query=raw), "a", "b", "lt")
    assert ceilometer.keyset_filter(stream(raw_query=raw), "S", "E")["and"][-1] == leaf
