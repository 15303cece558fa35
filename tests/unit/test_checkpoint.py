import datetime

from meter_export import checkpoint
from meter_export import sources

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


D = datetime.timedelta(days=1)


def census(*buckets):
    return sources.Census(NOW - 30 * D, NOW, tuple(buckets))


def contiguous(result, start, end):
    assert result[0][0] == start and result[-1][1] == end
    assert all(b == c for (_, b), (c, _) in zip(result, result[1:], strict=False))


def test_without_census_the_plan_is_max_window_tiles():
    assert checkpoint.plan(NOW - 3 * H, NOW, 3600) == checkpoint.tiles(NOW - 3 * H, NOW, 3600)


def test_an_empty_census_is_one_window_per_max_window():
    start = NOW - 30 * D
    result = checkpoint.plan(start, NOW, 30 * 86400, census(), window_samples=1000)
    assert result == [(start, NOW)]
    assert len(checkpoint.plan(start, NOW, 7 * 86400, census(), window_samples=1000)) == 5


def test_windows_end_where_they_would_hold_more_than_the_budget():
    start = NOW - 30 * D
    # three full days of 600 samples each, 27 empty ones: budget 1000 cuts
    # at the start of each full day; empty spans join a neighbour.
    days = [(NOW - (10 - i) * D, NOW - (9 - i) * D, 600) for i in range(3)]
    result = checkpoint.plan(start, NOW, 30 * 86400, census(*days), window_samples=1000)
    assert result == [(start, NOW - 9 * D), (NOW - 9 * D, NOW - 8 * D), (NOW - 8 * D, NOW)]
    contiguous(result, start, NOW)


def test_a_bucket_fuller_than_the_budget_is_cut_in_equal_parts():
    start = NOW - D
    result = checkpoint.plan(start, NOW, 30 * 86400, census((start, NOW, 4000)), window_samples=1000)
    assert [b - a for a, b in result] == [6 * H] * 4
    contiguous(result, start, NOW)


def test_max_window_bounds_every_window():
    start = NOW - 3 * D
    result = checkpoint.plan(start, NOW, 86400, census((start, start + H, 5)), window_samples=10**6)
    assert result == checkpoint.tiles(start, NOW, 86400)


def test_buckets_outside_the_span_are_clipped():
    start = NOW - 2 * H
    result = checkpoint.plan(start, NOW, 86400, census((NOW - D, NOW - H, 5000), (NOW - H, NOW + H, 10)), window_samples=1000)
    contiguous(result, start, NOW)
    assert all(start <= a < b <= NOW for a, b in result)
