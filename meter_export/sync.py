"""The one pipeline, used by the worker and by backfill.

source.fetch -> pages -> sink.write in batches; the write that ends a window
also advances the stream's checkpoint to the window's end, in the same
transaction. Anything interrupted before that write is simply read again:
the upsert on message_id makes a replay harmless.
"""

import dataclasses
import logging
import threading

from meter_export import checkpoint
from meter_export import utils
from meter_export.sources import Stream
from meter_export.storage import schema

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class StreamResult:
    stream: Stream
    windows: int = 0
    written: int = 0
    quarantined: int = 0
    seconds: float = 0.0
    error: str = None
    complete: bool = True


class Interrupted(Exception):
    """Shutdown was asked for in the middle of a window."""


def streams(source_name, filters):
    """Every (source, filter, meter) stream, in file order."""
    return [Stream(source_name, f, m) for f in filters for m in f.meters]


def _pages(source, stream, windows):
    """(end, page) of each window in order; page None closes a window."""
    for start, end in windows:
        yield from ((end, page) for page in source.fetch(stream, start, end))
        yield end, None


class _Counts:
    def __init__(self):
        self.windows = self.written = self.quarantined = 0

    def add(self, result, window=False):
        self.written += result.written
        self.quarantined += result.quarantined
        self.windows += int(window)


def _write_pages(pages, sink, stream, scope, shutdown, counts):
    """Write pages as they come; each window's last write moves the checkpoint.

    Returns False when shutdown stopped it between two windows.

    :raises Interrupted: shutdown was set in the middle of a window; what was
        read so far is committed, the checkpoint is not moved.
    """
    buffer = []
    for end, page in pages:
        if page is None:
            counts.add(sink.write(buffer, stream, advance_to=end, scope=scope), window=True)
            buffer = []
            if shutdown.is_set():
                return False
            continue
        buffer.extend(page)
        if shutdown.is_set():
            result = sink.write(buffer, stream)
            counts.add(result)
            raise Interrupted("%d samples written, window not finished" % result.written)
        if len(buffer) >= sink.batch_size:
            counts.add(sink.write(buffer, stream))
            buffer = []
    return True


def sync_window(source, sink, stream, start, end, scope=schema.LIVE_SCOPE, shutdown=None):
    """Read [start, end) completely and write it; returns (written, quarantined).

    :raises Interrupted: see _write_pages.
    """
    counts = _Counts()
    _write_pages(_pages(source, stream, [(start, end)]), sink, stream, scope, shutdown or threading.Event(), counts)
    return counts.written, counts.quarantined


def sync_stream(source, sink, stream, windows, scope=schema.LIVE_SCOPE, shutdown=None):
    """Sync a stream's windows in order; never raises, the result says.

    NOTE(bench): the source is read one page ahead, in a thread, while the
    previous page is written: the API and the database then work at the same
    time instead of in turn (bench/e2e_gnocchi.py). Writes and checkpoint
    moves still happen here, in order.
    """
    watch = utils.StopWatch()
    shutdown = shutdown or threading.Event()
    counts = _Counts()
    error, complete = None, not shutdown.is_set()
    try:
        if complete:
            with utils.read_ahead(_pages(source, stream, windows)) as pages:
                complete = _write_pages(pages, sink, stream, scope, shutdown, counts)
    except Interrupted:
        complete = False
    except Exception as e:
        LOG.error("Stream %s failed, it will be retried on the next pass: %s", stream, e, exc_info=True)
        error, complete = str(e) or type(e).__name__, False
    return StreamResult(stream, counts.windows, counts.written, counts.quarantined, watch.elapsed(), error, complete)


def live_windows(sink, stream, conf, now):
    """The windows a pass reads for this stream, from its live checkpoint."""
    s = conf.sync
    return checkpoint.windows(sink.checkpoint(stream.key), now, utils.parse_start(s.initial_start, now), s.lookback, s.settle, s.max_window)


def run_pass(source, sink, all_streams, conf, shutdown=None, now=None):
    """One pass over the streams; a failing stream never blocks the others."""
    results = []
    for stream in all_streams:
        if shutdown is not None and shutdown.is_set():
            break
        now_ = now or utils.utcnow()
        try:
            windows = live_windows(sink, stream, conf, now_)
        except Exception as e:
            LOG.error("Stream %s: cannot read its checkpoint: %s", stream, e, exc_info=True)
            results.append(StreamResult(stream, error=str(e), complete=False))
            continue
        result = sync_stream(source, sink, stream, windows, shutdown=shutdown)
        _log_result(result, windows)
        results.append(result)
    return results


def _log_result(result, windows):
    span = "%s .. %s" % (utils.isoformat(windows[0][0]), utils.isoformat(windows[-1][1])) if windows else "nothing new"
    LOG.info(
        "Stream %s: %s, %d/%d windows, %d samples written, %d quarantined, %.2fs%s",
        result.stream,
        span,
        result.windows,
        len(windows),
        result.written,
        result.quarantined,
        result.seconds,
        " (FAILED: %s)" % result.error if result.error else "",
    )
