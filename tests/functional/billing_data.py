"""Rated usage and completeness marks for the billing tests, through rating's tables.

Usage rows go into rating's ``usage`` table and their prices through its
price list (storage/prices.py), so ``rated_usage`` is rating's real view:
its cost is quantity x the price in force, and an hour is final when every
stream of its meter is final past its end (the ``completeness`` marks).
"""

import datetime
from decimal import Decimal as D

import sqlalchemy as sa

from meter_export.billing import operations
from meter_export.rating import pricelist
from meter_export.storage import engine as engine_mod
from meter_export.storage import migrate
from meter_export.storage import prices as prices_mod
from meter_export.storage import samples
from meter_export.storage import schema

UTC = datetime.UTC
H = datetime.timedelta(hours=1)
T0 = datetime.datetime(2026, 10, 1, tzinfo=UTC)
NOW = datetime.datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
TABLES = schema.make_metadata().tables
PRICE_FROM = datetime.datetime(2026, 1, 1, tzinfo=UTC)


def prepare(url, **engine_kwargs):
    """A migrated database (rating's view included); returns an engine."""
    sink = samples.Sink(url)
    try:
        migrate.upgrade(sink)
    finally:
        sink.close()
    return engine_mod.make_engine(url, **engine_kwargs)


def hours(project, resource, service, start, count, quantity="1", price="0.048", currency="EUR", final=None):
    """``count`` consecutive hours of usage from ``start``, priced ``price`` per unit.

    ``final`` is not stored: the completeness marks decide (see mark_final).
    """
    del final
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
            price=D(price),
            currency=currency,
        )
        for i in range(count)
    ]


def _ensure_price(engine, service, unit, price, currency):
    wanted = pricelist.Price(service, unit, "unit", price, currency, PRICE_FROM)
    prices_mod.load(engine, TABLES["prices"], [wanted])


def add(engine, rows):
    usage, completeness = TABLES["usage"], TABLES["completeness"]
    for key in sorted({(r["service"], r["unit"], r["price"], r["currency"]) for r in rows}):
        _ensure_price(engine, *key)
    now = datetime.datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            usage.insert(),
            [
                dict(
                    {k: v for k, v in r.items() if k not in ("price", "currency")},
                    meter=r["service"],
                    region="",
                    resource_metadata={},
                    computed_at=now,
                )
                for r in rows
            ],
        )
        mark = conn.execute(sa.select(sa.func.min(completeness.c.final_until))).scalar()
    if mark is not None:
        mark_final(engine, mark)


def mark_final(engine, until):
    """Every stream final (and its live checkpoint complete) up to ``until``."""
    checkpoints, completeness, usage = TABLES["checkpoints"], TABLES["completeness"], TABLES["usage"]
    with engine.begin() as conn:
        meters = [m for (m,) in conn.execute(sa.select(usage.c.meter).distinct())] or ["m"]
        conn.execute(checkpoints.delete())
        conn.execute(completeness.delete())
        for meter in meters:
            key = dict(source="s", filter_name="f", meter=meter)
            conn.execute(checkpoints.insert().values(scope=schema.LIVE_SCOPE, complete_until=until, updated_at=until, **key))
            conn.execute(completeness.insert().values(rated_checkpoint=until, final_until=until, updated_at=until, **key))


def billing(engine, now=NOW, currency="EUR"):
    return operations.Billing(engine, currency=currency, clock=lambda: now)
