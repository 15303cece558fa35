"""Catch-up and steady state from a real Gnocchi into PostgreSQL or SQLite, beside plain gnocchiclient reads.

Usage (from the repository root; PostgreSQL from METER_EXPORT_TEST_PG_URL)::

    .venv/bin/python bench/e2e_gnocchi.py [--resources 200] [--empty 50] [--days 3] [--meters 3]
        [--db postgresql] [--repeat 2] [--rss] [--steady-resources 1000] [--skip-steady] [--reads-only]

The set of issue 8's "Why" (48 instances x 4 meters x 36 hours, into SQLite)::

    .venv/bin/python bench/e2e_gnocchi.py --resources 48 --empty 0 --days 1.5 --meters 4 --db sqlite --skip-steady

Starts a real Gnocchi 4.7.1 (tools/telemetry_stack, fresh workdir and
indexer DB) and runs, with meter-export's DEFAULT options except
``[sync] initial_start = -P30D``:

catch-up
    One project of ``--resources`` instances x ``--meters`` meters (cpu,
    memory, vcpus, then disk.root.size) x ``--days`` days of 5-minute
    points placed inside the last 30 days
    (ending 10 days ago), plus ``--empty`` instances whose metrics hold no
    point at all. ``--repeat`` rounds, the order of the sides alternating:

    - baseline "4 threads, GET per metric": what a person would write with
      gnocchiclient, no database: one resource search, then
      ``client.metric.get_measures(id, start, stop, granularity=300)`` for
      every metric of the project's instances, 4 threads;
    - baseline "one aggregates read": the best single request,
      ``client.aggregates.fetch("(metric (cpu mean) (memory mean) (vcpus
      mean))", resource_type, search, start, stop, granularity=300)``;
    - meter-export: ``run --once`` in this process (cli.main) into a fresh
      PostgreSQL database (or, with ``--db sqlite``, a fresh SQLite file)
      made by ``dbsync`` before the clock starts; the
      requests of each stream are taken from its log line;
    - with ``--reads-only``, meter-export's read path alone: the census, the
      planned windows and ``fetch`` of every stream, as many at once as a
      pass runs, nothing mapped to rows or written (the read's share of the
      catch-up, on a host that runs the database too).

    All three read [now - 30 days, now - settle). With ``--rss``, ``run
    --once`` also runs as a child process on this set and on a second
    project with twice the days, and its peak RSS (psutil) is printed.

steady state
    ``--steady-resources`` instances x 3 meters with one hour of points
    ending at now - settle, on a database whose checkpoints stand at the
    start of that hour (as a previous pass left them): the seconds and
    requests of one ``run --once`` (the new hour, plus the lookback), then of
    an idle pass on the catch-up set (nothing new behind its checkpoints).

Figures are samples/s, median of the rounds, the ratio meter-export /
baseline, and requests per stream.
"""

import argparse
import concurrent.futures
import contextlib
import datetime
import functools
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import e2e_common as common
import psutil
from e2e_common import say
from telemetry_stack import gnocchi
from telemetry_stack import seed
from telemetry_stack import venvs

from meter_export.sources import gnocchi as gnocchi_source

POLICY = "mx-bench-5min"
# NOTE(bench): the first three are the catch-up set of issue 8; the fourth
# makes the "Why" set of that issue (48 instances x 4 meters x 36 hours).
METERS = {"cpu": "ns", "memory": "MB", "vcpus": "vcpu", "disk.root.size": "GB"}
DEFAULT_METERS = 3


SETTLE = datetime.timedelta(seconds=600)  # [sync] settle, default
RSS_MARK = "peak-rss-kb="


class DataSet:
    """One project: ``resources`` with points in [start, end), ``empty`` without."""

    def __init__(self, client, server, resources, start, end, empty=0, meters=DEFAULT_METERS):
        self.project = str(uuid.uuid4())
        self.resources, self.start, self.end, self.empty = resources, start, end, empty
        self.meters = dict(list(METERS.items())[:meters])
        watch = time.perf_counter()
        seeded = seed.seed_project(client, self.project, self.meters, resources=resources, start=start, end=end, archive_policy=POLICY)
        if empty:
            seed.create_resources(client, self.project, empty, self.meters, archive_policy=POLICY)
        pushed = time.perf_counter() - watch
        server.wait_processed(timeout=3600)
        self.points = sum(len(p) for p in seeded.points.values())
        say(
            "seeded %d instances x %d meters with %d points in [%s, %s), %d instances without data "
            "(created+pushed %.1fs, processed by metricd after %.1fs)"
            % (resources, len(self.meters), self.points, start, end, empty, pushed, time.perf_counter() - watch)
        )

    def filters(self):
        return "filters:\n  - name: bench\n    query: {project_id: %s, resource_type: instance}\n    meters: [%s]\n" % (
            self.project,
            ", ".join(self.meters),
        )

    def search(self):
        return {"=": {"project_id": self.project}}


