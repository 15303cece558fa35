"""The period parameters of the Almanach routes: Almanach's format, errors naming the parameter."""

import datetime

import pytest

from meter_export.storage import entity_reads

UTC = datetime.UTC
NOW = datetime.datetime(2026, 3, 5, 12, 0, tzinfo=UTC)


def test_almanach_format_and_default_end():
    start, end = entity_reads.parse_period("2026-03-01 00:00:00.000000", None, now=NOW)
    assert (start, end) == (datetime.datetime(2026, 3, 1, tzinfo=UTC), NOW)
    assert entity_reads.parse_period("2026-03-01T00:00:00Z", "2026-03-02 00:00:00.5")[1].microsecond == 500000


@pytest.mark.parametrize(
    "start, end, parameter",
    [
        (None, None, "start"),
        ("", None, "start"),
        ("yesterday", None, "start"),
        ("2026-03-01", "soon", "end"),
        ("2026-03-02", "2026-03-01", "end"),
    ],
)
def test_bad_period_names_the_parameter(start, end, parameter):
    with pytest.raises(entity_reads.BadParameter) as error:
        entity_reads.parse_period(start, end, now=NOW)
    assert error.value.parameter == parameter and str(error.value).startswith(parameter + ": ")


def test_running_seconds_clips_to_the_period_and_runs_a_current_version_until_now():
    from decimal import Decimal
    from types import SimpleNamespace as V

    def at(hour, minute=0):
        return datetime.datetime(2026, 3, 5, hour, minute, tzinfo=UTC)

    versions = [
        V(entity_id="i", project_id="p", flavor="small", start=at(8), end=at(9, 30)),
        V(entity_id="i", project_id="p", flavor="small", start=at(10), end=None),
        V(entity_id="j", project_id="p", flavor="big", start=at(13), end=at(14)),  # after the period
    ]
    rows = entity_reads.running_seconds(versions, at(9), at(13), now=at(11, 15))
    assert rows == [{"entity_id": "i", "project_id": "p", "flavor": "small", "seconds": Decimal(1800 + 4500)}]
