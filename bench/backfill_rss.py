"""Peak RSS of `meter-export backfill` of 1M and of 5M samples from a real Gnocchi into PostgreSQL.

Usage (from the repository root; PostgreSQL from METER_EXPORT_TEST_PG_URL)::

    .venv/bin/python bench/backfill_rss.py [--resources 100] [--points 16670] [--max-window 86400]

Starts a real Gnocchi 4.7.1 and seeds ``--resources`` instances x 3 meters
x ``--points`` 5-minute points (default 100 x 3 x 16670 = 5,001,000 points,
57.9 days, in a 60-day archive policy; few instances because Gnocchi takes
one POST per instance, about 1 s each on the loaded bench machine), pushed in time order, and waits until metricd has processed them
all. Then two backfills, each a child process ``meter-export backfill
--start S --end E`` (default --parallel 2) into its own fresh PostgreSQL
database (dbsync first):

- 1M: the first fifth of the days (3334 points per metric, 1,000,200 samples);
- 5M: every point.

The same resources and pages are read in both: only the amount of data, so
the number of windows, grows. The peak RSS is the child's ru_maxrss from
wait4(), and a psutil sample every 0.2 s gives the RSS over time (its median
is printed too). Goal: under 250 MB and flat between the two.
"""

import argparse
import datetime
import os
import shutil
import statistics
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

POLICY = "mx-bench-5min"
METERS = {"cpu": "ns", "memory": "MB", "vcpus": "vcpu"}
STEP = datetime.timedelta(minutes=5)


def push(client, resources, start, points, batch_points=100000):
    """One point per 5 minutes per metric, in time order, 100k points a POST."""
    batch, size = {}, 0
    for i in range(points):
        ts = (start + STEP * i).isoformat()
        for r, resource in enumerate(resources):
            by_meter = batch.setdefault(resource["id"], {})
            for m, meter in enumerate(METERS):
                by_meter.setdefault(meter, []).append({"timestamp": ts, "value": float((i * 7 + r * 3 + m) % 1000)})
            size += len(METERS)
        if size >= batch_points:
            client.metric.batch_resources_metrics_measures(batch)
            batch, size = {}, 0
    if batch:
        client.metric.batch_resources_metrics_measures(batch)


def sample_rss(pid, out, stop):
    try:
        proc = psutil.Process(pid)
        while not stop.wait(0.2):
            out.append(proc.memory_info().rss)
    except psutil.Error:
        pass


def backfill(endpoint, project, start, end, workdir, args):
    db = common.Database()
    try:
        config = common.write_config(
            workdir,
            db.url,
            "driver = gnocchi",
            {"auth_type": "gnocchi-basic", "user": "admin", "endpoint": endpoint},
            "filters:\n  - name: bench\n    query: {project_id: %s, resource_type: instance}\n    meters: [%s]\n"
            % (project, ", ".join(METERS)),
            sync={"max_window": args.max_window},
        )
        common.cli(config, "dbsync")
        cmd = [
            common.BIN,
            "--config-file",
            config,
            "backfill",
            "--start",
            start.isoformat(),
            "--end",
            end.isoformat(),
            "--parallel",
            str(args.parallel),
        ]
        watch = time.perf_counter()
        with open(os.path.join(workdir, "backfill.log"), "w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            samples, stop = [], threading.Event()
            sampler = threading.Thread(target=sample_rss, args=(proc.pid, samples, stop))
            sampler.start()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            stop.set()
            sampler.join()
        seconds = time.perf_counter() - watch
        if proc.returncode:
            with open(os.path.join(workdir, "backfill.log")) as f:
                raise RuntimeError("backfill exited %d:\n%s" % (proc.returncode, f.read()[-3000:]))
        return db.count(), seconds, usage.ru_maxrss * 1024, statistics.median(samples) if samples else 0, usage.ru_utime + usage.ru_stime
    finally:
        db.drop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resources", type=int, default=100)
    parser.add_argument("--points", type=int, default=16670, help="5-minute points per metric (16670: 5M samples with 100 resources)")
    parser.add_argument("--max-window", type=int, default=86400)
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    common.header("backfill_rss: peak RSS of meter-export backfill, real Gnocchi -> PostgreSQL")
    venvs.ensure("gnocchi")
    workdir = tempfile.mkdtemp(prefix="mx-bench-rss-")
    server = gnocchi.GnocchiServer(workdir=os.path.join(workdir, "gnocchi"), processing_delay=1)
    server.start()
    try:
        client = seed.make_client(server.endpoint)
        seed.ensure_resource_types(client)
        seed.ensure_archive_policy(client, POLICY, granularity=300, timespan=86400 * 60)
        end = datetime.datetime.now(datetime.UTC).replace(minute=0, second=0, microsecond=0)
        start = end - STEP * args.points
        project = str(uuid.uuid4())
        watch = time.perf_counter()
        resources = seed.create_resources(client, project, args.resources, METERS, archive_policy=POLICY, started_at=start)
        push(client, resources, start, args.points)
        pushed = time.perf_counter() - watch
        server.wait_processed(timeout=3600)
        total = args.resources * len(METERS) * args.points
        say(
            "seeded %d points (%d instances x %d meters x %d), created+pushed in %.0fs, processed by metricd after %.0fs"
            % (total, args.resources, len(METERS), args.points, pushed, time.perf_counter() - watch)
        )
        fifth = start + STEP * ((args.points + 4) // 5)
        results = {}
        for label, stop in (("1M", fifth), ("5M", end)):
            rows, seconds, peak, median_rss, cpu = backfill(server.endpoint, project, start, stop, workdir, args)
            results[label] = peak
            say(
                "  backfill %s: %d samples in %.0fs (%.0f samples/s, %.0fs CPU), peak RSS %.1f MB, median RSS %.1f MB, load %s"
                % (label, rows, seconds, rows / seconds, cpu, peak / 2**20, median_rss / 2**20, common.loadavg())
            )
        say("peak RSS 5M / 1M: x%.2f (goal: under 250 MB, flat)" % (results["5M"] / results["1M"]))
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    say("load average at end: %s" % common.loadavg())


if __name__ == "__main__":
    sys.exit(main())
