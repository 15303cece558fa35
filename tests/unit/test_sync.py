"""The pipeline (sync.py) with an in-memory source and a real SQLite sink.

The source here is a plain list of samples, not a server: the real-server
tests are in tests/functional/test_sync_*.py. This checks the pipeline's own
rules: windows, checkpoint in the same transaction, failures, shutdown.
"""

import datetime
import logging
import threading
import time

import pytest
import sqlalchemy as sa
from oslo_config import cfg

from meter_export import service
from meter_export import sources
from meter_export import sync
from meter_export.sources import Filter
from meter_export.sources import MeterSpec
from meter_export.sources import SourceDriver
from meter_export.sources import SourceUnavailable
from meter_export.storage import migrate
from meter_export.storage.samples import Sink
from tests.samples import make_sample

UTC = datetime.UTC
NOW = datetime.datetime(2026, 11, 2, tzinfo=UTC)
T0 = datetime.datetime(2026, 11, 1, tzinfo=UTC)


class ListSource(SourceDriver):
    """Serves samples from memory, in pages; can fail on demand."""

    def __init__(self, samples, page=7, fail_meters=(), fail_after_pages=None):
        self.samples, self.page = list(samples), page
        self.fail_meters, self.fail_after_pages = set(fail_meters), fail_after_pages
        self.shutdown_after_pages = None
        self.shutdown = None
        self.requests = 0

    def fetch(self, stream, start, end, census=None):
        if stream.meter.name in self.fail_meters:
            raise SourceUnavailable("API down for %s" % stream.meter.name)
        selected = [s for s in self.samples if s.counter_name == stream.meter.name and start <= s.timestamp < end]
        for n, i in enumerate(range(0, len(selected), self.page)):
            if self.fail_after_pages is not None and n >= self.fail_after_pages:
                raise SourceUnavailable("connection reset")
            if self.shutdown_after_pages is not None and n >= self.shutdown_after_pages:
                self.shutdown.set()
            yield selected[i : i + self.page]


def samples_for(meter, hours, step_minutes=10, offset=0):
    count = hours * 60 // step_minutes
    return [make_sample(offset + i, counter_name=meter, timestamp=T0 + datetime.timedelta(minutes=step_minutes * i)) for i in range(count)]


@pytest.fixture
def conf():
    c = cfg.ConfigOpts()
    service.register_opts(c)
    c([], project="meter-export")
    for name, value in dict(initial_start=T0.isoformat(), lookback=3600, settle=600, max_window=7200).items():
        c.set_override(name, value, group="sync")
    return c


@pytest.fixture
def sink(tmp_path):
    s = Sink("sqlite:///%s" % (tmp_path / "s.sqlite"), batch_size=20)
    migrate.upgrade(s)
    yield s
    s.close()


def stored(sink):
    with sink.engine.connect() as conn:
        return {r.message_id: r.counter_volume for r in conn.execute(sa.select(sink.samples))}


def streams(*meters):
    return sync.streams("mem", [Filter("f", tuple(MeterSpec(m) for m in meters))])


def expected(samples, until):
    return {s.message_id: s.counter_volume for s in samples if s.timestamp < until}


def test_a_pass_exports_everything_up_to_the_settle_bound_and_a_rerun_adds_nothing(conf, sink):
    data = samples_for("cpu", 30) + samples_for("ram", 30, offset=1000)
    source = ListSource(data)
    results = sync.run_pass(sources.DriverPool.of(source), sink, streams("cpu", "ram"), conf, now=NOW)
    bound = NOW - datetime.timedelta(seconds=600)
    assert stored(sink) == expected(data, bound)
    assert all(r.complete and r.error is None for r in results)
    assert sink.checkpoint(("mem", "f", "cpu")) == bound
    sync.run_pass(sources.DriverPool.of(source), sink, streams("cpu", "ram"), conf, now=NOW)
    assert stored(sink) == expected(data, bound)


def test_new_data_and_late_data_inside_lookback_arrive_on_the_next_pass(conf, sink):
    data = samples_for("cpu", 20)
    source = ListSource(data)
    sync.run_pass(sources.DriverPool.of(source), sink, streams("cpu"), conf, now=NOW)
    checkpoint = sink.checkpoint(("mem", "f", "cpu"))
    late = make_sample(5000, counter_name="cpu", timestamp=checkpoint - datetime.timedelta(minutes=30))
    too_late = make_sample(5001, counter_name="cpu", timestamp=checkpoint - datetime.timedelta(hours=2))
    new = make_sample(5002, counter_name="cpu", timestamp=checkpoint + datetime.timedelta(minutes=5))
    source.samples += [late, too_late, new]
    sync.run_pass(sources.DriverPool.of(source), sink, streams("cpu"), conf, now=NOW + datetime.timedelta(hours=1))
    result = stored(sink)
    assert late.message_id in result and new.message_id in result
    assert too_late.message_id not in result  # older than lookback: documented limit


