"""The rater: hours of samples become rows of the usage table.

One transaction per hour: its usage rows are deleted and derived again from
the samples table alone, so rating is idempotent and a reader never sees an
hour half-rated. Set-based transformers run as one INSERT ... SELECT per
mapping (rating/statements.py); the others (uptime, JMESPath filters or
volumes) read the hour's samples and call rating/transformers.py.
"""

import datetime
import decimal
import itertools
import logging

import sqlalchemy as sa

from meter_export import checkpoint as checkpoint_mod
from meter_export import utils
from meter_export.rating import mappings as mappings_mod
from meter_export.rating import statements
from meter_export.rating import transformers
from meter_export.storage import usage
from meter_export.storage import views

LOG = logging.getLogger(__name__)
HOUR = datetime.timedelta(hours=1)


def floor_hour(t):
    return t.replace(minute=0, second=0, microsecond=0)


def ceil_hour(t):
    floor = floor_hour(t)
    return floor if floor == t else floor + HOUR


def hours(start, end):
    """Every UTC hour start of [floor(start), ceil(end))."""
    h, end = floor_hour(start), ceil_hour(end)
    result = []
    while h < end:
        result.append(h)
        h += HOUR
    return result


def _sample_document(row):
    """The sample as a JMESPath filter or volume source sees it (Distil's names too)."""
    metadata = row.resource_metadata or {}
    return {
        "message_id": row.message_id,
        "meter": row.counter_name,
        "counter_name": row.counter_name,
        "volume": row.counter_volume,
        "counter_volume": row.counter_volume,
        "project_id": row.project_id,
        "user_id": row.user_id,
        "resource_id": row.resource_id,
        "source": row.source,
        "timestamp": utils.isoformat(row.timestamp),
        "metadata": metadata,
        "resource_metadata": metadata,
    }


class Rater:
    """Rates hours with the mappings into the usage table of ``sink``'s database."""

    def __init__(self, sink, mappings, carry_in=3600, region=""):
        self.engine, self.samples = sink.engine, sink.samples
        self.tables = sink.metadata.tables
        self.usage = self.tables["usage"]
        self.mappings = mappings
        self.carry = datetime.timedelta(seconds=carry_in)
        self.region = region
        self._warned = set()

    @classmethod
    def from_conf(cls, conf, sink):
        return cls(sink, mappings_mod.load(conf.rating.mappings_file), conf.rating.carry_in, conf.rating.region)

    def rate_hour(self, start):
        """Derive the usage of [start, start + 1 h) again; returns its row count."""
        end, now = start + HOUR, utils.utcnow()
        with self.engine.begin() as conn:
            conn.execute(self.usage.delete().where(self.usage.c.period_start == start))
            for mapping in self.mappings:
                if mapping.in_sql:
                    conn.execute(self._statement(conn, mapping, start, end, now))
                else:
                    rows = list(self._python_rows(conn, mapping, start, end, now))
                    if rows:
                        conn.execute(self.usage.insert(), rows)
            # NOTE(rating): psycopg gives no rowcount for INSERT ... SELECT here.
            return conn.execute(sa.select(sa.func.count()).where(self.usage.c.period_start == start)).scalar()

    def _statement(self, conn, mapping, start, end, now):
        return statements.insert_hour(self.usage, self.samples, mapping, conn.dialect, start, end, self.carry, self.region, now)

    def rate_range(self, start, end, progress=None):
        """Rate every hour of [start, end) in order; returns the usage rows written."""
        written = 0
        for h in hours(start, end):
            written += self.rate_hour(h)
            if progress is not None:
                progress(h, written)
        self.warn_unrated(floor_hour(start), ceil_hour(end))
        return written

    def warn_unrated(self, start, end):
        """Log once per service (per process) that usage has no price in force."""
        unrated = views.unrated_usage(self.tables).subquery()
        query = sa.select(unrated.c.service, sa.func.count()).where(unrated.c.period_start >= start, unrated.c.period_start < end)
        with self.engine.connect() as conn:
            for service, count in conn.execute(query.group_by(unrated.c.service)):
                if service not in self._warned:
                    self._warned.add(service)
                    LOG.warning("Usage of service %s has no price in force (%d rows since %s): see unrated_usage", service, count, start)

    def _python_rows(self, conn, mapping, start, end, now):
        low = start - self.carry if mapping.transformer in transformers.NEEDS_CARRIED else start
        s = self.samples
        query = (
            sa.select(s)
            .where(s.c.counter_name == mapping.meter, s.c.timestamp >= low, s.c.timestamp < end)
            .order_by(s.c.resource_id, s.c.timestamp, s.c.message_id)
        )
        for resource_id, rows in itertools.groupby(conn.execute(query), key=lambda r: r.resource_id):
            yield from self._resource_rows(mapping, resource_id, list(rows), start, end, now)

    def _resource_rows(self, mapping, resource_id, rows, start, end, now):
        kept = [(r, p) for r, p in ((r, self._point(mapping, r)) for r in rows) if p is not None]
        before = [p for r, p in kept if r.timestamp < start]
        inside = [(r, p) for r, p in kept if r.timestamp >= start]
        if not inside:
            return
        carried = before[-1] if before else None
        quantities = transformers.transform(mapping.transformer, [p for _, p in inside], start, end, carried, mapping.config)
        newest = inside[-1][0]
        for key, quantity in quantities.items():
            yield dict(
                service=key or mapping.service,
                resource_id=mappings_mod.mapped_resource_id(mapping, resource_id),
                period_start=start,
                period_end=end,
                project_id=newest.project_id,
                user_id=newest.user_id,
                meter=mapping.meter,
                unit=mapping.unit,
                region=self.region,
                quantity=quantity,
                resource_metadata=mappings_mod.mapped_metadata(mapping, newest.resource_metadata or {}),
                computed_at=now,
            )

    def _point(self, mapping, row):
        """The row as a transformer Point, or None when a filter drops it."""
        document = _sample_document(row) if mapping.filters or isinstance(mapping.volume, tuple) else None
        if not all(expression.search(document) for _, expression in mapping.filters):
            return None
        volume = self._volume(mapping, row, document)
        return None if volume is None else transformers.Point(row.timestamp, volume, row.resource_metadata or {})

    def _volume(self, mapping, row, document):
        if mapping.volume is None:
            return decimal.Decimal(repr(row.counter_volume))
        if not isinstance(mapping.volume, tuple):
            return mapping.volume
        for text, expression in mapping.volume:
            found = expression.search(document)
            if found is not None:
                try:
                    return decimal.Decimal(str(found))
                except decimal.InvalidOperation:
                    LOG.warning("Sample %s: volume source %s gave %r, not a number; sample not rated", row.message_id, text, found)
                    return None
        LOG.warning("Sample %s: no volume source of meter %s found; sample not rated", row.message_id, mapping.meter)
        return None


