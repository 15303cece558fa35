"""Checkpoints: how far each stream is complete, and the windows still to read.

The checkpoint of a stream is the end bound of the last window written, never
a timestamp taken from the data, and it never moves backwards. It is advanced
by the sink in the same transaction as the window's last batch.
"""

import datetime
import math

import sqlalchemy as sa


def span(checkpoint, now, initial_start, lookback, settle):
    """[checkpoint - lookback, now - settle): what a pass has to read.

    Pure: all datetimes aware UTC, durations in seconds.
    """
    start = (checkpoint or initial_start) - datetime.timedelta(seconds=lookback)
    return start, now - datetime.timedelta(seconds=settle)


def tiles(start, end, max_window):
    """Half-open windows of ``max_window`` seconds tiling [start, end)."""
    step = datetime.timedelta(seconds=max_window)
    result = []
    while start < end:
        result.append((start, min(start + step, end)))
        start += step
    return result


def plan(start, end, max_window, census=None, window_samples=None):
    """Half-open windows tiling [start, end), sized by the work they hold.

    Without a census (the source cannot count ahead) the windows are
    ``max_window`` long. With one, a window ends where it would hold more than
    ``window_samples`` by the census counts; a bucket fuller than that is cut
    into equal parts. Spans the census shows empty join their neighbours, so
    a long span without data is one window, or a few of ``max_window``, which
    stays an upper bound on every window's length.

    NOTE(sync): the window is what a crash reads again and what the
    checkpoint moves by; memory is bounded by the source's page, not by it.
    """
    if census is None or not window_samples:
        return tiles(start, end, max_window)
    cuts, held = [start], 0
    for part_start, _, count in _parts(census.buckets, start, end, window_samples):
        if held and held + count > window_samples and part_start > cuts[-1]:
            cuts.append(part_start)
            held = 0
        held += count
    cuts.append(end)
    return [window for a, b in zip(cuts, cuts[1:], strict=False) for window in tiles(a, b, max_window)]


def _parts(buckets, start, end, most):
    """The buckets clipped to [start, end), each cut into parts of <= most."""
    for b_start, b_end, count in buckets:
        b_start, b_end = max(b_start, start), min(b_end, end)
        if b_end <= b_start or count <= 0:
            continue
        pieces = max(1, math.ceil(count / most))
        step = (b_end - b_start) / pieces
        for i in range(pieces):
            yield b_start + step * i, (b_end if i == pieces - 1 else b_start + step * (i + 1)), count / pieces


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
