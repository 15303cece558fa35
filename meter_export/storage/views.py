"""The SQL views BI tools read; README.rst documents their columns.

Each view is a SQLAlchemy select compiled for the connection's dialect, so a
dialect difference (string concatenation, booleans, quoting) is SQLAlchemy's
or storage/dialects.py's, never a second copy of the SQL here.

- ``stream_completeness``: per stream, up to when its samples are final;
- ``rated_usage``: usage with its price in force, its exact cost and whether
  the hour is final (sales orders bill final hours only);
- ``unrated_usage``: usage with no price in force; it is never free.
"""

import sqlalchemy as sa

from meter_export.storage import schema

# NOTE(rating): sales orders (issue 10) read these columns by name, in this order.
RATED_USAGE_COLUMNS = (
    "project_id",
    "user_id",
    "resource_id",
    "service",
    "unit",
    "period_start",
    "period_end",
    "quantity",
    "unit_price",
    "cost",
    "currency",
    "final",
)


def _price_in_force(usage, prices):
    return sa.and_(
        prices.c.service == usage.c.service,
        prices.c.unit == usage.c.unit,
        sa.or_(prices.c.region == "", prices.c.region == usage.c.region),
        prices.c.valid_from <= usage.c.period_start,
        sa.or_(prices.c.valid_to.is_(None), usage.c.period_start < prices.c.valid_to),
    )


def _final(usage, completeness):
    """1 when every stream of the usage's meter is final past its end, else 0."""
    streams = sa.select(sa.literal(1)).where(completeness.c.meter == usage.c.meter)
    behind = streams.where(completeness.c.final_until < usage.c.period_end)
    return sa.case((sa.and_(streams.exists(), ~behind.exists()), 1), else_=0)


def rated_usage(tables):
    usage, prices = tables["usage"], tables["prices"]
    columns = [usage.c[name] for name in RATED_USAGE_COLUMNS[:8]] + [
        prices.c.price.label("unit_price"),
        (usage.c.quantity * prices.c.price).label("cost"),
        prices.c.currency,
        _final(usage, tables["completeness"]).label("final"),
    ]
    return sa.select(*columns).select_from(usage.join(prices, _price_in_force(usage, prices)))


def unrated_usage(tables):
    usage, prices = tables["usage"], tables["prices"]
    names = ("project_id", "user_id", "resource_id", "service", "unit", "region", "period_start", "period_end", "quantity")
    priced = sa.select(sa.literal(1)).where(_price_in_force(usage, prices))
    return sa.select(*[usage.c[n] for n in names]).where(~priced.exists())


def stream_completeness(tables):
    marks, checkpoints = tables["completeness"], tables["checkpoints"]
    live = sa.and_(
        checkpoints.c.scope == schema.LIVE_SCOPE,
        checkpoints.c.source == marks.c.source,
        checkpoints.c.filter_name == marks.c.filter_name,
        checkpoints.c.meter == marks.c.meter,
    )
    return sa.select(
        marks.c.source, marks.c.filter_name, marks.c.meter, checkpoints.c.complete_until, marks.c.final_until, marks.c.updated_at
    ).select_from(marks.outerjoin(checkpoints, live))


VIEWS = {"stream_completeness": stream_completeness, "rated_usage": rated_usage, "unrated_usage": unrated_usage}


def create(conn, metadata, names=tuple(VIEWS)):
    """(Re)create the named views with their newest definitions.

    Called by dbsync on an empty database and by the migrations that add or
    change a view.
    """
    for name in names:
        query = VIEWS[name](metadata.tables)
        sql = query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
        conn.exec_driver_sql("DROP VIEW IF EXISTS %s" % name)
        conn.exec_driver_sql("CREATE VIEW %s AS %s" % (name, sql))


def drop(conn, names=tuple(VIEWS)):
    for name in names:
        conn.exec_driver_sql("DROP VIEW IF EXISTS %s" % name)