def test_a_failing_stream_does_not_block_the_others_nor_move_its_checkpoint(conf, sink):
    data = samples_for("cpu", 10) + samples_for("ram", 10, offset=1000)
    source = ListSource(data, fail_meters={"cpu"})
    results = {r.stream.meter.name: r for r in sync.run_pass(sources.DriverPool.of(source), sink, streams("cpu", "ram"), conf, now=NOW)}
    assert "API down" in results["cpu"].error and results["ram"].error is None
    assert sink.checkpoint(("mem", "f", "cpu")) is None
    assert set(stored(sink)) == {s.message_id for s in data if s.counter_name == "ram"}
    source.fail_meters = set()
    sync.run_pass(sources.DriverPool.of(source), sink, streams("cpu", "ram"), conf, now=NOW)
    assert stored(sink) == expected(data, NOW)


def test_a_window_that_fails_midway_keeps_its_checkpoint_and_is_reread(conf, sink):
    data = samples_for("cpu", 30)
    source = ListSource(data, page=3, fail_after_pages=3)
    [result] = sync.run_pass(sources.DriverPool.of(source), sink, streams("cpu"), conf, now=NOW)
    # The first window [T0 - lookback, T0 + 1h) finished; the second failed
    # midway, so the checkpoint stays at the end of the first.
    assert result.error == "connection reset" and result.windows == 1
    assert sink.checkpoint(("mem", "f", "cpu")) == T0 + datetime.timedelta(hours=1)
    source.fail_after_pages = None
    sync.run_pass(sources.DriverPool.of(source), sink, streams("cpu"), conf, now=NOW)
    assert stored(sink) == expected(data, NOW - datetime.timedelta(seconds=600))


def test_shutdown_commits_the_batch_in_hand_but_not_the_checkpoint(conf, sink):
    conf.set_override("lookback", 0, group="sync")
    data = samples_for("cpu", 30)
    shutdown = threading.Event()
    source = ListSource(data, page=5)
    source.shutdown, source.shutdown_after_pages = shutdown, 2
    [result] = sync.run_pass(sources.DriverPool.of(source), sink, streams("cpu"), conf, shutdown=shutdown, now=NOW)
    assert not result.complete and result.error is None
    # The pages read were committed. NOTE(bench): the source is read one page
    # ahead in a thread, so how many pages the writer had in hand when the
    # source set shutdown (while producing page 3) depends on timing.
    assert len(stored(sink)) in (5, 10, 12)
    assert sink.checkpoint(("mem", "f", "cpu")) is None
    source.shutdown_after_pages = None
    sync.run_pass(sources.DriverPool.of(source), sink, streams("cpu"), conf, now=NOW)
    assert stored(sink) == expected(data, NOW - datetime.timedelta(seconds=600))


class CensusSource(ListSource):
    """A ListSource that counts its samples per hour ahead, as Gnocchi does."""

    def __init__(self, samples, **kwargs):
        super().__init__(samples, **kwargs)
        self.windows, self.censuses = [], []

    def census(self, stream, start, end):
        counts = {}
        for s in self.samples:
            if s.counter_name == stream.meter.name and start <= s.timestamp < end:
                hour = s.timestamp.replace(minute=0, second=0, microsecond=0)
                counts[hour] = counts.get(hour, 0) + 1
        self.censuses.append((start, end))
        return sources.Census(start, end, tuple((h, h + datetime.timedelta(hours=1), c) for h, c in sorted(counts.items())))

    def fetch(self, stream, start, end, census=None):
        assert census is not None and census.start <= start and end <= census.end
        self.windows.append((start, end))
        return super().fetch(stream, start, end, census)


def test_windows_are_sized_by_the_census_not_the_clock(conf, sink):
    # 30 days behind, data in 5 hours of it (6 samples an hour): with a
    # budget of 12 samples a window, 3 windows, not 360 hourly ones.
    conf.set_override("initial_start", (NOW - datetime.timedelta(days=30)).isoformat(), group="sync")
    conf.set_override("max_window", 30 * 86400, group="sync")
    conf.set_override("window_samples", 12, group="sync")
    data = samples_for("cpu", 5)
    source = CensusSource(data, page=4)
    [result] = sync.run_pass(sources.DriverPool.of(source), sink, streams("cpu"), conf, now=NOW)
    bound = NOW - datetime.timedelta(seconds=600)
    assert result.complete and result.windows == 3 and len(source.censuses) == 1
    assert stored(sink) == expected(data, bound)
    assert sink.checkpoint(("mem", "f", "cpu")) == bound
    # An idle pass: one census, one window over lookback + the new span.
    sync.run_pass(sources.DriverPool.of(source), sink, streams("cpu"), conf, now=NOW + datetime.timedelta(minutes=5))
    assert len(source.censuses) == 2 and len(source.windows) == 4


