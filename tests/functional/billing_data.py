"""Rated usage and completeness marks for the billing tests.

NOTE(billing): until rating (issue 9) is on main, ``rated_usage`` here is a
plain table with the view's columns, a temporary stand-in.
"""

import datetime
from decimal import Decimal as D

import sqlalchemy as sa

from meter_export.billing import operations
from meter_export.billing import usage
from meter_export.storage import engine as engine_mod
from meter_export.storage import migrate
from meter_export.storage import samples
from meter_export.storage import schema
from meter_export.storage.types import ExactDecimal
from meter_export.storage.types import TimestampUTC

UTC = datetime.UTC
H = datetime.timedelta(hours=1)
T0 = datetime.datetime(2026, 10, 1, tzinfo=UTC)
NOW = datetime.datetime(2026, 11, 20, 15, 30, tzinfo=UTC)

_STAND_IN = sa.MetaData()
RATED = sa.Table(
    "rated_usage",
    _STAND_IN,
    sa.Column("project_id", sa.String(255)),
    sa.Column("user_id", sa.String(255)),
    sa.Column("resource_id", sa.String(255)),
    sa.Column("service", sa.String(255)),
    sa.Column("unit", sa.String(255)),
    sa.Column("period_start", TimestampUTC()),
    sa.Column("period_end", TimestampUTC()),
    sa.Column("quantity", ExactDecimal(30, 10)),
    sa.Column("unit_price", ExactDecimal(30, 12)),
    sa.Column("cost", ExactDecimal(30, 10)),
    sa.Column("currency", sa.String(3)),
    sa.Column("final", sa.Boolean()),
)
sa.Index("ix_rated_usage_project_start", RATED.c.project_id, RATED.c.period_start)


def prepare(url, **engine_kwargs):
    """A migrated database with the stand-in rated_usage; returns an engine."""
    sink = samples.Sink(url)
    try:
        migrate.upgrade(sink)
    finally:
        sink.close()
    engine = engine_mod.make_engine(url, **engine_kwargs)
    _STAND_IN.create_all(engine)
    return engine


def hours(project, resource, service, start, count, quantity="1", price="0.048", currency="EUR", final=True):
    """``count`` consecutive rated hours from ``start``; cost = quantity x price, exact."""
    return [
        dict(
            project_id=project,
            user_id="u",
            resource_id=resource,
            service=service,
            unit="hour",
            period_start=start + i * H,
            period_end=start + (i + 1) * H,
            quantity=D(quantity),
            unit_price=D(price),
            cost=D(quantity) * D(price),
            currency=currency,
            final=final,
        )
        for i in range(count)
    ]


def add(engine, rows):
    with engine.begin() as conn:
        conn.execute(RATED.insert(), rows)


def mark_final(engine, until):
    """Every live stream complete up to ``until`` (the completeness mark)."""
    table = schema.make_metadata().tables["checkpoints"]
    with engine.begin() as conn:
        conn.execute(table.delete())
        conn.execute(
            table.insert().values(scope=schema.LIVE_SCOPE, source="s", filter_name="f", meter="m", complete_until=until, updated_at=until)
        )


def billing(engine, now=NOW, currency="EUR"):
    return operations.Billing(engine, currency=currency, clock=lambda: now)


assert usage.RATED.name == RATED.name
