import datetime
import threading
import time

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


def test_read_ahead_yields_everything_in_order_then_the_producer_error():
    def produce():
        yield from range(5)
        raise ValueError("source broke")

    got = []
    with pytest.raises(ValueError, match="source broke"):
        with utils.read_ahead(produce()) as items:
            for item in items:
                got.append(item)
    assert got == [0, 1, 2, 3, 4]


def test_read_ahead_left_early_stops_the_producer_and_waits_for_it():
    produced = []

    def produce():
        for i in range(1000):
            produced.append(i)
            yield i

    reader = utils.read_ahead(produce(), depth=1)
    with reader as items:
        assert next(items) == 0
    assert not reader._thread.is_alive()
    assert len(produced) <= 4  # one taken, one queued, one in hand (+1 race)


def test_read_ahead_says_whether_the_next_item_is_read_yet():
    release = threading.Event()

    def produce():
        yield 1
        release.wait(5)
        yield 2

    with utils.read_ahead(produce()) as items:
        assert next(items) == 1
        assert not items.ready()  # the producer waits for release
        release.set()
        for _ in range(100):
            if items.ready():
                break
            time.sleep(0.01)
        assert items.ready()
        assert list(items) == [2]


def test_run_once_syncs_with_the_collector_tuned(monkeypatch):
    """The pass runs with utils.COLLECTOR_THRESHOLDS (see tune_collector)."""
    import gc

    from meter_export import worker

    seen = []

    class Syncer:
        def __init__(self, *args):
            pass

        def one_pass(self):
            seen.append(gc.get_threshold())
            return []

        def close(self):
            pass

    monkeypatch.setattr(worker, "Syncer", Syncer)
    monkeypatch.setattr(worker.signal, "signal", lambda *args: None)
    before = gc.get_threshold()
    try:
        assert worker.run_once(None, []) == 0
    finally:
        gc.set_threshold(*before)
    assert seen == [utils.COLLECTOR_THRESHOLDS] != [before]


def test_read_ahead_is_ready_at_once_when_the_producer_is_ahead():
    """Just after an item is taken the producer, blocked with the next one
    in hand, has not queued it yet: ready() still says it is there."""
    seen = []
    with utils.read_ahead(iter(range(30))) as items:
        for n in range(29):
            # the producer catches up: one page queued, the next in hand
            deadline = time.monotonic() + 5
            while not (items._queue.full() and items._handing) and time.monotonic() < deadline:
                time.sleep(0.001)
            assert next(items) == n
            seen.append(items.ready())
    assert seen == [True] * 29


def test_read_ahead_outside_its_block_refuses_to_wait_forever():
    with pytest.raises(RuntimeError, match="with block"):
        next(utils.read_ahead(iter([1])))
