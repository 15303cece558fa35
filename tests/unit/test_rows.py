import datetime
import math

import pytest

from meter_export.sources import Rejected
from meter_export.sources import Sample
from meter_export.storage import rows
from tests.samples import T0
from tests.samples import make_sample


def prepare(items):
    """rows.prepare, with the rows as Samples so tests can name columns."""
    good, rejected = rows.prepare(items)
    return [Sample._make(row) for row in good], rejected


BAD = [
    ({"message_id": None}, "message_id is missing"),
    ({"message_id": ""}, "message_id is empty"),
    ({"message_id": "x" * 129}, "message_id is 129 characters"),
    ({"message_id": 12}, "message_id is a int"),
    ({"counter_name": None}, "counter_name is missing"),
    ({"counter_volume": math.nan}, "counter_volume nan is not a finite number"),
    ({"counter_volume": math.inf}, "counter_volume inf is not a finite number"),
    ({"counter_volume": "12"}, "counter_volume '12' is not a finite number"),
    ({"counter_volume": None}, "counter_volume None is not a finite number"),
    ({"timestamp": datetime.datetime(2026, 1, 1)}, "has no timezone"),
    ({"timestamp": "2026-01-01T00:00:00"}, "timestamp is a str, not a datetime"),
    ({"timestamp": None}, "timestamp is missing"),
    ({"recorded_at": datetime.datetime(2026, 1, 1)}, "recorded_at"),
    ({"resource_metadata": {"x": object()}}, "not JSON-serialisable"),
    ({"resource_metadata": {"x": "y" * 70000}}, "more than 65535"),
    ({"resource_metadata": ["a"]}, "not an object"),
    ({"resource_metadata": {"x": "a\x00b"}}, "NUL"),
    ({"project_id": "p" * 256}, "project_id is 256 characters, longer than its column (255)"),
    ({"resource_id": "bad\udcffutf8"}, "resource_id is not valid UTF-8"),
    ({"user_id": "nul\x00"}, "user_id contains a NUL character"),
]


@pytest.mark.parametrize("overrides,reason", BAD)
def test_malformed_samples_are_rejected_with_their_reason(overrides, reason):
    good, rejected = prepare([make_sample(1), make_sample(2, **overrides), make_sample(3)])
    assert [r.message_id for r in good] == [make_sample(1).message_id, make_sample(3).message_id]
    assert len(rejected) == 1
    assert reason in rejected[0].reason
    assert rejected[0].payload  # the raw sample is kept for the operator


def test_valid_sample_becomes_a_row_with_json_metadata():
    good, rejected = prepare([make_sample(5)])
    assert rejected == []
    assert good[0].resource_metadata == '{"flavor":{"name":"m1.small"},"i":5}'
    assert good[0].timestamp == T0 + datetime.timedelta(seconds=5)


def test_timestamp_with_an_offset_is_kept_as_the_same_instant():
    tz = datetime.timezone(datetime.timedelta(hours=2))
    ts = datetime.datetime(2026, 1, 1, 2, 0, tzinfo=tz)
    good, _ = prepare([make_sample(1, timestamp=ts)])
    assert good[0].timestamp == datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def test_duplicates_in_a_batch_last_one_wins():
    first = make_sample(1, counter_volume=1.0)
    second = make_sample(1, counter_volume=2.0)
    good, rejected = prepare([first, make_sample(2), second])
    assert rejected == []
    assert len(good) == 2
    assert {r.message_id: r.counter_volume for r in good}[first.message_id] == 2.0


def test_a_malformed_later_copy_does_not_drop_the_valid_one():
    good, rejected = prepare([make_sample(1), make_sample(1, counter_volume=math.nan)])
    assert [r.counter_volume for r in good] == [1.0]
    assert len(rejected) == 1


def test_rejected_items_from_a_source_pass_through():
    item = Rejected('{"x": 1}', "unparseable timestamp", "abc")
    good, rejected = prepare([item, make_sample(1)])
    assert rejected == [item]
    assert len(good) == 1


def test_integer_volume_is_accepted():
    good, rejected = prepare([make_sample(1, counter_volume=3)])
    assert rejected == [] and good[0].counter_volume == 3


def test_rows_slice_and_index_like_a_list_of_tuples():
    good, _ = rows.prepare([make_sample(i) for i in range(5)])
    assert isinstance(good[1:3], rows.Rows)
    assert [r[0] for r in good[1:3]] == [make_sample(1).message_id, make_sample(2).message_id]
    assert good[4] == tuple(make_sample(4))[:11] + ('{"flavor":{"name":"m1.small"},"i":4}',)
    assert len(good[5:]) == 0 and not good[5:]


def test_a_duplicate_keeps_the_position_of_its_first_copy():
    good, _ = prepare([make_sample(1, counter_volume=1.0), make_sample(2), make_sample(1, counter_volume=9.0)])
    assert [(r.message_id, r.counter_volume) for r in good] == [
        (make_sample(1).message_id, 9.0),
        (make_sample(2).message_id, make_sample(2).counter_volume),
    ]


def test_a_generator_of_items_is_prepared_like_a_list():
    # The metadata JSON cache is keyed by id(): a replaced copy's dict must
    # not be freed mid-call, or the next dict may reuse its address and get
    # its JSON. Every copy here replaces the one before.
    items = (make_sample(1, resource_metadata={"v": v}) for v in range(200))
    good, _ = prepare(items)
    assert [r.resource_metadata for r in good] == ['{"v":199}']
