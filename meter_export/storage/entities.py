"""The entities family's writer: parsed notifications become history rows.

One call to EntityStore.apply commits one transaction holding a batch of
notifications: the malformed ones go to quarantine, volume types are
upserted, and for each entity touched its new events are stored and its
versions rewritten from the first one that changed. The caller acknowledges
the messages only after apply returned, so a crash before the commit makes
the broker deliver them again, and the message_id key makes that harmless.
"""

import dataclasses
import hashlib
import json
import logging
import threading

import sqlalchemy as sa
import tenacity

from meter_export import utils
from meter_export.listen import events as ev
from meter_export.listen import history
from meter_export.storage import dialects
from meter_export.storage import engine as engine_mod
from meter_export.storage import entity_views
from meter_export.storage import samples
from meter_export.storage import schema
from meter_export.storage.types import JSONDocument

LOG = logging.getLogger(__name__)
QUARANTINE_STREAM = "listen"
#: rename-only events Cinder repeats every audit period; one that changes
#: nothing is not kept (see _periodic_no_op).
_PERIODIC = frozenset({"volume.exists"})


class EntityStoreError(Exception):
    """The database kept refusing a batch; the messages must be delivered again."""


@dataclasses.dataclass(frozen=True)
class ApplyResult:
    events: int = 0
    duplicates: int = 0
    quarantined: int = 0
    volume_types: int = 0
    skipped: int = 0


