"""Listener throughput: notifications/s into PostgreSQL beside a consumer that
only acknowledges them, through the same oslo.messaging listener, same run.

Usage (from the repository root, RabbitMQ and PostgreSQL running)::

    .venv/bin/python bench/listen.py [--notifications 4000] [--rounds 3]
        [--batch-size 100] [--threads 1] [--events-per-entity 4]

Each round publishes the same workload twice with oslo.messaging's Notifier
(each copy on its own exchange and topic, queue filled before the clock
starts), then drains one copy with the plain consumer and one with
meter-export's listener writing a fresh PostgreSQL database; the order flips
every round. The clock runs from the listener's start until the last
notification was handled (written and committed, or only seen). Nothing
lost is checked after every listener round: exactly the expected event rows,
entity versions and an empty queue.

Workload: --notifications / --events-per-entity instances, each created,
then powered off, powered on and resized (Nova's legacy payloads of
tests/notifications.py), the notifications of different instances mixed.
"""

import argparse
import os
import statistics
import sys
import threading
import time
import uuid

import oslo_messaging
import sqlalchemy as sa
from oslo_config import cfg

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from meter_export import service  # noqa: E402
from meter_export.listen import endpoint as endpoint_mod  # noqa: E402
from meter_export.listen import service as listen_service  # noqa: E402
from meter_export.storage import migrate  # noqa: E402
from meter_export.storage.samples import Sink  # noqa: E402
from tests import notifications as n  # noqa: E402
from tests.functional import rabbit  # noqa: E402

PG = "postgresql://postgres@127.0.0.1:5432/"
STEPS = (
    lambda iid: n.instance_create(iid, "2026-03-01T10:00:00"),
    lambda iid: n.instance_event("compute.instance.power_off.end", iid, "2026-03-01T11:00:00"),
    lambda iid: n.instance_event("compute.instance.power_on.end", iid, "2026-03-01T12:00:00"),
    lambda iid: n.instance_event("compute.instance.resize.confirm.end", iid, "2026-03-01T13:00:00", flavor="m1.large"),
)


def workload(count, per_entity):
    entities = [str(uuid.UUID(int=i + 1)) for i in range(count // per_entity)]
    # NOTE(bench): step by step across all instances, so one batch holds
    # many entities, as a busy cloud's notifications do.
    return [STEPS[step % len(STEPS)](iid) for step in range(per_entity) for iid in entities]


def publish(channel, steps):
    for event_type, payload, at in steps:
        channel.send(event_type, payload, n.context(at))


def fresh_database():
    name = "mx_bench_" + uuid.uuid4().hex[:10]
    admin = sa.create_engine(PG + "test", isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql("CREATE DATABASE " + name)
    admin.dispose()
    url = PG + name
    sink = Sink(url)
    migrate.upgrade(sink)
    sink.close()
    return url, name


def drop_database(name):
    admin = sa.create_engine(PG + "test", isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)
    admin.dispose()


def make_conf(channel, db_url, args):
    conf = cfg.ConfigOpts()
    service.register_opts(conf)
    conf([], project="mx-bench")
    overrides = dict(
        transport_url=channel.url,
        exchanges=[channel.exchange],
        topics=[channel.topic],
        pool="",
        batch_size=args.batch_size,
        batch_timeout=0.2,
        executor_threads=args.threads,
    )
    for key, value in overrides.items():
        conf.set_override(key, value, group="listen")
    conf.set_override("connection", db_url, group="database")
    return conf


class Counting:
    """Wraps an endpoint: counts the notifications it handled."""

    def __init__(self, inner, expected):
        self.inner, self.expected = inner, expected
        self.handled = 0
        self.done = threading.Event()
        self._lock = threading.Lock()

    def info(self, messages):
        result = self.inner.info(messages) if self.inner else oslo_messaging.NotificationResult.HANDLED
        if result == oslo_messaging.NotificationResult.HANDLED:
            with self._lock:
                self.handled += len(messages)
                if self.handled >= self.expected:
                    self.done.set()
        return result


def drain(channel, db_url, args, expected, store_it):
    conf = make_conf(channel, db_url, args)
    shutdown = threading.Event()
    holder = {}

    class Endpoint:
        def info(self, messages):
            return holder["counting"].info(messages)

    listener = listen_service.Listener(conf, shutdown, endpoint=Endpoint())
    inner = endpoint_mod.EntityEndpoint(listener.store, listen_service.policy(conf)) if store_it else None
    holder["counting"] = counting = Counting(inner, expected)
    started = time.perf_counter()
    listener.start()
    if not counting.done.wait(600):
        raise RuntimeError("only %d of %d notifications handled" % (counting.handled, expected))
    elapsed = time.perf_counter() - started
    listener.stop()
    return expected / elapsed


def check_nothing_lost(db_url, channel, entities, per_entity):
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        events = conn.exec_driver_sql("SELECT count(*) FROM entity_events").scalar()
        versions = conn.exec_driver_sql("SELECT count(*) FROM entities").scalar()
        open_ = conn.exec_driver_sql('SELECT count(*) FROM entities WHERE "end" IS NULL').scalar()
    engine.dispose()
    # create, off, on, resize: versions running, stopped, running, running(large)
    expected_versions = entities * min(per_entity, 4)
    if (events, versions, open_) != (entities * per_entity, expected_versions, entities) or channel.queue_depth() != 0:
        raise AssertionError(
            "lost or duplicated: %d events, %d versions, %d open, %d left on the queue" % (events, versions, open_, channel.queue_depth())
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notifications", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--events-per-entity", type=int, default=4, choices=[1, 2, 3, 4])
    args = parser.parse_args()
    steps = workload(args.notifications, args.events_per_entity)
    entities = len(steps) // args.events_per_entity
    print("workload: %d notifications, %d instances, batch %d, %d threads" % (len(steps), entities, args.batch_size, args.threads))
    rates = {"plain": [], "listen": []}
    for round_ in range(args.rounds):
        order = ("plain", "listen") if round_ % 2 == 0 else ("listen", "plain")
        for kind in order:
            channel = rabbit.Channel()
            url, name = fresh_database()
            try:
                publish(channel, steps)
                rate = drain(channel, url, args, len(steps), store_it=(kind == "listen"))
                if kind == "listen":
                    check_nothing_lost(url, channel, entities, args.events_per_entity)
                rates[kind].append(rate)
                print("round %d %-6s %8.0f notifications/s" % (round_ + 1, kind, rate), flush=True)
            finally:
                channel.close()
                drop_database(name)
    plain, listen = statistics.median(rates["plain"]), statistics.median(rates["listen"])
    print("median plain consumer (ack only): %8.0f notifications/s" % plain)
    print("median meter-export listen -> PG: %8.0f notifications/s" % listen)
    print("ratio listen / plain: %.2f (goal >= 0.5), nothing lost in %d rounds" % (listen / plain, args.rounds))


if __name__ == "__main__":
    main()