def test_a_failing_stream_is_logged_once_with_its_traceback(conf, sink, caplog):
    source = ListSource(samples_for("cpu", 2), fail_meters={"cpu"})
    with caplog.at_level(logging.DEBUG, logger="meter_export"):
        sync.run_pass(sources.DriverPool.of(source), sink, streams("cpu"), conf, now=NOW)
    about = [r for r in caplog.records if "mem/f/cpu" in r.getMessage() or "API down" in r.getMessage()]
    assert len(about) == 1, [r.getMessage() for r in about]
    assert about[0].levelno == logging.ERROR and about[0].exc_info and "API down" in about[0].getMessage()


class Gauge:
    """How many fetches run at once, and the most seen."""

    def __init__(self):
        self.running, self.most, self.lock = 0, 0, threading.Lock()

    def move(self, step):
        with self.lock:
            self.running += step
            self.most = max(self.most, self.running)


class SlowSource(ListSource):
    """A ListSource whose fetches last 50 ms and are counted by a Gauge."""

    def __init__(self, samples, gauge):
        super().__init__(samples)
        self.gauge = gauge

    def fetch(self, stream, start, end, census=None):
        self.gauge.move(1)
        try:
            threading.Event().wait(0.05)
            yield from super().fetch(stream, start, end, census)
        finally:
            self.gauge.move(-1)


def test_a_pass_reads_its_streams_at_once_each_with_a_driver_of_its_own(conf, sink):
    data = [s for m in ("a", "b", "c", "d", "e") for s in samples_for(m, 3, offset=1000 * ord(m))]
    gauge, made = Gauge(), []

    def make():
        made.append(SlowSource(data, gauge))
        return made[-1]

    pool = sources.DriverPool(make, size=3)
    results = sync.run_pass(pool, sink, streams("a", "b", "c", "d", "e"), conf, now=NOW)
    assert [r.stream.meter.name for r in results] == ["a", "b", "c", "d", "e"]
    assert all(r.complete for r in results) and stored(sink) == expected(data, NOW)
    assert len(made) == 3 and gauge.most == 3


def test_the_pool_gives_a_stream_back_its_driver_and_waits_when_all_are_out():
    pool = sources.DriverPool(lambda: ListSource([]), size=2)
    entered = threading.Event()

    def third():
        with pool.lease("z"):
            entered.set()

    with pool.lease("x") as first, pool.lease("y") as second:
        assert first is not second
        waiter = threading.Thread(target=third)
        waiter.start()
        assert not entered.wait(0.2)  # both drivers are out
    waiter.join(2)
    assert entered.is_set()
    for _ in range(3):
        with pool.lease("y") as again, pool.lease("x") as other:
            assert (again, other) == (second, first)


class BarrierSource(ListSource):
    """Serves no page before ``parties`` streams are inside fetch at once."""

    def __init__(self, samples, parties):
        super().__init__(samples)
        self.barrier = threading.Barrier(parties, timeout=10)

    def fetch(self, stream, start, end, census=None):
        self.barrier.wait()
        yield from super().fetch(stream, start, end, census)


def test_on_sqlite_the_streams_read_at_once_and_write_one_at_a_time(conf, sink, monkeypatch):
    """SQLite takes one writer per file: the streams of a pass still read
    at the same time (the barrier breaks, failing them, if they are read in
    turn) and queue in the sink for their writes, which never overlap."""
    meters = ("cpu", "ram", "disk")
    data = [s for n, m in enumerate(meters) for s in samples_for(m, 30, offset=1000 * n)]
    source = BarrierSource(data, len(meters))
    monkeypatch.setattr(sources, "get_driver", lambda conf, shutdown=None: source)
    inside, most, lock = [0], [0], threading.Lock()
    writer = sink._writer

    def watched(conn, table, rows):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        try:
            time.sleep(0.005)  # an overlap, if any, cannot slip between two checks
            return writer(conn, table, rows)
        finally:
            with lock:
                inside[0] -= 1

    sink._writer = watched
    pool = sync.driver_pool(conf, wanted=len(meters))
    results = sync.run_pass(pool, sink, streams(*meters), conf, now=NOW)
    assert [r.error for r in results] == [None] * 3
    assert stored(sink) == expected(data, NOW - datetime.timedelta(seconds=600))
    assert most == [1]


