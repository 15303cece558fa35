"""30-day catch-up from the real Ceilometer v2 API into PostgreSQL, beside a plain python-ceilometerclient read.

Usage (from the repository root; PostgreSQL from METER_EXPORT_TEST_PG_URL)::

    .venv/bin/python bench/e2e_ceilometer.py [--resources 100] [--days 3] [--repeat 3]

Starts the real Ceilometer 9.0.7 v2 API (tools/telemetry_stack, SQLite
storage, fresh workdir) and seeds it with seed_samples: ``--resources``
resources x 3 meters (cpu, memory, vcpus) x ``--days`` days of 5-minute
samples placed inside the last 30 days (ending 10 days ago; 100 resources x
3 days: 259,200 samples). Then ``--repeat`` rounds, the order of the sides
alternating between rounds, both reading [now - 30 days, now - settle):

- baseline: the plain python-ceilometerclient read of the same samples, no
  database: one ``client.new_samples.list(q=[meter eq M, timestamp ge start,
  timestamp lt end], limit=<more than there are>)`` per meter (GET
  /v2/samples). The client is built (session with keystoneauth's noauth
  plugin) before the clock starts.
- meter-export: ``meter-export --config-file F run --once`` in this process
  (cli.main), auth_type none + endpoint, every option at its default except
  ``[sync] initial_start = -P30D``, into a fresh PostgreSQL database made by
  ``dbsync`` before the clock starts; only the run is timed, client set-up
  included. The requests of each stream come from its log line.

Figures are samples/s, median of the rounds, and the ratio meter-export /
baseline.
"""

import argparse
import datetime
import functools
import logging
import os
import shutil
import sys
import tempfile
import time

import e2e_common as common
from ceilometerclient.v2 import client as ceilometer_client
from e2e_common import say
from keystoneauth1 import noauth
from keystoneauth1 import session as ks_session
from telemetry_stack import ceilometer
from telemetry_stack import venvs

METERS = {"cpu": ("cumulative", "ns"), "memory": ("gauge", "MB"), "vcpus": ("gauge", "vcpu")}
PROJECT = "bench-project"


def seed(server, resources, start, days):
    samples = []
    for i in range(288 * days):
        ts = start + datetime.timedelta(minutes=5 * i)
        for r in range(resources):
            for meter, (kind, unit) in METERS.items():
                samples.append(
                    ceilometer.meter_message(
                        meter,
                        ts,
                        float(i * r % 997),
                        resource_id="instance-%04d" % r,
                        project_id=PROJECT,
                        user_id="user-%02d" % (r % 7),
                        counter_type=kind,
                        unit=unit,
                        metadata={"display_name": "vm-%04d" % r, "flavor": {"name": "m1.small", "vcpus": 1}},
                    )
                )
    watch = time.perf_counter()
    inserted = server.seed(samples)
    say(
        "seeded %d samples (%d resources x %d meters x %d) from %s in %.1fs"
        % (inserted, resources, len(METERS), 288 * days, start, time.perf_counter() - watch)
    )
    return inserted


class NoProbeClient(ceilometer_client.Client):
    # The stock client also GETs / on the alarming and event endpoints at
    # construction; with a fixed endpoint both would hit Ceilometer itself.
    @staticmethod
    def _get_redirect_client(*args, **kwargs):
        return None


def read_span():
    """What a first pass with initial_start = -P30D reads, naive UTC."""
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    return now - datetime.timedelta(days=30), now - datetime.timedelta(seconds=600)


def baseline(endpoint, limit):
    start, end = read_span()
    client = NoProbeClient(session=ks_session.Session(auth=noauth.NoAuth(endpoint=endpoint)))
    watch = time.perf_counter()
    count = 0
    for meter in METERS:
        q = [
            {"field": "meter", "op": "eq", "value": meter},
            {"field": "timestamp", "op": "ge", "value": start.isoformat()},
            {"field": "timestamp", "op": "lt", "value": end.isoformat()},
        ]
        count += len(client.new_samples.list(q=q, limit=limit))
    return count, time.perf_counter() - watch, len(METERS)