class EntityStore:
    """Writes entity histories into the destination database."""

    def __init__(self, url, retry_timeout=120, shutdown=None, volume_threshold=history.VOLUME_THRESHOLD, engine=None):
        self.engine = engine or engine_mod.make_engine(url)
        self.metadata = schema.make_metadata()
        tables = self.metadata.tables
        self.entities, self.events, self.heads = tables["entities"], tables["entity_events"], tables["entity_heads"]
        self.volume_types, self.quarantine = tables["volume_types"], tables["quarantine"]
        self.volume_threshold = volume_threshold
        self._rules = dialects.rules(self.engine.dialect)
        shutdown = shutdown or threading.Event()
        # NOTE(listen): only failures that can succeed later are retried (the
        # samples writer's rule, shared so both families agree on what a
        # retry can cure); a batch that still fails is requeued as a whole.
        self._retry = tenacity.Retrying(
            retry=tenacity.retry_if_exception(samples._retryable),
            wait=tenacity.wait_exponential(multiplier=0.2, max=10),
            stop=tenacity.stop_after_delay(retry_timeout) | tenacity.stop_when_event_set(shutdown),
            sleep=tenacity.nap.sleep_using_event(shutdown),
            before_sleep=tenacity.before_sleep_log(LOG, logging.WARNING),
            reraise=True,
        )

    def __str__(self):
        return "EntityStore(%s)" % engine_mod.masked(self.engine.url)

    def apply(self, parsed, before_commit=None):
        """Store a batch of Event, VolumeType and Malformed in one transaction.

        :param before_commit: called inside the transaction just before it
            commits (tests use it to die between receive and commit).
        :raises EntityStoreError: the database kept failing; nothing of the
            batch was written.
        """
        parsed = list(parsed)
        try:
            return self._retry(self._apply_once, parsed, before_commit)
        except sa.exc.SQLAlchemyError as e:
            if samples._retryable(e) or not isinstance(e, sa.exc.DBAPIError):
                raise EntityStoreError("writing %d notifications failed: %s" % (len(parsed), e)) from e
            LOG.warning("The database refused a batch of %d notifications (%s); storing them one by one", len(parsed), e)
            return self._apply_isolating(parsed)

    def _apply_isolating(self, parsed):
        """One transaction per notification; one the database refuses is
        quarantined, so it cannot come back from the queue forever."""
        totals = ApplyResult()
        for item in parsed:
            try:
                result = self._retry(self._apply_once, [item], None)
            except sa.exc.DBAPIError as e:
                if samples._retryable(e):
                    raise EntityStoreError("writing a notification failed: %s" % e) from e
                result = self._retry(self._apply_once, [_refused(item, e)], None)
            totals = _add(totals, result)
        return totals

    def _apply_once(self, parsed, before_commit):
        now = utils.utcnow()
        malformed = [p for p in parsed if isinstance(p, ev.Malformed)]
        types = [p for p in parsed if isinstance(p, ev.VolumeType)]
        by_entity = _group([p for p in parsed if isinstance(p, ev.Event)])
        totals = ApplyResult(quarantined=len(malformed), volume_types=len(types))
        with self.engine.begin() as conn:
            if malformed:
                conn.execute(self._insert_ignore(self.quarantine, "fingerprint"), [_quarantine_row(m, now) for m in malformed])
            if types:
                self._upsert_volume_types(conn, types, now)
            if by_entity:
                totals = _add(totals, self._apply_events(conn, by_entity, now))
            if before_commit is not None:
                before_commit()
        return totals

    def _apply_events(self, conn, by_entity, now):
        """Lock the entities, read their events, rebuild, write: a few
        statements for the whole batch, not a few per entity."""
        ids = sorted(by_entity)
        self._lock(conn, ids, by_entity, now)
        stored = self._stored_events(conn, ids)
        plans = [_plan(by_entity[i], stored.get(i, []), self.volume_threshold) for i in ids]
        events = [_event_row(e, now) for p in plans for e in p.kept]
        if events:
            _bulk_insert(conn, self.events, events)
        self._rewrite_versions(conn, [p for p in plans if p.fresh], now)
        for plan in plans:
            plan.log_skipped()
        return ApplyResult(
            events=sum(len(p.fresh) for p in plans),
            duplicates=sum(p.duplicates for p in plans),
            skipped=sum(len(p.skipped) for p in plans),
        )

    def _lock(self, conn, ids, by_entity, now):
        """Make each entity's head row exist, then hold them until the commit.

        NOTE(listen): in id order, so two batches that share entities take
        their locks in the same order and cannot deadlock.
        """
        rows = [{"entity_id": i, "entity_type": by_entity[i][0].entity_type, "created_at": now} for i in ids]
        writer = _for_driver(_NEW_HEADS, conn)
        if writer is None:
            conn.execute(self._insert_ignore(self.heads, "entity_id"), rows)
        else:
            _driver_call(conn, writer, self.heads, rows)
        t = self.heads
        conn.execute(sa.select(t.c.entity_id).where(t.c.entity_id.in_(ids)).order_by(t.c.entity_id).with_for_update()).all()

    def _stored_events(self, conn, ids):
        """{entity_id: [Event]} already stored.

        NOTE(listen): a locking read: under InnoDB's REPEATABLE READ a plain
        SELECT would read the snapshot taken at the transaction's first read,
        missing events another writer committed while we waited for the lock.
        """
        t = self.events
        found = {}
        for row in conn.execute(sa.select(t.c.entity_id, t.c.event).where(t.c.entity_id.in_(ids)).with_for_update()):
            found.setdefault(row.entity_id, []).append(ev.Event.from_json(row.event))
        return found

    def _rewrite_versions(self, conn, plans, now):
        """Rewrite each entity's versions from the first one that differs
        (most events only close the last version and append one)."""
        deletes, inserts = [], []
        for plan in plans:
            same = plan.unchanged_versions()
            deletes += [(plan.entity_id, number) for number in range(same + 1, len(plan.before.versions) + 1)]
            inserts += [_version_row(v, i + 1, now) for i, v in enumerate(plan.after.versions) if i >= same]
        if deletes:
            t = self.entities
            conn.execute(sa.delete(t).where(sa.tuple_(t.c.entity_id, t.c.version).in_(deletes)))
        if inserts:
            _bulk_insert(conn, self.entities, inserts)

    def _upsert_volume_types(self, conn, types, now):
        rows = {
            t.volume_type_id: {"volume_type_id": t.volume_type_id, "volume_type_name": t.volume_type_name, "updated_at": now} for t in types
        }
        stmt = self._rules.upsert(self._rules.insert(self.volume_types), ["volume_type_id"], ["volume_type_name", "updated_at"])
        conn.execute(stmt, list(rows.values()))

    def set_expected_meters(self, meters):
        """{entity_type: [meter...]}: what the missing_telemetry view expects."""
        with self.engine.begin() as conn:
            entity_views.set_meters(conn, self.metadata.tables["entity_meters"], meters)

    def _insert_ignore(self, table, key):
        return self._rules.insert_ignore(self._rules.insert(table), [key])

    def close(self):
        self.engine.dispose()


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What one entity's new events do, worked out before anything is written."""

    entity_id: str
    fresh: list
    kept: list
    duplicates: int
    before: history.History
    after: history.History

    @property
    def skipped(self):
        return [e for e in self.fresh if self.after.outcomes[e.message_id].startswith("skipped")]

    def unchanged_versions(self):
        old, new = self.before.versions, self.after.versions
        same = 0
        while same < min(len(old), len(new)) and old[same] == new[same]:
            same += 1
        return same

    def log_skipped(self):
        for event in self.skipped:
            LOG.info(
                "Kept %s %s of %s %s: %s",
                event.event_type,
                event.message_id,
                event.entity_type,
                self.entity_id,
                self.after.outcomes[event.message_id],
            )


def _plan(new_events, stored, threshold):
    known = {e.message_id for e in stored}
    fresh = [e for e in new_events if e.message_id not in known]
    before = history.build(stored, threshold) if fresh else None
    after = history.build(stored + fresh, threshold) if fresh else None
    kept = [e for e in fresh if not _periodic_no_op(e, after)]
    return _Plan(new_events[0].entity_id, fresh, kept, len(new_events) - len(fresh), before, after)


