"""The set-based transformers: one INSERT ... SELECT per mapping and hour.

Every statement reads the samples of one meter in ``[start - carry, end)``,
numbers each resource's samples newest first (the newest gives project,
user and metadata, as in Distil) and, for ``delta``, pairs each with its
predecessor; then groups by resource. The rounding to the usage scale and
every other dialect difference come from storage/dialects.py.
"""

import sqlalchemy as sa

from meter_export.rating import transformers
from meter_export.storage import dialects
from meter_export.storage import schema
from meter_export.storage.types import TimestampUTC


def _volume(samples, mapping, rules):
    if mapping.volume is None:
        return rules.exact_value(samples.c.counter_volume)
    return sa.cast(sa.literal(str(mapping.volume)), sa.Numeric(38, transformers.SCALE))


def _window(samples, mapping, rules, start, end, carry):
    v = _volume(samples, mapping, rules)
    newest_first = (samples.c.timestamp.desc(), samples.c.message_id.desc())
    columns = [
        samples.c.resource_id,
        samples.c.project_id,
        samples.c.user_id,
        samples.c.timestamp,
        v.label("v"),
        sa.func.row_number().over(partition_by=samples.c.resource_id, order_by=newest_first).label("rn"),
    ]
    # NOTE(rating): the fields are extracted here so that the sort carries
    # short texts and not every sample's whole metadata document.
    for i, field in enumerate(mapping.metadata):
        found = sa.func.coalesce(*[rules.json_text(samples.c.resource_metadata, key) for key in field.sources], None)
        # NOTE(rating): a bounded text keeps MariaDB's temporary tables in
        # memory (a TEXT column sends them to disk: twice as slow).
        columns.append(sa.cast(found, sa.String(schema.NAME_LENGTH)).label("f%d" % i))
    if mapping.transformer == "delta":
        order = (samples.c.timestamp, samples.c.message_id)
        columns.append(sa.func.lag(v).over(partition_by=samples.c.resource_id, order_by=order).label("prev"))
    low = start - carry if mapping.transformer in transformers.NEEDS_CARRIED else start
    where = sa.and_(samples.c.counter_name == mapping.meter, samples.c.timestamp >= low, samples.c.timestamp < end)
    return sa.select(*columns).where(where).subquery("w")


def _quantity(w, name):
    v = w.c.v
    if name == "last":
        return sa.func.max(sa.case((w.c.rn == 1, v)))
    if name == "numbool":
        return sa.func.max(sa.case((v > 0, 1), else_=0))
    if name == "delta":
        return sa.func.sum(sa.case((w.c.prev.is_(None), 0), (v >= w.c.prev, v - w.c.prev), else_=v))
    return {"max": sa.func.max, "min": sa.func.min, "sum": sa.func.sum, "mean": sa.func.avg}[name](v)


def _text(value):
    return sa.cast(sa.literal(value), sa.String())


def _templated(expression, template):
    if not template:
        return expression
    prefix, suffix = template.split("%s")
    return _text(prefix) + expression + _text(suffix)


def _newest(w, expression):
    return sa.func.max(sa.case((w.c.rn == 1, expression)))


def _metadata(w, mapping, rules):
    pairs = [_text("type"), _text(mapping.type)]
    for i, field in enumerate(mapping.metadata):
        pairs += [_text(field.name), _newest(w, _templated(w.c["f%d" % i], field.template))]
    return getattr(sa.func, rules.json_object)(*pairs)


def insert_hour(usage, samples, mapping, dialect, start, end, carry, region, now):
    """The INSERT ... SELECT rating ``mapping`` for the hour [start, end)."""
    rules = dialects.rules(dialect)
    w = _window(samples, mapping, rules, start, end, carry)
    resource = _templated(w.c.resource_id, mapping.res_id_template)
    select = (
        sa.select(
            sa.literal(mapping.service, sa.String()).label("service"),
            resource.label("resource_id"),
            sa.literal(start, TimestampUTC()).label("period_start"),
            sa.literal(end, TimestampUTC()).label("period_end"),
            _newest(w, w.c.project_id).label("project_id"),
            _newest(w, w.c.user_id).label("user_id"),
            sa.literal(mapping.meter, sa.String()).label("meter"),
            sa.literal(mapping.unit, sa.String()).label("unit"),
            sa.literal(region, sa.String()).label("region"),
            rules.rounded(_quantity(w, mapping.transformer), transformers.SCALE).label("quantity"),
            _metadata(w, mapping, rules).label("resource_metadata"),
            sa.literal(now, TimestampUTC()).label("computed_at"),
        )
        .where(w.c.timestamp >= start)
        .group_by(w.c.resource_id)
    )
    names = [c.name for c in select.selected_columns]
    return usage.insert().from_select(names, select)