class GatedSource(ListSource):
    """Serves each window's pages but waits, before each page after the
    first, until the sink has written (or 2 s have passed)."""

    def __init__(self, samples, written, **kwargs):
        super().__init__(samples, **kwargs)
        self.written, self.waited_in_vain = written, 0

    def fetch(self, stream, start, end, census=None):
        for n, page in enumerate(super().fetch(stream, start, end, census)):
            if n and not self.written.wait(2):
                self.waited_in_vain += 1
            self.written.clear()
            yield page


def test_a_page_is_written_while_the_next_one_is_read(conf, sink, monkeypatch):
    """With the next page not read yet, the rows in hand are written at once
    rather than held until batch_size (20 here) of them: the database works
    while the source reads."""
    written, write = threading.Event(), sink.write

    def watched(*args, **kwargs):
        result = write(*args, **kwargs)
        written.set()
        return result

    monkeypatch.setattr(sink, "write", watched)
    data = samples_for("cpu", 6)
    source = GatedSource(data, written, page=4)
    [result] = sync.run_pass(sources.DriverPool.of(source), sink, streams("cpu"), conf, now=NOW)
    assert result.complete and stored(sink) == expected(data, NOW)
    assert source.waited_in_vain == 0


def test_windows_past_the_checkpoint_are_written_as_new(conf, sink, monkeypatch):
    """A first pass writes every window with new=True; a later one writes
    the windows of its lookback (before the old checkpoint) as upserts."""
    calls, write = [], sink.write

    def watched(items, stream=None, advance_to=None, scope="live", new=False):
        calls.append((advance_to, new))
        return write(items, stream, advance_to, scope, new)

    monkeypatch.setattr(sink, "write", watched)
    conf.set_override("max_window", 3600, group="sync")
    data = samples_for("cpu", 30)
    source = ListSource(data, page=100)
    sync.run_pass(sources.DriverPool.of(source), sink, streams("cpu"), conf, now=NOW)
    assert calls and all(new for _, new in calls)
    mark = sink.checkpoint(("mem", "f", "cpu"))
    calls.clear()
    later = NOW + datetime.timedelta(hours=2)
    sync.run_pass(sources.DriverPool.of(source), sink, streams("cpu"), conf, now=later)
    closing = [(end, new) for end, new in calls if end is not None]
    # lookback is 1 h: the first window ends at the old checkpoint, the
    # two after it are new.
    assert closing == [(mark, False), (mark + datetime.timedelta(hours=1), True), (mark + datetime.timedelta(hours=2), True)]
    assert stored(sink) == expected(data, later - datetime.timedelta(seconds=600))


def test_pages_read_faster_than_written_are_grouped_up_to_batch_size(conf, sink, monkeypatch):
    """The writer takes pages of 4 as they wait in the read-ahead and writes
    them by batch_size (20), not a transaction per page."""
    sizes, write = [], sink.write

    def watched(items, *args, **kwargs):
        sizes.append(len(items))
        time.sleep(0.005)  # the source gets ahead
        return write(items, *args, **kwargs)

    monkeypatch.setattr(sink, "write", watched)
    data = samples_for("cpu", 4, step_minutes=1)
    source = ListSource(data, page=4)
    [result] = sync.run_pass(sources.DriverPool.of(source), sink, streams("cpu"), conf, now=NOW)
    assert result.complete and stored(sink) == expected(data, NOW)
    full = [n for n in sizes if n]
    # NOTE: a page each would be 60 writes; slack for a loaded machine.
    assert sum(full) == len(data) and len(full) <= len(data) // 8, sizes


def test_a_pass_searches_what_its_streams_share_once():
    """The drivers of a pool share one PassMemo per pass: computed once for
    all of them at once, forgotten by the next pass; a failure is not kept
    (the next stream asks again)."""
    pool = sources.DriverPool(lambda: ListSource([]), size=3)
    computed, together = [], threading.Barrier(3, timeout=5)

    def compute():
        computed.append(1)
        time.sleep(0.05)
        return len(computed)

    def use(key, results=None):
        with pool.lease(key) as driver:
            if results is not None:
                together.wait()
            value = driver.memo.get("resources", compute)
            if results is not None:
                results.append((driver, value))
            return value

    pool.new_pass()
    results = []
    threads = [threading.Thread(target=use, args=(k, results)) for k in ("x", "y", "z")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(d) for d, _ in results}) == 3  # three drivers asked at once
    assert [v for _, v in results] == [1, 1, 1] and len(computed) == 1
    pool.new_pass()
    assert use("y") == 2

    calls = []

    def broken():
        calls.append(1)
        raise SourceUnavailable("search failed")

    pool.new_pass()
    for key in ("x", "y"):
        with pytest.raises(SourceUnavailable), pool.lease(key) as driver:
            driver.memo.get("resources", broken)
    assert len(calls) == 2
    assert use("x") == 3
