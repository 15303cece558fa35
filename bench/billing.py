"""Billing speed: a draft beside the plain SQL that yields the same lines, and a load run.

Usage (from the repository root)::

    .venv/bin/python bench/billing.py [--resources 100] [--hours 8760] [--repeat 5]
        [--clients 50] [--requests 2000] [--load-resources 10] [--load-hours 720] [--threads 16]

On a fresh PostgreSQL database (CREATE DATABASE mx_bench_<hex>, dropped at the end):

1. **Draft vs SQL.** One project with ``--hours`` hours of usage of
   ``--resources`` resources x 3 services (a year of 100 x 3 by default:
   2.6 M rated hours). ``--repeat`` rounds, each timing in turn (the order
   flipping every round) Billing.draft() for the whole period and the plain
   ``SELECT ... SUM(quantity), SUM(cost) ... GROUP BY`` over rated_usage that
   yields the same lines; the report prints the median times, the speed ratio
   (SQL time / draft time; goal >= 0.5) and checks both give the same sums.
2. **Load.** ``meter-export api`` (cheroot, ``--threads``) on 127.0.0.1 over the
   same database; ``--clients`` threads send ``--requests`` GET
   /v1/projects/<p>/draft in all, on a second project with ``--load-hours`` x
   ``--load-resources`` x 3 rated hours; p50/p99 latency and errors. Goal:
   p99 < 250 ms, 0 errors. The clients run on the same 2 cores as the server.
"""

import argparse
import concurrent.futures
import datetime
import decimal
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import requests
import sqlalchemy as sa

from meter_export.billing import operations
from meter_export.billing import periods
from meter_export.rating import pricelist
from meter_export.storage import engine as engine_mod
from meter_export.storage import migrate
from meter_export.storage import prices as prices_mod
from meter_export.storage import samples
from meter_export.storage import schema

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
EPOCH = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
SERVICES = (("m1.small", "hour", "0.048"), ("b1.standard", "gigabyte", "0.0005"), ("ip.floating", "hour", "0.005"))
TOKEN = "bench-admin-token"  # noqa: S105 (a throwaway static token)
BASELINE = """
SELECT resource_id, service, unit, unit_price, currency, SUM(quantity), SUM(cost)
FROM rated_usage WHERE project_id = :p AND period_start >= :s AND period_start < :e
GROUP BY resource_id, service, unit, unit_price, currency
"""


def _database():
    name = "mx_bench_" + uuid.uuid4().hex[:10]
    admin = sa.create_engine(engine_mod.dress_url(PG_ADMIN), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("CREATE DATABASE " + name))
    return admin, name, sa.engine.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)


def _schema(url):
    sink = samples.Sink(url)
    migrate.upgrade(sink)
    sink.close()
    return engine_mod.make_engine(url)


def _fill(engine, project, resources, hours):
    """Rating's usage rows and prices, so rated_usage is its real view."""
    tables = schema.make_metadata().tables
    prices_mod.load(engine, tables["prices"], [pricelist.Price(s, u, "unit", decimal.Decimal(p), "EUR", EPOCH) for s, u, p in SERVICES])
    end = EPOCH + datetime.timedelta(hours=hours)
    with engine.begin() as conn:
        for service, unit, _price in SERVICES:
            conn.execute(
                sa.text(
                    "INSERT INTO usage (service, resource_id, period_start, period_end, project_id, user_id, meter, unit, region, "
                    "quantity, resource_metadata, computed_at) SELECT :svc, :p || '-res-' || r, :t0 + h * interval '1 hour', "
                    ":t0 + (h + 1) * interval '1 hour', :p, 'u', :svc, :unit, '', (1 + r % 7)::numeric, '{}'::jsonb, now() "
                    "FROM generate_series(0, :r - 1) r, generate_series(0, :h - 1) h"
                ),
                dict(p=project, svc=service, unit=unit, t0=EPOCH, r=resources, h=hours),
            )
            mark = dict(source="s", filter_name="f", meter=service)
            conn.execute(tables["completeness"].delete().where(tables["completeness"].c.meter == service))
            conn.execute(tables["completeness"].insert().values(rated_checkpoint=end, final_until=end, updated_at=end, **mark))
        conn.exec_driver_sql("ANALYZE usage")


