"""End-to-end sync from a real Gnocchi into PostgreSQL, beside a plain gnocchiclient read.

Usage (from the repository root; PostgreSQL from METER_EXPORT_TEST_PG_URL)::

    .venv/bin/python bench/e2e_gnocchi.py [--large] [--repeat 3] [--max-window 3600 86400]
        [--large-repeat 2] [--large-max-window 86400]

Starts a real Gnocchi 4.7.1 (tools/telemetry_stack, fresh workdir and
indexer DB), seeds one project of 200 instances x 3 meters (cpu, memory,
vcpus) x one day of 5-minute points (172,800 points), and with --large a
second project of 200 instances x 5 days (864,000 points; more
instances were too slow to create one POST each on a loaded machine); waits until metricd has
processed everything. Then, per data set, ``--repeat`` rounds, the order of
the two sides alternating between rounds:

- baseline: what a person would write with gnocchiclient to read the same
  samples, with no database: one ``client.aggregates.fetch("(metric <meter>
  mean)", resource_type="instance", search={"=": {"project_id": P}}, start,
  stop, granularity=300)`` per meter over the whole day. Per meter because
  that is how meter-export reads (one stream per meter, all the filter's
  resources per request); the single request for the three meters is timed
  too and printed as a second baseline.
- meter-export: ``meter-export --config-file F run --once`` in this process
  (cli.main), into a fresh PostgreSQL database made by ``dbsync`` before the
  clock starts; only the run is timed. For each ``--max-window`` (3600 is the
  default configuration: a first pass over a day reads 24+ windows per stream).
  Interpreter start-up of a subprocess ``meter-export`` is measured apart.

Figures are samples/s (points for the baseline, rows written for
meter-export), median of the rounds, and the ratio meter-export / baseline.
"""

import argparse
import datetime
import os
import shutil
import sys
import tempfile
import time
import uuid

import e2e_common as common
from e2e_common import say
from telemetry_stack import gnocchi
from telemetry_stack import seed
from telemetry_stack import venvs

from meter_export.sources import gnocchi as gnocchi_source

POLICY = "mx-bench-5min"
METERS = {"cpu": "ns", "memory": "MB", "vcpus": "vcpu"}


class DataSet:
    def __init__(self, client, server, resources, start, end):
        self.project = str(uuid.uuid4())
        self.days = (end - start).days
        self.resources, self.start, self.end = resources, start, end
        watch = time.perf_counter()
        seeded = seed.seed_project(client, self.project, METERS, resources=resources, start=start, end=end, archive_policy=POLICY)
        pushed = time.perf_counter() - watch
        server.wait_processed(timeout=1800)
        self.points = sum(len(p) for p in seeded.points.values())
        say(
            "seeded %d instances x %d meters: %d points (created+pushed %.1fs, processed by metricd after %.1fs)"
            % (resources, len(METERS), self.points, pushed, time.perf_counter() - watch)
        )

    def filters(self):
        return "filters:\n  - name: bench\n    query: {project_id: %s, resource_type: instance}\n    meters: [%s]\n" % (
            self.project,
            ", ".join(METERS),
        )


def count_points(answer):
    """Points in an aggregates answer with search: {resource: {metric: {agg: [...]}}}."""
    return sum(len(series) for by_metric in answer["measures"].values() for by_agg in by_metric.values() for series in by_agg.values())


def baseline_per_meter(endpoint, data):
    client = seed.make_client(endpoint)
    watch = time.perf_counter()
    points = 0
    for meter in METERS:
        answer = client.aggregates.fetch(
            "(metric %s mean)" % meter,
            resource_type="instance",
            search={"=": {"project_id": data.project}},
            start=data.start,
            stop=data.end,
            granularity=300,
        )
        points += count_points(answer)
    return points, time.perf_counter() - watch


def baseline_one_request(endpoint, data):
    client = seed.make_client(endpoint)
    watch = time.perf_counter()
    operations = "(metric %s)" % " ".join("(%s mean)" % m for m in METERS)
    answer = client.aggregates.fetch(
        operations, resource_type="instance", search={"=": {"project_id": data.project}}, start=data.start, stop=data.end, granularity=300
    )
    return count_points(answer), time.perf_counter() - watch