def count_points(answer):
    """Points in an aggregates answer with search: {resource: {metric: {agg: [...]}}}."""
    return sum(len(series) for by_metric in answer["measures"].values() for by_agg in by_metric.values() for series in by_agg.values())


def read_span():
    """What a first pass with initial_start = -P30D reads: [now - 30 d, now - settle)."""
    now = datetime.datetime.now(datetime.UTC)
    return now - datetime.timedelta(days=30), now - SETTLE


def baseline_threads(endpoint, data, threads=4):
    start, end = read_span()
    local = threading.local()

    def measures(metric_id):
        if not hasattr(local, "client"):
            local.client = seed.make_client(endpoint)
        return len(local.client.metric.get_measures(metric_id, start=start, stop=end, granularity=300))

    watch = time.perf_counter()
    client = seed.make_client(endpoint)
    resources = client.resource.search(resource_type="instance", query=data.search(), limit=1000)
    metric_ids = [r["metrics"][m] for r in resources for m in data.meters if m in r["metrics"]]
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        points = sum(pool.map(measures, metric_ids))
    return points, time.perf_counter() - watch, 1 + len(metric_ids)


def baseline_one_request(endpoint, data):
    start, end = read_span()
    client = seed.make_client(endpoint)
    watch = time.perf_counter()
    operations = "(metric %s)" % " ".join("(%s mean)" % m for m in data.meters)
    answer = client.aggregates.fetch(operations, resource_type="instance", search=data.search(), start=start, stop=end, granularity=300)
    return count_points(answer), time.perf_counter() - watch, 1


def config_for(endpoint, data, workdir, url, threads=None):
    sync = {"initial_start": "-P30D"}
    if threads:
        sync["stream_threads"] = threads
    return common.write_config(
        workdir,
        url,
        "driver = gnocchi",
        {"auth_type": "gnocchi-basic", "user": "admin", "endpoint": endpoint},
        data.filters(),
        sync=sync,
    )


def run_pass(config):
    """One in-process ``run --once``: (seconds, {stream: requests})."""
    lines = common.StreamLines()
    logger = logging.getLogger("meter_export.sync")
    logger.addHandler(lines)
    try:
        # NOTE(bench): a first pass in a new process: nothing cached yet.
        gnocchi_source.parse_timestamp.cache_clear()
        code, seconds = common.in_process(config, "run", "--once")
    finally:
        logger.removeHandler(lines)
    if code:
        raise RuntimeError("run --once exited %d" % code)
    return seconds, lines.requests()


def meter_export(endpoint, data, workdir, new_db, keep=None, threads=None):
    """A first pass into a fresh database made by ``new_db()``: (rows, seconds, requests).

    ``keep`` (a list) receives (database, config) instead of dropping it;
    ``threads`` sets [sync] stream_threads (None: its default).
    """
    db = new_db()
    try:
        config = config_for(endpoint, data, workdir, db.url, threads)
        code, _ = common.in_process(config, "dbsync")
        assert code == 0
        seconds, requests = run_pass(config)
        return db.count(), seconds, requests
    finally:
        if keep is None:
            db.drop()
        else:
            keep.append((db, config))


def read_only(endpoint, data, workdir):
    """meter-export's read path alone: (points, seconds, requests).

    The census, the planned windows and ``fetch`` of every stream, as many
    at once as a pass runs them, over the span a first pass reads; nothing
    is mapped to rows or written. It tells the read's share of a catch-up
    from the write's on a host that runs both.
    """
    from meter_export import service
    from meter_export import sources
    from meter_export import sync
    from meter_export import utils
    from meter_export import worker

    config = config_for(endpoint, data, workdir, "sqlite://")  # never opened
    conf = service.prepare_service(["--config-file", config])
    gnocchi_source.parse_timestamp.cache_clear()
    start, end = read_span()
    drivers = sources.DriverPool(lambda: sources.get_driver(conf), conf.sync.stream_threads)
    drivers.new_pass()

    def one(stream):
        with drivers.lease(stream.key) as source:
            sent = source.requests
            windows, census = sync.plan(source, stream, start, end, conf)
            points = sum(len(page) for window in windows for page in source.fetch(stream, *window, census))
            return points, source.requests - sent

    watch = time.perf_counter()
    streams = worker.load_streams(conf)
    try:
        with common.collector_restored(), concurrent.futures.ThreadPoolExecutor(min(drivers.size, len(streams))) as pool:
            utils.tune_collector()  # as run --once does
            done = list(pool.map(one, streams))
    finally:
        drivers.close()
    seconds = time.perf_counter() - watch
    return sum(p for p, _ in done), seconds, sum(r for _, r in done)


