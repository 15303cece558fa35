"""Rating throughput: the project's rater beside a hand-written INSERT ... SELECT.

Usage (from the repository root)::

    .venv/bin/python bench/rating.py [--samples 1000000] [--db sqlite postgresql mysql]
        [--repeat 3] [--incremental 10000]

For each database: a fresh database (bench/sink_throughput.py's helpers),
``--samples`` samples written through the Sink (two gauge meters, one sample
per resource and meter every 6 minutes over 25 hours). Then ``--repeat``
rounds, the order flipping each round, each method starting from an empty
usage table:

- project: Rater.rate_range over every hour (one transaction per hour, one
  INSERT ... SELECT per mapping and hour, max and mean, newest sample's
  project/user/metadata);
- baseline: one hand-written INSERT ... SELECT ... GROUP BY (resource, hour)
  per meter over the whole range, giving the same rows (checked).

The ratio is baseline time / project time (>= 0.8 is the goal).

Incremental: with the table full, ``--incremental`` resources get one new
hour of samples (the pass, timed: Sink.write only, so the figure is a lower
bound of a real pass), the checkpoints move one hour, and the worker's
PassRater.after_pass rates what that pass could have changed; its time is
given as a share of the pass's.
"""

import argparse
import datetime
import os
import statistics
import sys
import time

import sqlalchemy as sa

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import sink_throughput  # noqa: E402

from meter_export import checkpoint  # noqa: E402
from meter_export.rating import mappings as mappings_mod  # noqa: E402
from meter_export.rating import rater as rater_mod  # noqa: E402
from meter_export.sources import Sample  # noqa: E402
from meter_export.storage import migrate  # noqa: E402
from meter_export.storage.samples import Sink  # noqa: E402

UTC = datetime.UTC
T0 = datetime.datetime(2026, 1, 5, tzinfo=UTC)
HOURS = 25
STEP = datetime.timedelta(minutes=6)
METERS = (("vcpus", "max"), ("memory.usage", "mean"))
MAPPINGS = [
    {"meter": m, "service": "svc." + m, "unit": "u", "type": "VM", "transformer": t, "metadata": {"name": {"sources": ["display_name"]}}}
    for m, t in METERS
]

# The baseline: per dialect, the hour of a timestamp and the hour after it.
_HOUR = {
    "postgresql": ("date_trunc('hour', timestamp)", "date_trunc('hour', timestamp) + interval '1 hour'"),
    "mysql": (
        "CAST(DATE_FORMAT(timestamp, '%Y-%m-%d %H:00:00') AS DATETIME(6))",
        "CAST(DATE_FORMAT(timestamp, '%Y-%m-%d %H:00:00') AS DATETIME(6)) + INTERVAL 1 HOUR",
    ),
    "sqlite": ("strftime('%Y-%m-%d %H:00:00.000000', timestamp)", "strftime('%Y-%m-%d %H:00:00.000000', timestamp, '+1 hour')"),
}
_QUANTITY = {
    "postgresql": (
        "CAST(%s(CAST(counter_volume AS NUMERIC)) AS NUMERIC(30, 12))",
        "jsonb_build_object",
        "jsonb_extract_path_text(resource_metadata, 'display_name')",
    ),
    "mysql": (
        "CAST(%s(CAST(counter_volume AS DECIMAL(38, 12))) AS DECIMAL(30, 12))",
        "json_object",
        "json_value(resource_metadata, '$.\"display_name\"')",
    ),
    "sqlite": ("round(%s(counter_volume), 12)", "json_object", "CAST(json_extract(resource_metadata, '$.\"display_name\"') AS TEXT)"),
}


def baseline_sql(family, meter, function, now):
    hour, next_hour = _HOUR[family]
    quantity, json_object, name = _QUANTITY[family]
    quantity = quantity.replace("counter_volume", "v") % function
    usage = "`usage`" if family == "mysql" else "usage"  # NOTE(bench): USAGE is reserved in MySQL
    lo, hi = _text(T0), _text(T0 + HOURS * rater_mod.HOUR)
    return (
        f"INSERT INTO {usage} (service, resource_id, period_start, period_end, project_id, user_id, meter, unit, region, "
        "quantity, resource_metadata, computed_at) "
        f"SELECT 'svc.{meter}', resource_id, h, he, MAX(CASE WHEN rn = 1 THEN project_id END), MAX(CASE WHEN rn = 1 THEN user_id END), "
        f"'{meter}', 'u', '', {quantity}, {json_object}('type', 'VM', 'name', MAX(CASE WHEN rn = 1 THEN name END)), '{now}' FROM ("
        f"SELECT resource_id, project_id, user_id, counter_volume AS v, {name} AS name, {hour} AS h, {next_hour} AS he, "
        f"ROW_NUMBER() OVER (PARTITION BY resource_id, {hour} ORDER BY timestamp DESC, message_id DESC) AS rn "
        f"FROM samples WHERE counter_name = '{meter}' AND timestamp >= '{lo}' AND timestamp < '{hi}') w "
        "GROUP BY resource_id, h, he"
    )


def _text(t):
    return t.strftime("%Y-%m-%d %H:%M:%S.%f")