class PassRater:
    """What the worker rates after a pass: the hours that pass could have changed.

    State lives in the completeness table, not in this process: for every
    stream, the checkpoint rating last caught up with. A pass reads each
    stream from (checkpoint - lookback), so the hours from the oldest of
    those, minus lookback, up to the newest checkpoint are rated again; the
    cost follows the new data, not the table. Then each stream is marked
    final up to (checkpoint read before rating - lookback).
    """

    def __init__(self, rater, stream_keys, lookback):
        self.rater, self.keys, self.lookback = rater, list(stream_keys), lookback
        self.marks = rater.tables["completeness"]
        self.checkpoints = rater.tables["checkpoints"]

    @classmethod
    def from_conf(cls, conf, sink, streams):
        """None when rating is off ([rating] mappings_file unset)."""
        if not conf.rating.mappings_file:
            return None
        return cls(Rater.from_conf(conf, sink), [s.key for s in streams], conf.sync.lookback)

    def pending(self, conn):
        """(start, end, {stream key: checkpoint}) still to rate; start None: nothing."""
        cps = {k: checkpoint_mod.get(conn, self.checkpoints, "live", k) for k in self.keys}
        cps = {k: v for k, v in cps.items() if v is not None}
        if not cps:
            return None, None, cps
        marks = usage.marks(conn, self.marks)
        lookback = datetime.timedelta(seconds=self.lookback)
        starts = [marks[k].rated_checkpoint - lookback for k in cps if k in marks]
        if len(starts) < len(cps):
            first = conn.execute(sa.select(sa.func.min(self.rater.samples.c.timestamp))).scalar()
            starts.append(first or min(cps.values()))
        return min(starts), max(cps.values()), cps

    def after_pass(self):
        """Rate what is pending and move the marks; False (logged) on failure."""
        watch = utils.StopWatch()
        try:
            with self.rater.engine.connect() as conn:
                start, end, cps = self.pending(conn)
            written = self.rater.rate_range(start, end) if start is not None and start < end else 0
            with self.rater.engine.begin() as conn:
                usage.write_marks(conn, self.marks, cps, self.lookback, self.keys)
        except Exception:
            LOG.error("Rating after the pass failed; it is retried after the next one", exc_info=True)
            return False
        LOG.info("Rated %s .. %s: %d usage rows, %.2fs", start, end, written, watch.elapsed())
        return True