def _pg_copy(conn, table, rows):
    """psycopg 3: COPY the new rows in, one round trip (they are new by
    construction: events under their entity's lock, versions after the
    delete). NOTE(listen): a third of a batch was the server running an
    executemany's statements one by one (bench/listen.py, py-spy)."""
    from psycopg.types import json as pg_json

    columns = list(rows[0])
    documents = {c for c in columns if isinstance(table.c[c].type, JSONDocument)}
    raw = conn.connection.driver_connection
    with raw.cursor() as cur:
        with cur.copy('COPY "%s" (%s) FROM STDIN' % (table.name, ", ".join('"%s"' % c for c in columns))) as copy:
            for row in rows:
                copy.write_row([pg_json.Jsonb(row[c]) if c in documents and row[c] is not None else row[c] for c in columns])


def _pg_new_heads(conn, table, rows):
    """psycopg 3: the missing head rows in one statement (arrays unnested)."""
    raw = conn.connection.driver_connection
    with raw.cursor() as cur:
        cur.execute(
            'INSERT INTO "%s" (entity_id, entity_type, created_at) SELECT * FROM unnest(%%s::text[], %%s::text[], %%s::timestamptz[]) '
            "ON CONFLICT (entity_id) DO NOTHING" % table.name,
            ([r["entity_id"] for r in rows], [r["entity_type"] for r in rows], [r["created_at"] for r in rows]),
        )


# NOTE(listen): (family, driver) -> faster writer, as storage/upsert.py's
# WRITERS; any other driver takes the portable SQLAlchemy statement.
_BULK_INSERTS = {("postgresql", "psycopg"): _pg_copy}
_NEW_HEADS = {("postgresql", "psycopg"): _pg_new_heads}


def _for_driver(writers, conn):
    return writers.get((dialects.family(conn.dialect), conn.dialect.driver))


def _bulk_insert(conn, table, rows):
    """INSERT many new rows, the fastest way the driver offers."""
    writer = _for_driver(_BULK_INSERTS, conn)
    if writer is None:
        conn.execute(sa.insert(table), rows)
    else:
        _driver_call(conn, writer, table, rows)


def _driver_call(conn, writer, table, rows):
    """Run a driver-level writer; its DBAPI errors become SQLAlchemy's, so
    retries and quarantine see them as they see any statement's."""
    dbapi = conn.dialect.loaded_dbapi
    try:
        writer(conn, table, rows)
    except dbapi.Error as e:
        lost = conn.dialect.is_disconnect(e, conn.connection.dbapi_connection, None)
        if lost:
            conn.invalidate()
        raise sa.exc.DBAPIError.instance(None, None, e, dbapi.Error, connection_invalidated=lost) from e


def _group(events):
    """{entity_id: [events]}, each message_id once (a burst may repeat one)."""
    seen, groups = set(), {}
    for event in events:
        if event.message_id not in seen:
            seen.add(event.message_id)
            groups.setdefault(event.entity_id, []).append(event)
    return groups


def _periodic_no_op(event, after):
    # NOTE(listen): volume.exists comes every audit period for every volume;
    # keeping the ones that change nothing would make each rebuild read a
    # year of them. A rename that is late AND older than such a dropped one
    # is then not undone by it (documented in README.rst).
    return event.event_type in _PERIODIC and after.outcomes[event.message_id] == history.UNCHANGED


def _add(a, b):
    return ApplyResult(*(x + y for x, y in zip(dataclasses.astuple(a), dataclasses.astuple(b), strict=True)))


def _event_row(event, now):
    return {
        "message_id": event.message_id,
        "entity_id": event.entity_id,
        "entity_type": event.entity_type,
        "event_type": event.event_type,
        "event_time": event.time,
        "received_at": now,
        "event": event.to_json(),
    }


def _pairs(value):
    return None if value is None else dict(value)


def _version_row(version, number, now):
    return {
        "entity_id": version.entity_id,
        "version": number,
        "entity_type": version.entity_type,
        "project_id": version.project_id,
        "name": version.name,
        "start": version.start,
        "end": version.end,
        "last_event": version.last_event,
        "flavor": version.flavor,
        "image_meta": _pairs(version.image_meta),
        "metadata": _pairs(version.metadata),
        "power_state": version.power_state,
        "volume_type": version.volume_type,
        "size": version.size,
        "attached_to": None if version.attached_to is None else list(version.attached_to),
        "updated_at": now,
    }


def _refused(item, error):
    body = item.to_json() if isinstance(item, ev.Event) else dataclasses.asdict(item)
    reason = "refused by the database: %s" % samples._first_line(error)
    return ev.Malformed(getattr(item, "message_id", None), getattr(item, "event_type", "volume_type.create"), reason, body)


def _quarantine_row(malformed, now):
    payload = json.dumps(malformed.body, default=str, sort_keys=True)
    reason = "%s: %s" % (malformed.event_type or "notification", malformed.reason)
    digest = hashlib.sha1("\x00".join((QUARANTINE_STREAM, reason, payload)).encode("utf-8", "surrogatepass"), usedforsecurity=False)
    return {
        "fingerprint": digest.hexdigest(),
        "quarantined_at": now,
        "stream": QUARANTINE_STREAM,
        "message_id": (malformed.message_id or "")[: schema.NAME_LENGTH] or None,
        "reason": reason,
        "payload": payload,
    }