def samples(resources, start, hours):
    """Deterministic message_ids: the same (resource, meter, time) is the same sample."""
    n = 0
    for r in range(resources):
        metadata = {"display_name": "vm-%05d" % r, "flavor_name": "m1"}
        for meter, _ in METERS:
            t = start
            while t < start + hours * rater_mod.HOUR:
                n += 1
                yield Sample(
                    "r%05d/%s/%s" % (r, meter, t.strftime("%Y%m%d%H%M")),
                    meter,
                    "gauge",
                    "u",
                    float((n * 7) % 1000) / 4,
                    "p%d" % (r % 50),
                    "u1",
                    "r%05d" % r,
                    "openstack",
                    t,
                    t,
                    metadata,
                )
                t += STEP


def write_all(sink, iterable, page=10000):
    buffer, total = [], 0
    for s in iterable:
        buffer.append(s)
        if len(buffer) == page:
            total += sink.write(buffer).written
            buffer = []
    return total + (sink.write(buffer).written if buffer else 0)


def usage_rows(sink):
    usage = sink.metadata.tables["usage"]
    with sink.engine.connect() as conn:
        return {
            (r.service, r.resource_id, r.period_start): (r.quantity, r.project_id, r.resource_metadata)
            for r in conn.execute(sa.select(usage))
        }


def clear(sink):
    with sink.engine.begin() as conn:
        conn.execute(sink.metadata.tables["usage"].delete())


def project(sink, rater):
    watch = time.perf_counter()
    rater.rate_range(T0, T0 + HOURS * rater_mod.HOUR)
    return time.perf_counter() - watch


def baseline(sink, family):
    now = _text(datetime.datetime.now(UTC))
    watch = time.perf_counter()
    with sink.engine.begin() as conn:
        for meter, transformer in METERS:
            sql = baseline_sql(family, meter, {"max": "MAX", "mean": "AVG"}[transformer], now)
            # NOTE(bench): psycopg and pymysql read % as a placeholder even without parameters.
            conn.exec_driver_sql(sql if family == "sqlite" else sql.replace("%", "%%"))
    return time.perf_counter() - watch


def bench_db(db, args):
    url, token = sink_throughput.create_database(db)
    try:
        sink = Sink(url)
        migrate.upgrade(sink)
        family = {"sqlite": "sqlite", "postgresql": "postgresql", "mysql": "mysql"}[db]
        resources = max(1, args.samples // (len(METERS) * HOURS * 10))
        watch = time.perf_counter()
        written = write_all(sink, samples(resources, T0, HOURS))
        print(
            "%s: %d samples (%d resources x %d meters x %d h x 10) written in %.1fs"
            % (db, written, resources, len(METERS), HOURS, time.perf_counter() - watch),
            flush=True,
        )
        rater = rater_mod.Rater(sink, mappings_mod.parse(MAPPINGS))
        times = {"project": [], "baseline": []}
        reference = None
        for round_ in range(args.repeat):
            order = ("project", "baseline") if round_ % 2 == 0 else ("baseline", "project")
            for method in order:
                clear(sink)
                times[method].append(project(sink, rater) if method == "project" else baseline(sink, family))
                rows = usage_rows(sink)
                strip = {k: (q, p, m) for k, (q, p, m) in rows.items()}
                if reference is None:
                    reference = strip
                assert strip == reference, "%s: the two methods disagree" % db
        p, b = statistics.median(times["project"]), statistics.median(times["baseline"])
        print(
            "%s: %d usage rows; project %.2fs (%.0f samples/s), baseline INSERT...SELECT %.2fs (%.0f samples/s): ratio %.2f; rounds %s"
            % (
                db,
                len(reference),
                p,
                written / p,
                b,
                written / b,
                b / p,
                " ".join("%.2f" % (bt / pt) for pt, bt in zip(times["project"], times["baseline"], strict=True)),
            ),
            flush=True,
        )
        incremental(db, sink, rater, args.incremental, resources)
        sink.close()
    finally:
        sink_throughput.drop_database(db, token)


def incremental(db, sink, rater, resources, base_resources):
    keys = [("gnocchi", "bench", m) for m, _ in METERS]
    end = T0 + HOURS * rater_mod.HOUR
    with sink.engine.begin() as conn:
        for k in keys:
            checkpoint.advance(conn, sink.checkpoints, "live", k, end, end)
    passes = rater_mod.PassRater(rater, keys, lookback=3600)
    passes.after_pass()  # catch up once: the marks now sit at the table's end
    # NOTE(bench): a pass with [sync] lookback = 3600 writes the new hour and
    # upserts the hour before it again; only the Sink's work is timed (no API).
    watch = time.perf_counter()
    written = write_all(sink, samples(base_resources, end - rater_mod.HOUR, 1))
    written += write_all(sink, samples(resources, end, 1))
    pass_time = time.perf_counter() - watch
    with sink.engine.begin() as conn:
        for k in keys:
            checkpoint.advance(conn, sink.checkpoints, "live", k, end + rater_mod.HOUR, end)
    watch = time.perf_counter()
    assert passes.after_pass()
    rate_time = time.perf_counter() - watch
    print(
        "%s: incremental: a pass bringing one new hour for %d resources (%d samples with the lookback hour) took %.2fs; "
        "rating after it %.2fs = %.1f%% (goal <10%%)" % (db, resources, written, pass_time, rate_time, 100 * rate_time / pass_time),
        flush=True,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=1000000)
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgresql", "mysql"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--incremental", type=int, default=10000, help="Resources of the incremental pass.")
    args = parser.parse_args()
    print("rating bench %s, %d CPUs, load %s" % (datetime.datetime.now(UTC).isoformat(timespec="minutes"), os.cpu_count(), os.getloadavg()))
    for db in args.db:
        bench_db(db, args)


if __name__ == "__main__":
    main()
