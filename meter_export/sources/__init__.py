"""The contract between telemetry sources and the rest of meter-export.

A source driver turns one stream's half-open time window into pages of
:class:`Sample` (or :class:`Rejected` for what it could not map).  Everything
downstream (the SQL sink, the checkpoint, rating) only ever sees these values.
"""

import abc
import contextlib
import dataclasses
import datetime
import threading
import typing

import stevedore
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import loading as ks_loading

# The [service_credentials] group: keystoneauth's own auth and session
# options, registered by service.prepare_service.
CREDENTIALS_GROUP = "service_credentials"


class Sample(typing.NamedTuple):
    """One telemetry sample, exactly as it lands in the samples table.

    NOTE(sink): a NamedTuple rather than a frozen dataclass: it is just as
    immutable, and its field order IS the table's column order, so the sink
    can hand a Sample to a COPY or an executemany with no per-row conversion.
    """

    message_id: str
    counter_name: str
    counter_type: str
    counter_unit: typing.Optional[str]
    counter_volume: float
    project_id: typing.Optional[str]
    user_id: typing.Optional[str]
    resource_id: typing.Optional[str]
    source: typing.Optional[str]
    timestamp: datetime.datetime  # timezone-aware, UTC
    recorded_at: typing.Optional[datetime.datetime]  # timezone-aware, UTC
    resource_metadata: typing.Optional[dict]


class Rejected(typing.NamedTuple):
    """Something a source returned that cannot become a Sample.

    It goes to the quarantine table with its reason; the rest of the page
    still lands.
    """

    payload: str  # the raw item as received, as text
    reason: str
    message_id: typing.Optional[str] = None


Item = typing.Union[Sample, Rejected]


@dataclasses.dataclass(frozen=True)
class MeterSpec:
    """One meter listed under a filter, with its per-meter settings."""

    name: str
    counter_type: str = "gauge"
    granularity: typing.Optional[int] = None  # Gnocchi only; None: finest
    aggregation: str = "mean"  # Gnocchi only


@dataclasses.dataclass(frozen=True)
class Filter:
    """A named selection of resources and the meters to export for them."""

    name: str
    meters: typing.Tuple[MeterSpec, ...]
    project_id: typing.Optional[str] = None
    user_id: typing.Optional[str] = None
    resource_id: typing.Optional[str] = None
    resource_type: str = "generic"  # Gnocchi only
    raw_query: typing.Any = None  # source-specific extra query


@dataclasses.dataclass(frozen=True)
class Stream:
    """The unit of checkpointing: one meter of one filter of one source."""

    source: str
    filter: Filter
    meter: MeterSpec

    @property
    def key(self) -> typing.Tuple[str, str, str]:
        return (self.source, self.filter.name, self.meter.name)

    def __str__(self):
        return "/".join(self.key)


class Census(typing.NamedTuple):
    """Where a stream's samples lie in [start, end), counted before reading it.

    ``buckets`` are ``(start, end, count)`` in time order; a span that no
    bucket covers held no sample when the census was taken, and a count is
    never below the samples its bucket holds (it may be above). ``detail``
    is the driver's own (counts per resource, say): the pipeline hands it
    back to ``fetch`` unread.
    """

    start: datetime.datetime
    end: datetime.datetime
    buckets: typing.Tuple[typing.Tuple[datetime.datetime, datetime.datetime, int], ...]
    detail: typing.Any = None


class SourceError(Exception):
    """Base of every error a source driver raises."""


class SourceUnavailable(SourceError):
    """The telemetry API could not be reached or kept failing; retry later."""


class SourceConfigError(SourceError):
    """The source refuses the configuration (wrong auth, 410 Gone, ...)."""


class PassMemo:
    """Values worked out once per pass and shared by the drivers of a pool.

    ``get(key, compute)``: the first caller computes the value while later
    callers of the same key wait for it. A failure is not kept: the next
    caller computes again.

    NOTE(bad-input): so one malformed answer fails one stream, not every
    stream of its filter (tests/functional/test_bad_input.py); the price is
    that during an outage the waiting streams retry one after the other.
    """

    def __init__(self):
        self._values, self._locks, self._guard = {}, {}, threading.Lock()

    def get(self, key, compute):
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._values:
                self._values[key] = compute()
            return self._values[key]


