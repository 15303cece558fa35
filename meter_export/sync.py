"""The one pipeline, used by the worker and by backfill.

source.census -> checkpoint.plan -> windows; then per window source.fetch ->
pages -> sink.write in batches; the write that ends a window also advances
the stream's checkpoint to the window's end, in the same transaction.
Anything interrupted before that write is simply read again: the upsert on
message_id makes a replay harmless. A pass runs several streams at once (a
driver each, from a sources.DriverPool); within a stream all is in order.
"""

import concurrent.futures
import dataclasses
import logging
import threading

from meter_export import checkpoint
from meter_export import sources
from meter_export import utils
from meter_export.storage import schema

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class StreamResult:
    stream: sources.Stream
    windows: int = 0
    written: int = 0
    quarantined: int = 0
    seconds: float = 0.0
    error: str = None
    complete: bool = True
    requests: int = 0
    exception: BaseException = dataclasses.field(default=None, compare=False, repr=False)


class Interrupted(Exception):
    """Shutdown was asked for in the middle of a window."""


def streams(source_name, filters):
    """Every (source, filter, meter) stream, in file order."""
    return [sources.Stream(source_name, f, m) for f in filters for m in f.meters]


def _pages(source, stream, windows, census=None):
    """(window, page) of each window in order; page None closes a window."""
    for window in windows:
        yield from ((window, page) for page in source.fetch(stream, *window, census))
        yield window, None


class _Counts:
    def __init__(self):
        self.windows = self.written = self.quarantined = 0

    def add(self, result, window=False):
        self.written += result.written
        self.quarantined += result.quarantined
        self.windows += int(window)


def _write_pages(pages, sink, stream, scope, shutdown, counts, new_from):
    """Write pages as they come; each window's last write moves the checkpoint.

    Rows wait for more until ``batch_size`` are in hand or the next page is
    not read yet (``pages.ready()``): then they are written rather than held,
    so the database works while the source reads the next page.

    Returns False when shutdown stopped it between two windows.

    :raises Interrupted: shutdown was set in the middle of a window; what was
        read so far is committed, the checkpoint is not moved.
    """
    buffer = []
    for (start, end), page in pages:
        new = new_from is not None and start >= new_from
        if page is None:
            counts.add(sink.write(buffer, stream, advance_to=end, scope=scope, new=new), window=True)
            buffer = []
            if shutdown.is_set():
                return False
            continue
        buffer.extend(page)
        if shutdown.is_set():
            result = sink.write(buffer, stream, new=new)
            counts.add(result)
            raise Interrupted("%d samples written, window not finished" % result.written)
        if len(buffer) >= sink.batch_size or not pages.ready():
            counts.add(sink.write(buffer, stream, new=new))
            buffer = []
    return True


def sync_stream(source, sink, stream, windows, scope=schema.LIVE_SCOPE, shutdown=None, census=None, new_from=None):
    """Sync a stream's windows in order; never raises, the result says.

    ``new_from``: where the stream's checkpoint stood when the pass began
    (its span's start if it had none). No pass of the stream has written a
    sample of a window starting there or later, so those windows are written
    with ``new=True`` (Sink.write). None: every window is upserted.

    NOTE(sync): nothing is logged here: the caller logs the result once, a
    failure with its traceback (StreamResult.exception).

    NOTE(bench): the source is read one page ahead, in a thread, while the
    previous page is written: the API and the database then work at the same
    time instead of in turn (bench/e2e_gnocchi.py). Writes and checkpoint
    moves still happen here, in order.
    """
    watch = utils.StopWatch()
    shutdown = shutdown or threading.Event()
    counts = _Counts()
    error, complete, exception = None, not shutdown.is_set(), None
    try:
        if complete:
            with utils.read_ahead(_pages(source, stream, windows, census)) as pages:
                complete = _write_pages(pages, sink, stream, scope, shutdown, counts, new_from)
    except Interrupted:
        complete = False
    except Exception as e:
        error, complete, exception = str(e) or type(e).__name__, False, e
    return StreamResult(stream, counts.windows, counts.written, counts.quarantined, watch.elapsed(), error, complete, exception=exception)


def plan(source, stream, start, end, conf):
    """(windows, census) tiling [start, end) for this stream.

    :raises SourceError: the census failed.
    """
    census = source.census(stream, start, end) if start < end else None
    return checkpoint.plan(start, end, conf.sync.max_window, census, conf.sync.window_samples), census


def live_span(mark, conf, now):
    """[start, end) a pass reads for a stream whose live checkpoint is ``mark``."""
    s = conf.sync
    return checkpoint.span(mark, now, utils.parse_start(s.initial_start, now), s.lookback, s.settle)


def driver_pool(conf, shutdown=None, wanted=None):
    """The source drivers for ``wanted`` streams at once ([sync]
    stream_threads by default). Where the database takes one writer at a
    time, the streams still read at once and queue for it (storage.samples)."""
    size = max(1, wanted or conf.sync.stream_threads)
    return sources.DriverPool(lambda: sources.get_driver(conf, shutdown), size)


def run_pass(drivers, sink, all_streams, conf, shutdown=None, now=None):
    """One pass over the streams, ``drivers.size`` at a time (sources.DriverPool).

    A failing stream never blocks the others; the results keep the streams'
    order, without those that shutdown stopped before they started.
    """
    drivers.new_pass()
    shutdown = shutdown or threading.Event()

    def one(stream):
        if shutdown.is_set():
            return None
        with drivers.lease(stream.key) as source:
            return _pass_stream(source, sink, stream, conf, shutdown, now or utils.utcnow())

    with concurrent.futures.ThreadPoolExecutor(max(1, min(drivers.size, len(all_streams)))) as pool:
        return [r for r in pool.map(one, all_streams) if r is not None]


def _pass_stream(source, sink, stream, conf, shutdown, now):
    windows, sent, watch = [], source.requests, utils.StopWatch()
    try:
        mark = sink.checkpoint(stream.key)
        start, end = live_span(mark, conf, now)
        windows, census = plan(source, stream, start, end, conf)
    except Exception as e:
        result = StreamResult(stream, error="cannot plan its windows: %s" % e, complete=False, exception=e)
    else:
        result = sync_stream(source, sink, stream, windows, shutdown=shutdown, census=census, new_from=mark or start)
    # NOTE(sync): the census is part of the stream's cost: counted in.
    result = dataclasses.replace(result, requests=source.requests - sent, seconds=watch.elapsed())
    log_result(result, windows)
    return result


def log_result(result, windows):
    """The one log line of a stream's pass: INFO, or ERROR with the traceback."""
    span = "%s .. %s" % (utils.isoformat(windows[0][0]), utils.isoformat(windows[-1][1])) if windows else "nothing new"
    failed = result.error is not None
    LOG.log(
        logging.ERROR if failed else logging.INFO,
        "Stream %s: %s, %d/%d windows, %d requests, %d samples written, %d quarantined, %.2fs%s",
        result.stream,
        span,
        result.windows,
        len(windows),
        result.requests,
        result.written,
        result.quarantined,
        result.seconds,
        " (FAILED, retried on the next pass: %s)" % result.error if failed else "",
        exc_info=result.exception if failed else None,
    )
