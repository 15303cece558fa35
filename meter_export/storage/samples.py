"""The samples family's writer: where a page of samples becomes rows, atomically.

One call to Sink.write commits one transaction: the page's samples, its
quarantined items and, when asked, the advance of its stream's checkpoint.
"""

import contextlib
import dataclasses
import hashlib
import logging
import threading

import orjson
import sqlalchemy as sa
import tenacity

from meter_export import checkpoint
from meter_export import utils
from meter_export.storage import dialects
from meter_export.storage import engine as engine_mod
from meter_export.storage import rows as sink_rows
from meter_export.storage import schema
from meter_export.storage import upsert

LOG = logging.getLogger(__name__)


class SinkError(Exception):
    """The database refused a write and retrying did not help."""


class _Refused(Exception):
    """The database refused a batch written without savepoints."""


@dataclasses.dataclass(frozen=True)
class WriteResult:
    written: int
    quarantined: int


def _retryable(exc):
    """A failure that can succeed later (see dialects.Rules.transient).

    Any other database error is about the data; those rows are isolated and
    quarantined (Sink._upsert_isolating) so one bad row never blocks a stream.
    """
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    return exc.orig is not None and _rules_of(exc).transient(exc)


def _rules_of(exc):
    module = type(exc.orig).__module__
    if module.startswith("psycopg"):
        return dialects.RULES["postgresql"]
    if module.startswith(("pymysql", "MySQLdb")):
        return dialects.RULES["mysql"]
    return dialects.RULES["sqlite"]