class SourceDriver(abc.ABC):
    """Reads samples of one stream for a time window.

    Drivers are built in the process that uses them (the worker child), with
    the service's ConfigOpts and the shutdown Event that cuts their retry
    backoffs short; they must not touch the network in __init__.
    """

    def __init__(self, conf, shutdown=None):
        self.conf = conf
        self.shutdown = shutdown or threading.Event()
        self.requests = 0  # HTTP requests sent, retries included (logged per stream)
        self.memo = PassMemo()  # shared with the other drivers of a DriverPool

    @abc.abstractmethod
    def fetch(
        self,
        stream: Stream,
        start: datetime.datetime,
        end: datetime.datetime,
        census: typing.Optional[Census] = None,
    ) -> typing.Iterator[typing.List[Item]]:
        """Yield pages holding every sample with ``start <= timestamp < end``.

        Called once per window by the sync pipeline; ``start`` and ``end`` are
        timezone-aware UTC.  A sample may appear more than once (the sink
        upserts on ``message_id``), but none may be missing once the
        generator is exhausted.  ``census``, when given, is what
        :meth:`census` answered for a span holding this window: the driver
        may skip what it shows to be empty.

        :raises SourceUnavailable: the API kept failing after retries.
        :raises SourceConfigError: the API refuses this configuration.
        """

    def census(self, stream: Stream, start: datetime.datetime, end: datetime.datetime) -> typing.Optional[Census]:
        """Where the stream's samples lie in [start, end), or None: unknown.

        Called once per pass and stream, before its windows are planned
        (checkpoint.plan); it must cost far less than reading the span.

        :raises SourceUnavailable: the API kept failing after retries.
        """
        return None

    def new_pass(self):
        """A pass starts: forget what was cached for the previous one."""
        self.memo = PassMemo()

    def close(self):  # noqa: B027 (optional hook: most drivers hold nothing to release)
        """Release connections; called when the worker stops."""


def keystone_session(conf):
    """A keystoneauth Session from [service_credentials], with [source] timeout.

    :raises SourceConfigError: the credentials are incomplete.
    """
    try:
        auth = ks_loading.load_auth_from_conf_options(conf, CREDENTIALS_GROUP)
    except ks_exc.ClientException as e:
        raise SourceConfigError("[%s]: %s" % (CREDENTIALS_GROUP, e))
    if auth is None:
        raise SourceConfigError("[%s] auth_type is not set" % CREDENTIALS_GROUP)
    return ks_loading.load_session_from_conf_options(conf, CREDENTIALS_GROUP, auth=auth, timeout=conf.source.timeout)


class DriverPool:
    """Source drivers for streams read at the same time, at most ``size``.

    A driver serves one stream at a time (its HTTP session and caches are
    not shared between threads); a stream gets back the driver that read it
    last when that one is free, so the caches it filled (metric lookups)
    keep serving it.  ``lease`` waits while ``size`` drivers are in use.
    The drivers of a pass share one PassMemo (a filter's resources, say).
    """

    def __init__(self, make, size=1):
        self._make, self.size = make, size
        self._all, self._idle, self._last = [], [], {}
        self._free = threading.Condition()
        self._memo = PassMemo()

    @classmethod
    def of(cls, driver):
        """A pool of one driver already built."""
        pool = cls(None, 1)
        pool._all.append(driver)
        pool._idle.append(driver)
        return pool

    @contextlib.contextmanager
    def lease(self, key=None):
        with self._free:
            self._free.wait_for(lambda: self._idle or len(self._all) < self.size)
            driver = self._last.get(key)
            if driver is None or not any(d is driver for d in self._idle):
                driver = self._idle[-1] if self._idle else self._new()
            self._idle = [d for d in self._idle if d is not driver]
            self._last[key] = driver
            driver.memo = self._memo
        try:
            yield driver
        finally:
            with self._free:
                self._idle.append(driver)
                self._free.notify()

    def _new(self):
        driver = self._make()
        self._all.append(driver)
        return driver

    def new_pass(self):
        self._memo = PassMemo()
        for driver in self._all:
            driver.new_pass()

    def close(self):
        for driver in self._all:
            driver.close()


def get_driver(conf, shutdown=None) -> SourceDriver:
    """Load the source driver named by ``[source] driver``."""
    return stevedore.driver.DriverManager(
        "meter_export.sources", conf.source.driver, invoke_on_load=True, invoke_args=(conf,), invoke_kwds={"shutdown": shutdown}
    ).driver
