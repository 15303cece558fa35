"""meter-export backfill: one bounded range through the same pipeline.

A bounded range never touches the live checkpoints (dlt calls this
"stateless"); it keeps its own under the scope "backfill:<start>/<end>", so an
interrupted backfill started again with the same range skips finished windows.
"""

import concurrent.futures
import dataclasses
import logging
import signal
import sys
import threading

from meter_export import service
from meter_export import sync
from meter_export import utils
from meter_export import worker
from meter_export.rating import commands as rating_commands
from meter_export.storage import samples as sink_mod

LOG = logging.getLogger(__name__)


def scope_for(start, end):
    return "backfill:%s/%s" % (start.strftime("%Y%m%dT%H%M%S"), end.strftime("%Y%m%dT%H%M%S"))


def select(streams, filter_names, meter_names):
    return [s for s in streams if (not filter_names or s.filter.name in filter_names) and (not meter_names or s.meter.name in meter_names)]


@dataclasses.dataclass
class Progress:
    """Counts shared by the stream threads; printed by report()."""

    total: int
    done: int = 0
    samples: int = 0
    watch: utils.StopWatch = dataclasses.field(default_factory=utils.StopWatch)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def add(self, windows, samples):
        with self.lock:
            self.done += windows
            self.samples += samples

    def line(self):
        elapsed = self.watch.elapsed()
        rate = self.samples / elapsed if elapsed else 0.0
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        width = 30
        bar = "#" * int(width * self.done / max(self.total, 1))
        return "[%-30s] %d/%d windows, %d samples, %.0f samples/s, ETA %ds" % (bar, self.done, self.total, self.samples, rate, eta)


def report(progress, stop, stream=sys.stderr):
    """A live bar on a terminal, a plain line every 10 s otherwise."""
    tty = stream.isatty()
    while not stop.wait(0.5 if tty else 10):
        stream.write(("\r" + progress.line()) if tty else progress.line() + "\n")
        stream.flush()
    stream.write(("\r" if tty else "") + progress.line() + "\n")


def _parse_range(conf):
    now = utils.utcnow()
    try:
        start = utils.parse_start(conf.command.start, now)
    except ValueError as e:
        raise service.ConfigError(None, "--start", str(e))
    try:
        end = utils.parse_start(conf.command.end, now)
    except ValueError as e:
        raise service.ConfigError(None, "--end", str(e))
    if start >= end:
        raise service.ConfigError(None, "--start", "must be before --end")
    return start, end


class _Runner:
    """Runs one stream's remaining windows, with a driver of the pool."""

    def __init__(self, conf, sink, drivers, scope, start, end, progress, shutdown):
        self.conf, self.sink, self.drivers, self.scope = conf, sink, drivers, scope
        self.start, self.end, self.progress, self.shutdown = start, end, progress, shutdown

    def plan(self, stream):
        """(windows, census) left to do; a failed census is a failed stream."""
        done = self.sink.checkpoint(stream.key, self.scope)
        try:
            with self.drivers.lease(stream.key) as source:
                return sync.plan(source, stream, done or self.start, self.end, self.conf)
        except Exception as e:
            return sync.StreamResult(stream, error="cannot plan its windows: %s" % e, complete=False, exception=e), None

    def __call__(self, stream, windows, census):
        if isinstance(windows, sync.StreamResult):
            return windows
        result = sync.StreamResult(stream)
        with self.drivers.lease(stream.key) as source:
            for window in windows:
                result = sync.sync_stream(source, self.sink, stream, [window], self.scope, self.shutdown, census)
                self.progress.add(result.windows, result.written)
                if not result.complete:
                    break
        return result


def run(conf):
    start, end = _parse_range(conf)
    streams = select(worker.load_streams(conf), conf.command.filters, conf.command.meters)
    if not streams:
        raise service.ConfigError(None, "--filter/--meter", "no stream matches")
    worker.check_ready(conf)
    utils.tune_collector()
    shutdown = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: shutdown.set())
    sink = sink_mod.Sink.from_conf(conf, shutdown)
    try:
        return _backfill(conf, sink, streams, start, end, shutdown) or rating_commands.after_backfill(conf, sink, start, end)
    finally:
        sink.close()


def _backfill(conf, sink, streams, start, end, shutdown):
    scope = scope_for(start, end)
    progress = Progress(0)
    drivers = sync.driver_pool(conf, shutdown, conf.command.parallel)
    try:
        runner = _Runner(conf, sink, drivers, scope, start, end, progress, shutdown)
        plan = [(s, *runner.plan(s)) for s in streams]
        progress.total = sum(len(w) for _, w, _ in plan if isinstance(w, list))
        LOG.info("Backfill %s: %d streams, %d windows to do", scope, len(plan), progress.total)
        stop = threading.Event()
        printer = threading.Thread(target=report, args=(progress, stop), daemon=True)
        printer.start()
        with concurrent.futures.ThreadPoolExecutor(drivers.size) as pool:
            results = list(pool.map(lambda p: runner(*p), plan))
        stop.set()
        printer.join()
    finally:
        drivers.close()
    failed = [r for r in results if r.error or not r.complete]
    for r in failed:
        LOG.error("Stream %s did not finish: %s", r.stream, r.error or "interrupted", exc_info=r.exception)
    return 1 if failed else 0
