"""The prices family: the effective-dated price list in the database."""

import sqlalchemy as sa

from meter_export import utils
from meter_export.rating import pricelist

_FIELDS = ("service", "unit", "per", "price", "currency", "valid_from", "valid_to", "region")


def all_prices(conn, table):
    rows = conn.execute(sa.select(table).order_by(table.c.service, table.c.region, table.c.valid_from))
    return [pricelist.Price(**{f: getattr(r, f) for f in _FIELDS}) for r in rows]


def load(engine, table, loaded):
    """Merge ``loaded`` into the list in one transaction; nothing is written on an overlap.

    :returns: (written, unchanged)
    :raises pricelist.PricesError: an overlap, naming both prices.
    """
    with engine.begin() as conn:
        # NOTE(rating): concurrent loads queue on this lock (SQLite locks the file).
        list(conn.execute(sa.select(table.c.service).with_for_update()))
        changed, unchanged = pricelist.merge(all_prices(conn, table), loaded)
        now = utils.utcnow()
        for p in changed:
            key = (table.c.service == p.service) & (table.c.region == p.region) & (table.c.valid_from == p.valid_from)
            conn.execute(table.delete().where(key))
            conn.execute(table.insert().values(loaded_at=now, **{f: getattr(p, f) for f in _FIELDS}))
    return len(changed), unchanged