def meter_export(endpoint, data, workdir, max_window):
    db = common.Database()
    try:
        config = common.write_config(
            workdir,
            db.url,
            "driver = gnocchi",
            {"auth_type": "gnocchi-basic", "user": "admin", "endpoint": endpoint},
            data.filters(),
            sync={"initial_start": data.start.isoformat(), "settle": 0, "lookback": 0, "max_window": max_window},
        )
        code, _ = common.in_process(config, "dbsync")
        assert code == 0
        # NOTE(bench): a first pass in a new process: nothing cached yet.
        gnocchi_source.parse_timestamp.cache_clear()
        code, seconds = common.in_process(config, "run", "--once")
        if code:
            raise RuntimeError("run --once exited %d" % code)
        return db.count(), seconds
    finally:
        db.drop()


def bench(endpoint, data, workdir, windows, repeat):
    sides = {
        "baseline: aggregates.fetch per meter": lambda: baseline_per_meter(endpoint, data),
        "baseline: one aggregates.fetch, 3 meters": lambda: baseline_one_request(endpoint, data),
    }
    for window in windows:
        sides["meter-export run --once, max_window=%d" % window] = lambda w=window: meter_export(endpoint, data, workdir, w)
    times = {name: [] for name in sides}
    counts = {}
    for round_ in range(repeat):
        names = list(sides) if round_ % 2 == 0 else list(reversed(sides))
        for name in names:
            counts[name], seconds = sides[name]()
            times[name].append(seconds)
            say("  round %d  %-45s %8d samples %7.2fs  load %s" % (round_ + 1, name, counts[name], seconds, common.loadavg()))
    say(
        "%d instances x %d meters x %d points = %d samples, median of %d rounds:"
        % (data.resources, len(METERS), 288 * data.days, data.points, repeat)
    )
    rates = {name: counts[name] / common.median(t) for name, t in times.items()}
    base = rates["baseline: aggregates.fetch per meter"]
    one = rates["baseline: one aggregates.fetch, 3 meters"]
    for name, rate in rates.items():
        say(
            "  %-45s %7.2fs %9.0f samples/s  x%.2f of per-meter baseline, x%.2f of one-request baseline"
            % (name, common.median(times[name]), rate, rate / base, rate / one)
        )
    for name in sides:
        if counts[name] != data.points:
            say("  WARNING: %s read %d samples, %d were seeded" % (name, counts[name], data.points))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resources", type=int, default=200)
    parser.add_argument("--large", action="store_true", help="Also a larger set: another project, 5 days.")
    parser.add_argument("--large-resources", type=int, default=200)
    parser.add_argument("--large-days", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--max-window", type=int, nargs="+", default=[3600, 86400])
    parser.add_argument("--large-max-window", type=int, nargs="+", default=[86400])
    parser.add_argument("--large-repeat", type=int, default=2)
    args = parser.parse_args()
    common.header("e2e_gnocchi: real Gnocchi -> meter-export -> PostgreSQL vs plain gnocchiclient read")
    say("subprocess start-up of meter-export (imports), not counted below: %.2fs" % common.startup_seconds())
    venvs.ensure("gnocchi")
    workdir = tempfile.mkdtemp(prefix="mx-bench-gnocchi-")
    server = gnocchi.GnocchiServer(workdir=os.path.join(workdir, "gnocchi"), processing_delay=1)
    server.start()
    try:
        client = seed.make_client(server.endpoint)
        seed.ensure_resource_types(client)
        seed.ensure_archive_policy(client, POLICY, granularity=300)
        end = datetime.datetime.now(datetime.UTC).replace(minute=0, second=0, microsecond=0)
        start = end - datetime.timedelta(days=1)
        sets = [(DataSet(client, server, args.resources, start, end), args.max_window, args.repeat)]
        if args.large:
            large_start = end - datetime.timedelta(days=args.large_days)
            sets.append((DataSet(client, server, args.large_resources, large_start, end), args.large_max_window, args.large_repeat))
        for data, windows, repeat in sets:
            bench(server.endpoint, data, workdir, windows, repeat)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    say("load average at end: %s" % common.loadavg())


if __name__ == "__main__":
    sys.exit(main())