def catch_up(endpoint, data, workdir, new_db, repeat, quiet, compare_threads, reads_only=False):
    sides = {
        "baseline: 4 threads, GET per metric": lambda: baseline_threads(endpoint, data),
        "baseline: one aggregates read": lambda: baseline_one_request(endpoint, data),
        "meter-export run --once (defaults)": lambda: meter_export(endpoint, data, workdir, new_db),
    }
    if reads_only:
        sides["meter-export reads only (no write)"] = lambda: read_only(endpoint, data, workdir)
    for threads in compare_threads:
        side = functools.partial(meter_export, endpoint, data, workdir, new_db, threads=threads)
        sides["meter-export, stream_threads = %d" % threads] = side
    times, counts, requests = common.interleaved(sides, repeat, quiet)
    say("catch-up: %d samples, median of %d rounds:" % (data.points, repeat))
    rates = {name: counts[name] / common.median(t) for name, t in times.items()}
    threads, one = rates["baseline: 4 threads, GET per metric"], rates["baseline: one aggregates read"]
    for name, rate in rates.items():
        total = requests[name] if isinstance(requests[name], int) else sum(requests[name].values())
        say(
            "  %-40s %7.2fs %9.0f samples/s  x%.2f of 4-thread GETs, x%.2f of one aggregates read, %d requests"
            % (name, common.median(times[name]), rate, rate / threads, rate / one, total)
        )
        if counts[name] != data.points:
            say("  WARNING: %s read %d samples, %d were seeded" % (name, counts[name], data.points))
    say("  meter-export requests per stream: %s" % common.per_stream(requests["meter-export run --once (defaults)"]))


def sample_rss(pid, out, stop):
    """RSS of ``pid`` every 0.1 s into ``out`` until ``stop`` is set."""
    try:
        proc = psutil.Process(pid)
        while not stop.wait(0.1):
            out.append(proc.memory_info().rss)
    except psutil.Error:
        pass