def _timed(call):
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def draft_vs_sql(engine, hours, repeat):
    end = EPOCH + datetime.timedelta(hours=hours)
    billing = operations.Billing(engine, clock=lambda: end)
    params = dict(p="bench", s=EPOCH, e=end)

    def sql():
        with engine.connect() as conn:
            return conn.execute(sa.text(BASELINE), params).all()

    times = {"draft": [], "sql": []}
    for i in range(repeat):
        turns = [("draft", lambda: billing.draft("bench", periods.iso(end))), ("sql", sql)]
        for name, call in turns if i % 2 == 0 else turns[::-1]:
            elapsed, result = _timed(call)
            times[name].append(elapsed)
            if name == "draft":
                draft = result[0]
            else:
                rows = result
    assert len(draft.lines) == len(rows), (len(draft.lines), len(rows))
    assert sum(r[6] for r in rows).quantize(draft.total) >= 0
    exact = {(r[0], r[1]): r[6] for r in rows}
    assert all(abs(line.cost - exact[(line.resource_id, line.service)]) <= 0.005 for line in draft.lines)
    d, s = statistics.median(times["draft"]), statistics.median(times["sql"])
    print("draft vs SQL, %d rated hours (%d lines), %d rounds:" % (len(rows) * hours, len(rows), repeat))
    print("  Billing.draft     median %.3f s   rounds %s" % (d, " ".join("%.3f" % t for t in times["draft"])))
    print("  SQL SUM GROUP BY  median %.3f s   rounds %s" % (s, " ".join("%.3f" % t for t in times["sql"])))
    print("  ratio (SQL time / draft time) %.2fx   goal >= 0.5x: %s" % (s / d, "met" if s / d >= 0.5 else "MISSED"))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load(url, clients, count, threads, tmpdir):
    port = _free_port()
    config = os.path.join(tmpdir, "bench.conf")
    with open(config, "w") as f:
        f.write(
            "[database]\nconnection = %s\n[api]\nport = %d\nthreads = %d\nauth_strategy = static\nadmin_tokens = %s\n"
            % (url, port, threads, TOKEN)
        )
    binary = os.path.join(os.path.dirname(sys.executable), "meter-export")
    server = subprocess.Popen([binary, "--config-file", config, "api"], stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_listening(port)
        endpoint = "http://127.0.0.1:%d/v1/projects/load/draft" % port
        sessions = {}

        def one(_):
            session = sessions.setdefault(threading_ident(), requests.Session())
            start = time.perf_counter()
            try:
                response = session.get(endpoint, headers={"X-Auth-Token": TOKEN}, timeout=30)
                ok = response.status_code == 200
            except requests.RequestException:
                ok = False
            return time.perf_counter() - start, ok

        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(one, range(count)))
        wall = time.perf_counter() - started
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    latencies = sorted(r[0] for r in results)
    errors = sum(1 for r in results if not r[1])
    p50, p99 = latencies[len(latencies) // 2], latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(
        "load: %d clients, %d requests GET draft, cheroot %d threads, %.1f s, %.0f req/s:" % (clients, count, threads, wall, count / wall)
    )
    print(
        "  p50 %.1f ms   p99 %.1f ms   max %.1f ms   errors %d   goal p99 < 250 ms, 0 errors: %s"
        % (p50 * 1000, p99 * 1000, latencies[-1] * 1000, errors, "met" if p99 < 0.25 and not errors else "MISSED")
    )


def threading_ident():
    import threading

    return threading.get_ident()


def _wait_listening(port, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("meter-export api did not listen on %d" % port)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resources", type=int, default=100)
    parser.add_argument("--hours", type=int, default=8760)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--load-resources", type=int, default=10)
    parser.add_argument("--load-hours", type=int, default=720)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args(argv)
    admin, name, url = _database()
    try:
        engine = _schema(url)
        print("PostgreSQL, %s, %s" % (datetime.date.today(), os.uname().nodename))
        _timed_fill = _timed(lambda: _fill(engine, "bench", args.resources, args.hours))[0]
        print("filled %d x %d x 3 rated hours in %.1f s" % (args.resources, args.hours, _timed_fill))
        draft_vs_sql(engine, args.hours, args.repeat)
        _fill(engine, "load", args.load_resources, args.load_hours)
        engine.dispose()
        with tempfile.TemporaryDirectory() as tmpdir:
            load(url, args.clients, args.requests, args.threads, tmpdir)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name))
        admin.dispose()


if __name__ == "__main__":
    main()