def meter_export(endpoint, workdir, threads=None, page_size=None):
    """run --once into a fresh database: (rows, seconds, requests); ``threads``
    and ``page_size`` set [sync] stream_threads and [ceilometer] page_size."""
    sync = {"initial_start": "-P30D"}
    if threads:
        sync["stream_threads"] = threads
    extra = "[ceilometer]\npage_size = %d\n" % page_size if page_size else ""
    db = common.Database()
    try:
        filters = "filters:\n  - name: bench\n    query: {project_id: %s}\n    meters: [%s]\n" % (PROJECT, ", ".join(METERS))
        config = common.write_config(
            workdir,
            db.url,
            "driver = ceilometer",
            {"auth_type": "none", "endpoint": endpoint},
            filters,
            sync=sync,
            extra=extra,
        )
        code, _ = common.in_process(config, "dbsync")
        assert code == 0
        lines = common.StreamLines()
        logging.getLogger("meter_export.sync").addHandler(lines)
        try:
            code, seconds = common.in_process(config, "run", "--once")
        finally:
            logging.getLogger("meter_export.sync").removeHandler(lines)
        if code:
            raise RuntimeError("run --once exited %d" % code)
        return db.count(), seconds, lines.requests()
    finally:
        db.drop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resources", type=int, default=100)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--compare-threads", type=int, action="append", default=[], help="also time this [sync] stream_threads")
    parser.add_argument("--compare-page-size", type=int, action="append", default=[], help="also time this [ceilometer] page_size")
    args = parser.parse_args()
    common.header("e2e_ceilometer: real Ceilometer v2 API -> meter-export -> PostgreSQL vs plain python-ceilometerclient read")
    say("subprocess start-up of meter-export (imports), not counted below: %.2fs" % common.startup_seconds())
    venvs.ensure("ceilometer")
    workdir = tempfile.mkdtemp(prefix="mx-bench-ceilometer-")
    server = ceilometer.CeilometerServer(os.path.join(workdir, "ceilometer"))
    server.start()
    try:
        # Naive UTC, as the v2 API stores and compares timestamps.
        end = datetime.datetime.now(datetime.UTC).replace(minute=0, second=0, microsecond=0, tzinfo=None) - datetime.timedelta(days=10)
        total = seed(server, args.resources, end - datetime.timedelta(days=args.days), args.days)
        sides = {
            "baseline: new_samples.list per meter": lambda: baseline(server.endpoint, total + 1),
            "meter-export run --once (defaults)": lambda: meter_export(server.endpoint, workdir),
        }
        for threads in args.compare_threads:
            sides["meter-export, stream_threads = %d" % threads] = functools.partial(meter_export, server.endpoint, workdir, threads)
        for size in args.compare_page_size:
            sides["meter-export, page_size = %d" % size] = functools.partial(meter_export, server.endpoint, workdir, page_size=size)
        times, counts, requests = common.interleaved(sides, args.repeat)
        say("%d samples, median of %d rounds:" % (total, args.repeat))
        base = total / common.median(times["baseline: new_samples.list per meter"])
        for name, t in times.items():
            rate = counts[name] / common.median(t)
            sent = requests[name] if isinstance(requests[name], int) else sum(requests[name].values())
            say("  %-42s %7.2fs %8.0f samples/s  x%.2f of the baseline, %d requests" % (name, common.median(t), rate, rate / base, sent))
            if counts[name] != total:
                say("  WARNING: %s read %d samples, %d were seeded" % (name, counts[name], total))
        say("  meter-export requests per stream: %s" % common.per_stream(requests["meter-export run --once (defaults)"]))
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    say("load average at end: %s" % common.loadavg())


if __name__ == "__main__":
    sys.exit(main())
