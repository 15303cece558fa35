"""Small shared helpers: time, ISO 8601 parsing, reading ahead in a thread.

Retry presets live beside what they retry: sources/http.py, the sink."""

import datetime
import gc
import logging
import queue
import re
import threading
import time

LOG = logging.getLogger(__name__)

UTC = datetime.UTC

_DURATION = re.compile(
    r"^-P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)


def utcnow():
    return datetime.datetime.now(UTC)


def parse_utc(text):
    """Parse an ISO 8601 timestamp; a naive one is taken as UTC.

    :raises ValueError: not ISO 8601.
    """
    value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_start(text, now=None):
    """An ISO 8601 UTC timestamp, or a negative duration such as -P7D from now.

    :raises ValueError: neither form.
    """
    match = _DURATION.match(text or "")
    if match and any(match.groupdict().values()):
        parts = {k: int(v) for k, v in match.groupdict().items() if v}
        return (now or utcnow()) - datetime.timedelta(**parts)
    try:
        return parse_utc(text)
    except (ValueError, AttributeError):
        raise ValueError("%r is neither an ISO 8601 UTC timestamp nor a negative ISO 8601 duration like -P7D" % text)


def isoformat(value):
    """UTC, 6-digit microseconds, no offset: the form both APIs accept."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


# (first generation, second, third) of gc.set_threshold in a syncing process
COLLECTOR_THRESHOLDS = (50000, 20, 20)


def tune_collector():
    """Make CPython's cyclic collector run less often in a process that syncs.

    NOTE(bench): a pass allocates millions of short-lived objects the
    collector tracks (each Sample holds its resource's metadata dict), and
    the default thresholds (700, 10, 10) make it walk every page in flight
    many times: 5.5-5.7 CPU-seconds of meter-export's 518,400-sample catch-up
    against 3.8-3.9 with these (bench/e2e_gnocchi.py). The samples hold no
    cycle, so nothing waits longer to be freed; the rest of the process's
    garbage is collected as before, only later.
    """
    gc.set_threshold(*COLLECTOR_THRESHOLDS)


class StopWatch:
    """Monotonic elapsed time."""

    def __init__(self):
        self._start = time.monotonic()

    def elapsed(self):
        return time.monotonic() - self._start


class read_ahead:  # noqa: N801 (used like a function: with read_ahead(it) as items)
    """Iterate ``iterable`` in a thread, at most ``depth`` items ahead.

    ``with read_ahead(pages) as items: for item in items: ...``. An exception
    of the producer comes out of the consumer's loop, in order; ``ready()``
    says whether taking the next item would wait. Leaving the block stops the
    producer and waits until it has finished the item in hand, so whatever it
    was using (an HTTP session) is free again afterwards.
    """

    _END = object()

    def __init__(self, iterable, depth=1):
        self._iterable = iterable
        self._queue = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="read-ahead", daemon=True)
        self._iterator = self._items()
        self._handing = False  # the producer holds a read item it has not queued yet

    def __enter__(self):
        self._thread.start()
        return self

    def __iter__(self):
        return self

    def __next__(self):
        if self._thread.ident is None:  # never started: the get would wait forever
            raise RuntimeError("read_ahead is iterated inside its with block only")
        return next(self._iterator)

    def ready(self):
        """True when the next item (or the end) is already read: taking it will not wait.

        NOTE(sync): the queue alone is not enough: just after the consumer
        takes an item, the producer, blocked with the next one in hand, has
        not been scheduled to queue it yet.
        """
        return self._handing or not self._queue.empty()

    def __exit__(self, *exc):
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.1)  # unblock a put
            except queue.Empty:
                pass
        self._thread.join()

    def _produce(self):
        try:
            for item in self._iterable:
                if not self._put((item, None)):
                    return
            self._put((self._END, None))
        except BaseException as e:  # handed over to the consumer
            self._put((self._END, e))

    def _put(self, entry):
        self._handing = True
        try:
            while not self._stop.is_set():
                try:
                    self._queue.put(entry, timeout=0.5)
                    return True
                except queue.Full:
                    continue
            return False
        finally:
            self._handing = False

    def _items(self):
        while True:
            item, error = self._queue.get()
            if error is not None:
                raise error
            if item is self._END:
                return
            yield item
