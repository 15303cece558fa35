"""The usage family: reading rated usage, and the completeness marks.

``read_rated`` is the one entry point for code that bills (sales orders,
reports): it reads the ``rated_usage`` view and gives exact Decimals on every
database. The rater (rating/rater.py) writes the usage rows.
"""

import dataclasses
import datetime
import decimal

import sqlalchemy as sa

from meter_export import utils
from meter_export.storage import dialects
from meter_export.storage import views


@dataclasses.dataclass(frozen=True)
class RatedUsage:
    """One row of the rated_usage view (columns in views.RATED_USAGE_COLUMNS)."""

    project_id: str
    user_id: str
    resource_id: str
    service: str
    unit: str
    period_start: datetime.datetime
    period_end: datetime.datetime
    quantity: decimal.Decimal
    unit_price: decimal.Decimal
    cost: decimal.Decimal
    currency: str
    final: bool


def rated_usage_query(metadata, start, end, project_id=None, final_only=False):
    """The rated_usage rows of hours starting in [start, end), as a select."""
    view = views.rated_usage(metadata.tables).subquery("rated_usage")
    query = sa.select(view).where(view.c.period_start >= start, view.c.period_start < end)
    if project_id is not None:
        query = query.where(view.c.project_id == project_id)
    if final_only:
        query = query.where(view.c.final == 1)
    return query.order_by(view.c.project_id, view.c.period_start, view.c.service, view.c.resource_id)


def read_rated(conn, metadata, start, end, project_id=None, final_only=False):
    """RatedUsage of the hours starting in [start, end), exact on every database.

    NOTE(rating): where SQL arithmetic is not exact (SQLite), the cost is
    quantity x unit_price computed here from the exact stored texts.
    """
    exact = dialects.rules(conn.dialect).exact_arithmetic
    result = []
    for row in conn.execute(rated_usage_query(metadata, start, end, project_id, final_only)):
        values = row._asdict()
        values["final"] = bool(values["final"])
        if not exact or not isinstance(values["cost"], decimal.Decimal):
            values["cost"] = values["quantity"] * values["unit_price"]
        result.append(RatedUsage(**values))
    return result


def marks(conn, table):
    """{stream key: completeness row} of every stream rating has caught up with."""
    return {(r.source, r.filter_name, r.meter): r for r in conn.execute(sa.select(table))}


def write_marks(conn, table, checkpoints, lookback, keep):
    """Record what rating caught up with; final_until never moves back.

    :param checkpoints: {stream key: checkpoint read before rating}
    :param keep: stream keys still configured; other marks are deleted.
    """
    now, old = utils.utcnow(), marks(conn, table)
    for key, checkpoint in checkpoints.items():
        final = checkpoint - datetime.timedelta(seconds=lookback)
        if key in old:
            final = max(final, old[key].final_until)
        conn.execute(table.delete().where(_stream(table, key)))
        row = dict(source=key[0], filter_name=key[1], meter=key[2], rated_checkpoint=checkpoint, final_until=final, updated_at=now)
        conn.execute(table.insert().values(**row))
    for key in set(old) - set(keep):
        conn.execute(table.delete().where(_stream(table, key)))


def _stream(table, key):
    return sa.and_(table.c.source == key[0], table.c.filter_name == key[1], table.c.meter == key[2])
