import datetime

import pytest

from meter_export import utils

UTC = datetime.UTC
NOW = datetime.datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("-P7D", NOW - datetime.timedelta(days=7)),
        ("-PT6H", NOW - datetime.timedelta(hours=6)),
        ("-P1DT30M", NOW - datetime.timedelta(days=1, minutes=30)),
        ("-P2W", NOW - datetime.timedelta(weeks=2)),
        ("2026-01-01T00:00:00Z", datetime.datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01T00:00:00", datetime.datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01T02:00:00+02:00", datetime.datetime(2026, 1, 1, tzinfo=UTC)),
    ],
)
def test_parse_start(text, expected):
    assert utils.parse_start(text, NOW) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "P7D", "-P", "-PXD", "2026-13-01"])
def test_parse_start_refuses(text):
    with pytest.raises(ValueError):
        utils.parse_start(text, NOW)


def test_isoformat_is_naive_utc_with_microseconds():
    tz = datetime.timezone(datetime.timedelta(hours=1))
    assert utils.isoformat(datetime.datetime(2026, 1, 1, 1, 0, tzinfo=tz)) == "2026-01-01T00:00:00.000000"
