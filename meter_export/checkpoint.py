"""Checkpoints: how far each stream is complete, and the windows still to read.

The checkpoint of a stream is the end bound of the last window written, never
a timestamp taken from the data, and it never moves backwards. It is advanced
by the sink in the same transaction as the window's last batch.
"""

import datetime

import sqlalchemy as sa


def windows(checkpoint, now, initial_start, lookback, settle, max_window):
    """Half-open windows tiling [checkpoint - lookback, now - settle).

    Pure: all datetimes aware UTC, durations in seconds.
    """
    start = (checkpoint or initial_start) - datetime.timedelta(seconds=lookback)
    end = now - datetime.timedelta(seconds=settle)
    step = datetime.timedelta(seconds=max_window)
    result = []
    while start < end:
        result.append((start, min(start + step, end)))
        start += step
    return result


def _where(table, scope, key):
    source, filter_name, meter = key
    return sa.and_(table.c.scope == scope, table.c.source == source, table.c.filter_name == filter_name, table.c.meter == meter)


def get(conn, table, scope, key):
    """The bound up to which the stream is complete, or None."""
    return conn.execute(sa.select(table.c.complete_until).where(_where(table, scope, key))).scalar()


def advance(conn, table, scope, key, until, now):
    """Move the checkpoint forward to ``until``; never backwards."""
    current = conn.execute(sa.select(table.c.complete_until).where(_where(table, scope, key)).with_for_update()).scalar()
    if current is None:
        source, filter_name, meter = key
        conn.execute(
            table.insert().values(scope=scope, source=source, filter_name=filter_name, meter=meter, complete_until=until, updated_at=now)
        )
    elif until > current:
        conn.execute(table.update().where(_where(table, scope, key)).values(complete_until=until, updated_at=now))


def all_rows(conn, table, scope=None):
    query = sa.select(table)
    if scope is not None:
        query = query.where(table.c.scope == scope)
    return [row._asdict() for row in conn.execute(query.order_by(table.c.source, table.c.filter_name, table.c.meter))]


def delete_scope(conn, table, scope):
    conn.execute(table.delete().where(table.c.scope == scope))
