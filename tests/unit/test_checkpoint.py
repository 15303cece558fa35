import datetime

from meter_export import checkpoint

UTC = datetime.UTC
NOW = datetime.datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
H = datetime.timedelta(hours=1)


def test_windows_tile_from_checkpoint_minus_lookback_to_now_minus_settle():
    result = checkpoint.tiles(*checkpoint.span(NOW - 3 * H, NOW, None, lookback=1800, settle=600), max_window=3600)
    assert result[0][0] == NOW - 3 * H - datetime.timedelta(minutes=30)
    assert result[-1][1] == NOW - datetime.timedelta(minutes=10)
    for (_a, b), (c, _) in zip(result, result[1:], strict=False):
        assert b == c  # no gap, no overlap
    assert all(b - a <= H for a, b in result)


def test_new_stream_starts_at_initial_start():
    result = checkpoint.tiles(*checkpoint.span(None, NOW, NOW - 2 * H, lookback=0, settle=0), max_window=7200)
    assert result == [(NOW - 2 * H, NOW)]


def test_nothing_to_do_when_checkpoint_is_past_the_settle_bound():
    assert checkpoint.tiles(*checkpoint.span(NOW, NOW, None, lookback=0, settle=60), max_window=60) == []


def test_last_window_is_cut_at_the_end():
    result = checkpoint.tiles(*checkpoint.span(NOW - 90 * datetime.timedelta(minutes=1), NOW, None, 0, 0), 3600)
    assert [b - a for a, b in result] == [H, datetime.timedelta(minutes=30)]