class Sink:
    """Writes samples and checkpoints into the destination database."""

    def __init__(self, url, samples_table="samples", batch_size=10000, retry_timeout=120, shutdown=None):
        self.engine = engine_mod.make_engine(url)
        self.metadata = schema.make_metadata(samples_table)
        self.samples = self.metadata.tables[samples_table]
        self.checkpoints = self.metadata.tables["checkpoints"]
        self.quarantine = self.metadata.tables["quarantine"]
        self.batch_size = batch_size
        self._writer = upsert.writer_for(self.engine.dialect)
        self._inserter = upsert.inserter_for(self.engine.dialect)
        rules = dialects.rules(self.engine.dialect)
        self._writing = _writer_slots(rules.writers)
        self._lazy_commit = rules.lazy_commit
        self._shutdown = shutdown or threading.Event()
        self._retry = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_retryable),
            wait=tenacity.wait_exponential(multiplier=0.5, max=15),
            stop=tenacity.stop_after_delay(retry_timeout) | tenacity.stop_when_event_set(self._shutdown),
            sleep=tenacity.nap.sleep_using_event(self._shutdown),
            before_sleep=tenacity.before_sleep_log(LOG, logging.WARNING),
            reraise=True,
        )

    @classmethod
    def from_conf(cls, conf, shutdown=None):
        db = conf.database
        return cls(db.connection, db.samples_table, db.batch_size, db.retry_timeout, shutdown)

    def __str__(self):
        return "Sink(%s)" % engine_mod.masked(self.engine.url)

    def write(self, items, stream=None, advance_to=None, scope=schema.LIVE_SCOPE, new=False):
        """Upsert a page and quarantine what cannot be stored, in one transaction.

        :param items: Samples and Rejected, as a source driver yields them.
        :param stream: the Stream they came from (for quarantine and checkpoint).
        :param advance_to: when given, the stream's checkpoint moves to it in
            the same transaction.
        :param new: the samples are expected not to be stored yet: where the
            driver has an inserter, they are inserted first, and upserted
            only if that fails. The result is the same either way.
        :raises SinkError: the database kept failing.
        """
        good, rejected = sink_rows.prepare(items)
        try:
            return self._retry(self._write_once, good, rejected, stream, advance_to, scope, new)
        except sa.exc.SQLAlchemyError as e:
            raise SinkError("writing %d samples of %s failed: %s" % (len(good), stream, e)) from e

    def _write_once(self, good, rejected, stream, advance_to, scope, new):
        """One attempt; the retries around it share one retry_timeout."""
        with self._writing:
            if new and good and self._inserter is not None:
                result = self._inserted(good, rejected, stream, advance_to, scope)
                if result is not None:
                    return result
            try:
                return self._transaction(good, rejected, stream, advance_to, scope, self._upsert)
            except _Refused as e:
                # NOTE(sink): the common case pays for no savepoint (8% of the
                # SQLite write, bench/sink_throughput.py); a refused batch rolls
                # the whole transaction back and the write runs again with one
                # savepoint per batch, to find and quarantine the refused rows.
                LOG.warning("The database refused a batch of %s (%s); isolating the refused samples", stream, e)
                return self._transaction(good, rejected, stream, advance_to, scope, self._upsert_isolating)

    def _inserted(self, good, rejected, stream, advance_to, scope):
        """The write as a plain insert; None when refused (and rolled back)."""
        try:
            return self._transaction(good, rejected, stream, advance_to, scope, self._insert)
        except _Refused as e:
            # NOTE(sink): rows thought new were stored already (a window read
            # again after a crash, two filters sharing a metric) or refused;
            # the caller upserts them. INFO: a cause that stays (row-level
            # security refuses COPY) doubles every write, and must show.
            LOG.info("Inserting %d samples of %s failed (%s); upserting them", len(good), stream, e)
            return None

    def _transaction(self, good, rejected, stream, advance_to, scope, write_batches):
        now = utils.utcnow()
        with self.engine.begin() as conn:
            if self._lazy_commit:
                # NOTE(sink): the commit does not wait for the disk: the
                # catch-up of issue 8's data set into PostgreSQL took 2.22 s
                # instead of 2.34 (medians of 5 interleaved rounds). A database
                # crash can then lose the last transactions, each whole, its
                # checkpoint with its samples: the next pass reads them
                # again. A later commit that waits (rating) flushes them too.
                conn.exec_driver_sql(self._lazy_commit)
            refused = write_batches(conn, good)
            rejected = rejected + refused
            if rejected:
                conn.execute(self._insert_new_quarantine(), [self._quarantine_row(r, stream, now) for r in rejected])
            if advance_to is not None:
                checkpoint.advance(conn, self.checkpoints, scope, stream.key, advance_to, now)
        return WriteResult(len(good) - len(refused), len(rejected))

    def _batches(self, good):
        return [good[i : i + self.batch_size] for i in range(0, len(good), self.batch_size)]

    def _upsert(self, conn, good):
        return self._all_batches(conn, good, self._writer)

    def _insert(self, conn, good):
        return self._all_batches(conn, good, self._inserter)

    def _all_batches(self, conn, good, writer):
        """Write in batches with ``writer``; any refusal that a retry cannot
        cure raises _Refused."""
        for batch in self._batches(good):
            refusal = self._refusal(conn, batch, writer)
            if refusal is not None:
                raise _Refused(_first_line(refusal)) from refusal
        return []

    def _upsert_isolating(self, conn, good):
        """Upsert in batches; a batch the database refuses is split until the
        bad rows are found, and those are returned as Rejected."""
        rejected = []
        pending = self._batches(good)
        while pending:
            batch = pending.pop()
            if not batch:
                continue
            savepoint = conn.begin_nested()
            refusal = self._refusal(conn, batch, self._writer)
            if refusal is None:
                savepoint.commit()
                continue
            savepoint.rollback()
            if len(batch) == 1:
                rejected.append(_refused(batch[0], refusal))
                continue
            half = len(batch) // 2
            pending += [batch[:half], batch[half:]]
        return rejected

    def _refusal(self, conn, batch, writer):
        """Write one batch; the error if the database refused its data, else None.

        A failure a retry can cure is raised. NOTE(sink): before any rollback
        to a savepoint: a deadlock makes InnoDB roll back the whole
        transaction, savepoint included, and the failed ROLLBACK TO would
        replace the deadlock with an error we would take for bad rows, then
        commit the checkpoint without the earlier batches (found by
        tests/functional/test_crash.py). The retry redoes all.
        """
        try:
            self._call_writer(conn, batch, writer)
        except (sa.exc.DBAPIError, ValueError) as e:
            if _retryable(e):
                raise
            return e
        return None

    def _call_writer(self, conn, batch, writer):
        """Run a driver-level writer; its DBAPI errors become SQLAlchemy's."""
        dbapi = self.engine.dialect.loaded_dbapi
        try:
            writer(conn, self.samples, batch)
        except dbapi.Error as e:
            lost = self.engine.dialect.is_disconnect(e, conn.connection.dbapi_connection, None)
            if lost:
                conn.invalidate()
            raise sa.exc.DBAPIError.instance(None, None, e, dbapi.Error, connection_invalidated=lost) from e

    def _insert_new_quarantine(self):
        """INSERT that skips a fingerprint already quarantined."""
        rules = dialects.rules(self.engine.dialect)
        return rules.insert_ignore(rules.insert(self.quarantine), ["fingerprint"])

    def _quarantine_row(self, rejected, stream, now):
        stream = str(stream) if stream is not None else None
        digest = hashlib.sha1(
            "\x00".join((stream or "", rejected.reason, rejected.payload)).encode("utf-8", "surrogatepass"), usedforsecurity=False
        )
        return {
            "fingerprint": digest.hexdigest(),
            "quarantined_at": now,
            "stream": stream,
            "message_id": (rejected.message_id or "")[: schema.NAME_LENGTH] or None,
            "reason": rejected.reason,
            "payload": rejected.payload,
        }

    def checkpoint(self, key, scope=schema.LIVE_SCOPE):
        with self.engine.connect() as conn:
            return checkpoint.get(conn, self.checkpoints, scope, key)

    def close(self):
        self.engine.dispose()


def _writer_slots(most):
    """What a write holds while its transaction runs: at most ``most`` at once.

    NOTE(sync): streams read at the same time on every database; where the
    file takes one writer (SQLite) the others queue here, on a semaphore
    that wakes them the moment it is free, rather than in SQLite's busy
    handler, which polls with sleeps of up to 100 ms and gives up after
    busy_timeout.
    """
    return threading.BoundedSemaphore(most) if most else contextlib.nullcontext()


def _refused(row, error):
    payload = orjson.dumps(dict(zip(upsert.COLUMNS, row, strict=False)), default=str).decode()
    reason = "refused by the database: %s" % _first_line(error)
    return sink_rows.Rejected(payload, reason, row[0])


def _first_line(error):
    """The driver's own message, first non-blank line (none: the type's name)."""
    error = getattr(error, "orig", error)
    return next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
