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