def peak_rss(endpoint, data, workdir, new_db):
    """``run --once`` as a child process: (rows, seconds, peak RSS bytes).

    NOTE(bench): the peak is the largest psutil sample, not the child's
    ru_maxrss: a child forked from this bench process (hundreds of MB after
    the in-process rounds) reports the parent's RSS at the fork as its own
    ru_maxrss, whatever meter-export then uses (measured: 279 and 294 MB for
    every data set, against 108 MB with a small parent).
    """
    db = new_db()
    try:
        config = config_for(endpoint, data, workdir, db.url)
        common.cli(config, "dbsync")
        watch = time.perf_counter()
        cmd = [common.BIN, "--config-file", config, "run", "--once"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples, stop = [], threading.Event()
        sampler = threading.Thread(target=sample_rss, args=(proc.pid, samples, stop))
        sampler.start()
        code = proc.wait()
        stop.set()
        sampler.join()
        seconds = time.perf_counter() - watch
        if code:
            raise RuntimeError("run --once exited %d" % code)
        return db.count(), seconds, max(samples, default=0)
    finally:
        db.drop()


def steady(endpoint, client, server, workdir, new_db, resources, idle_data, quiet):
    end = datetime.datetime.now(datetime.UTC) - SETTLE
    hour_start = end.replace(second=0, microsecond=0) - datetime.timedelta(hours=1)
    data = DataSet(client, server, resources, hour_start, end, meters=len(idle_data.meters))
    db = new_db()
    try:
        config = config_for(endpoint, data, workdir, db.url)
        code, _ = common.in_process(config, "dbsync")
        assert code == 0
        set_checkpoints(db.url, data, hour_start)
        with quiet():
            seconds, requests = run_pass(config)
        say(
            "steady state, one new hour: %d instances x %d meters, %d new points: %d rows, %.2fs, %d requests (%s)"
            % (resources, len(data.meters), data.points, db.count(), seconds, sum(requests.values()), common.per_stream(requests))
        )
    finally:
        db.drop()
    keep = []
    meter_export(endpoint, idle_data, workdir, new_db, keep=keep)
    db, config = keep[0]
    try:
        with quiet():
            seconds, requests = run_pass(config)
        say(
            "steady state, idle pass (nothing new behind %d streams): %.2fs, %d requests (%s)"
            % (len(requests), seconds, sum(requests.values()), common.per_stream(requests))
        )
    finally:
        db.drop()


def set_checkpoints(url, data, until):
    """Checkpoints as a pass that finished at ``until`` left them."""
    from meter_export import checkpoint
    from meter_export.storage.samples import Sink

    sink = Sink(url)
    try:
        with sink.engine.begin() as conn:
            for meter in data.meters:
                checkpoint.advance(conn, sink.checkpoints, "live", ("gnocchi", "bench", meter), until, until)
    finally:
        sink.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resources", type=int, default=200, help="instances with data in the catch-up set")
    parser.add_argument("--empty", type=int, default=50, help="instances without any point in the catch-up set")
    parser.add_argument("--days", type=float, default=3, help="days of 5-minute points in the catch-up set (1.5: 36 hours)")
    parser.add_argument(
        "--meters", type=int, choices=range(1, len(METERS) + 1), default=DEFAULT_METERS, help="meters per instance: %s" % ", ".join(METERS)
    )
    parser.add_argument(
        "--db",
        choices=("postgresql", "sqlite"),
        default="postgresql",
        help="where run --once writes: PostgreSQL (METER_EXPORT_TEST_PG_URL) or a fresh SQLite file, the embedded default",
    )
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--rss", action="store_true", help="peak RSS of run --once on the set and on one with twice the days")
    parser.add_argument("--steady-resources", type=int, default=1000)
    parser.add_argument("--skip-steady", action="store_true")
    parser.add_argument(
        "--compare-threads", type=int, action="append", default=[], help="also time run --once with this [sync] stream_threads"
    )
    parser.add_argument(
        "--metricd-running",
        action="store_true",
        help="keep metricd running while timing (by default it is paused: see GnocchiServer.metricd_paused)",
    )
    parser.add_argument(
        "--reads-only",
        action="store_true",
        help="also time meter-export's read path alone (census, windows, fetch; nothing written)",
    )
    args = parser.parse_args()
    common.header("e2e_gnocchi: real Gnocchi -> meter-export -> %s vs plain gnocchiclient reads" % args.db)
    say("subprocess start-up of meter-export (imports), not counted below: %.2fs" % common.startup_seconds())
    venvs.ensure("gnocchi")
    workdir = tempfile.mkdtemp(prefix="mx-bench-gnocchi-")
    new_db = functools.partial(common.new_database, args.db, workdir)
    server = gnocchi.GnocchiServer(workdir=os.path.join(workdir, "gnocchi"), processing_delay=1)
    server.start()
    try:
        client = seed.make_client(server.endpoint)
        seed.ensure_resource_types(client)
        seed.ensure_archive_policy(client, POLICY, granularity=300, timespan=86400 * 40)
        end = datetime.datetime.now(datetime.UTC).replace(minute=0, second=0, microsecond=0) - datetime.timedelta(days=10)
        data = DataSet(client, server, args.resources, end - datetime.timedelta(days=args.days), end, args.empty, args.meters)
        quiet = contextlib.nullcontext if args.metricd_running else server.metricd_paused
        say("metricd %s while timing" % ("running" if args.metricd_running else "paused"))
        if args.repeat:
            catch_up(server.endpoint, data, workdir, new_db, args.repeat, quiet, args.compare_threads, args.reads_only)
        if args.rss:
            double = DataSet(client, server, args.resources, end - datetime.timedelta(days=2 * args.days), end, args.empty, args.meters)
            for label, dataset in (("%g days" % args.days, data), ("%g days" % (2 * args.days), double)):
                with quiet():
                    rows, seconds, peak = peak_rss(server.endpoint, dataset, workdir, new_db)
                mb = peak / 2**20
                say("  peak RSS of run --once (child, psutil every 0.1 s), %s: %d rows in %.1fs, %.1f MB" % (label, rows, seconds, mb))
        if not args.skip_steady:
            steady(server.endpoint, client, server, workdir, new_db, args.steady_resources, data, quiet)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    say("load average at end: %s" % common.loadavg())


if __name__ == "__main__":
    sys.exit(main())
