"""Reads of the entities family, shaped like Almanach's API answers.

The Almanach routes of the API (``/v1/project/<id>/instances|volumes|
entities``, ``/v1/entity/<id>``, ``/v1/volume_types``, ``/v1/info``) are thin
wrappers around these functions: each takes a Connection and plain values
and returns JSON-ready dicts, or raises BadParameter (400, naming the
parameter) or NotFound (404).
"""

import datetime
import decimal

import sqlalchemy as sa

from meter_export import utils
from meter_export.storage import schema

UTC = datetime.UTC
#: Almanach's period format; ISO 8601 is accepted too.
PERIOD_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
ENTITY_TYPES = ("instance", "volume")


class BadParameter(ValueError):
    def __init__(self, name, reason):
        self.parameter = name
        super().__init__("%s: %s" % (name, reason))


class NotFound(LookupError):
    pass


def parse_period(start, end=None, now=None):
    """(start, end) of Almanach's query parameters: start required, end
    defaulting to now; naive values are UTC.

    :raises BadParameter: naming ``start`` or ``end``.
    """
    if not start:
        raise BadParameter("start", "the 'start' param is mandatory for the request you have made")
    begin = _time("start", start)
    until = _time("end", end) if end else (now or utils.utcnow())
    if until < begin:
        raise BadParameter("end", "%s is before start %s" % (end, start))
    return begin, until


def _time(name, text):
    try:
        return utils.parse_utc(text)
    except ValueError:
        raise BadParameter(name, "%r is not a date in the format %s (or ISO 8601)" % (text, PERIOD_FORMAT))


class EntityReader:
    """The read side over one metadata (the API holds one per process)."""

    def __init__(self, metadata=None):
        metadata = metadata if metadata is not None else schema.make_metadata()
        self.entities = metadata.tables["entities"]
        self.volume_types = metadata.tables["volume_types"]

    def of_project(self, conn, project_id, start, end, entity_type=None):
        """Versions of a project's entities that overlap [start, end] (closed,
        as Almanach: start <= end AND (end IS NULL OR end >= start))."""
        t = self.entities
        query = sa.select(t).where(t.c.project_id == project_id, t.c.start <= end, sa.or_(t.c.end.is_(None), t.c.end >= start))
        if entity_type is not None:
            if entity_type not in ENTITY_TYPES:
                raise BadParameter("entity_type", "%r is not one of %s" % (entity_type, ", ".join(ENTITY_TYPES)))
            query = query.where(t.c.entity_type == entity_type)
        return self._shaped(conn, conn.execute(query.order_by(t.c.start, t.c.entity_id, t.c.version)))

    def history(self, conn, entity_id):
        """Every version of one entity; NotFound when there is none."""
        t = self.entities
        rows = conn.execute(sa.select(t).where(t.c.entity_id == entity_id).order_by(t.c.version)).all()
        if not rows:
            raise NotFound("entity %s not found" % entity_id)
        return self._shaped(conn, rows)

    def all_volume_types(self, conn):
        t = self.volume_types
        return [_volume_type(r) for r in conn.execute(sa.select(t).order_by(t.c.volume_type_name, t.c.volume_type_id))]

    def volume_type(self, conn, volume_type_id):
        t = self.volume_types
        row = conn.execute(sa.select(t).where(t.c.volume_type_id == volume_type_id)).first()
        if row is None:
            raise NotFound("volume type %s not found" % volume_type_id)
        return _volume_type(row)

    def uptime(self, conn, start, end, project_id=None, now=None):
        """Seconds each instance ran in [start, end), per flavor: what a rating
        that bills from lifecycles reads instead of polled samples.

        :returns: [{"entity_id", "project_id", "flavor", "seconds": Decimal}],
            exact to the microsecond; a current version runs until ``now``.
        """
        t = self.entities
        query = sa.select(t).where(
            t.c.entity_type == "instance", t.c.power_state == "running", t.c.start < end, sa.or_(t.c.end.is_(None), t.c.end > start)
        )
        if project_id is not None:
            query = query.where(t.c.project_id == project_id)
        return running_seconds(conn.execute(query), start, end, now or utils.utcnow())

    def info(self, conn, version):
        t = self.entities
        total = conn.execute(sa.select(sa.func.count()).select_from(t)).scalar()
        active = conn.execute(sa.select(sa.func.count()).select_from(t).where(t.c.end.is_(None))).scalar()
        return {"info": {"version": version}, "database": {"all_entities": total, "active_entities": active}}

    def _shaped(self, conn, rows):
        rows = list(rows)
        ids = {r.volume_type for r in rows if r.volume_type}
        names = {}
        if ids:
            t = self.volume_types
            names = dict(conn.execute(sa.select(t.c.volume_type_id, t.c.volume_type_name).where(t.c.volume_type_id.in_(ids))).all())
        return [_entity(r, names) for r in rows]


def running_seconds(versions, start, end, now):
    """Pure: sum each (entity, flavor)'s overlap of running versions with [start, end)."""
    totals = {}
    for v in versions:
        until = min(v.end or now, end)
        begin = max(v.start, start)
        if until <= begin:
            continue
        key = (v.entity_id, v.project_id, v.flavor)
        delta = until - begin
        micros = (delta.days * 86400 + delta.seconds) * 1000000 + delta.microseconds
        totals[key] = totals.get(key, 0) + micros
    return [
        {"entity_id": e, "project_id": p, "flavor": f, "seconds": decimal.Decimal(micros).scaleb(-6)}
        for (e, p, f), micros in sorted(totals.items(), key=lambda item: (item[0][0], item[0][2] or ""))
    ]


def _stamp(value):
    """Almanach's serialisation: ``2016-11-24 21:15:35+00:00``."""
    return None if value is None else str(value.astimezone(UTC))


def _entity(row, type_names):
    shaped = {
        "entity_id": row.entity_id,
        "entity_type": row.entity_type,
        "project_id": row.project_id,
        "name": row.name,
        "start": _stamp(row.start),
        "end": _stamp(row.end),
        "last_event": _stamp(row.last_event),
        "version": row.version,
    }
    if row.entity_type == "instance":
        image_meta = row.image_meta or {}
        shaped.update(
            flavor=row.flavor,
            os={k: image_meta.get(k) for k in ("distro", "version", "os_type")},
            image_meta=image_meta,
            metadata=row._mapping["metadata"] or {},
            power_state=row.power_state,
        )
    else:
        shaped.update(volume_type=type_names.get(row.volume_type, row.volume_type), size=row.size, attached_to=row.attached_to or [])
    return shaped


def _volume_type(row):
    return {"volume_type_id": row.volume_type_id, "volume_type_name": row.volume_type_name}
