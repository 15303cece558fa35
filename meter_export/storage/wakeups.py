"""Asking the running worker for a pass now (POST /collect_usage).

The API and the worker share only the database, perhaps not a host: the
request is a timestamp in one row, which each worker compares with the start
of its last pass while it sleeps between passes.
"""

import time

import sqlalchemy as sa

from meter_export.storage import dialects
from meter_export.storage import schema

REQUESTS = schema.make_metadata().tables["pass_requests"]
SYNC = "sync"


def request_pass(engine, now, name=SYNC):
    rules = dialects.rules(engine.dialect)
    with engine.begin() as conn:
        conn.execute(rules.upsert(rules.insert(REQUESTS).values(name=name, requested_at=now), ["name"], ["requested_at"]))


def requested_at(engine, name=SYNC):
    with engine.connect() as conn:
        return conn.execute(sa.select(REQUESTS.c.requested_at).where(REQUESTS.c.name == name)).scalar()


def wait(engine, event, timeout, since, poll, clock=time.monotonic):
    """Sleep up to ``timeout`` s on ``event``; return early once a pass was requested after ``since``.

    :returns: True when woken by a request.
    """
    deadline = clock() + timeout
    while not event.is_set():
        left = deadline - clock()
        if left <= 0:
            return False
        event.wait(min(poll, left))
        try:
            requested = requested_at(engine)
        except sa.exc.SQLAlchemyError:
            continue  # NOTE(api): the database away is the pass's problem, not the nap's
        if requested is not None and requested > since:
            return True
    return False
