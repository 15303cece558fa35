"""The demo behind tools/demo.sh; see README.rst.

Starts the real Gnocchi from tools/telemetry_stack, seeds a day of 5-minute
usage (cpu, memory, vcpus) for three projects, then runs the real commands:
``meter-export dbsync``, ``meter-export prices load`` and ``meter-export run
--once`` (which also rates the hours it synced) with the default [database]
connection (an SQLite file in the working directory, ./demo), prints the
rated cost per project, and ends with ``meter-export orders create``: the
first sales order of one project, over the hours that are final.
"""

import argparse
import datetime
import decimal
import os
import sqlite3
import subprocess
import sys
import textwrap
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from telemetry_stack import gnocchi  # noqa: E402
from telemetry_stack import seed  # noqa: E402

UTC = datetime.UTC
METERS = {"cpu": "ns", "memory": "MB", "vcpus": "vcpu"}
FILTERS = """\
filters:
  - name: instances
    query: {resource_type: instance}
    meters:
      - {name: cpu, counter_type: cumulative}
      - memory
      - vcpus
"""
MAPPINGS = """\
- meter: vcpus
  service: compute.vcpus
  unit: vcpu
  type: Virtual Machine
  transformer: max
  metadata: {name: {sources: [display_name]}}
- meter: memory
  service: compute.ram
  unit: MB
  type: Virtual Machine
  transformer: max
"""
PRICES = """\
currency: EUR
prices:
  - {service: compute.vcpus, unit: vcpu, per: hour, price: 0.012, valid_from: 2026-01-01}
  - {service: compute.ram, unit: MB, per: hour, price: 0.0000045, valid_from: 2026-01-01}
"""


def seed_usage(server, projects, resources):
    client = seed.make_client(server.endpoint)
    seed.ensure_resource_types(client)
    seed.ensure_archive_policy(client, "demo-5min")
    end = datetime.datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    total = 0
    for _ in range(projects):
        seeded = seed.seed_project(
            client, str(uuid.uuid4()), METERS, resources, end - datetime.timedelta(days=1), end, archive_policy="demo-5min"
        )
        total += sum(len(p) for p in seeded.points.values())
    server.wait_processed(timeout=300)
    return total


def write_config(workdir, endpoint):
    for name, text in (("filters.yaml", FILTERS), ("mappings.yaml", MAPPINGS), ("prices.yaml", PRICES)):
        with open(os.path.join(workdir, name), "w") as f:
            f.write(text)
    path = os.path.join(workdir, "meter-export.conf")
    with open(path, "w") as f:
        f.write(
            textwrap.dedent(
                """\
                [service_credentials]
                auth_type = gnocchi-basic
                user = admin
                endpoint = %s

                [sync]
                filters_file = filters.yaml
                initial_start = -P2D
                # The demo's data is complete once Gnocchi has processed it.
                settle = 0

                [rating]
                mappings_file = mappings.yaml
                """
                % endpoint
            )
        )
    return path


def meter_export(config, *args):
    bin_dir = os.path.dirname(sys.executable)
    subprocess.run([os.path.join(bin_dir, "meter-export"), "--config-file", config, *args], check=True, cwd=os.path.dirname(config))


def report(workdir, pushed):
    db = sqlite3.connect(os.path.join(workdir, "meter-export.sqlite"))
    rows = db.execute(
        "SELECT counter_name, count(*), count(DISTINCT resource_id), min(timestamp), max(timestamp) FROM samples GROUP BY 1 ORDER BY 1"
    ).fetchall()
    print("\nWhat landed in %s (table samples):" % os.path.join(workdir, "meter-export.sqlite"))
    print("%-8s %8s %10s  %-26s  %-26s" % ("meter", "samples", "resources", "first", "last"))
    for name, count, resources, first, last in rows:
        print("%-8s %8d %10d  %-26s  %-26s" % (name, count, resources, first, last))
    print("pushed to Gnocchi: %d points; exported: %d samples" % (pushed, sum(r[1] for r in rows)))


def report_cost(workdir):
    """Rated cost per project, read exactly (SQLite's view computes in doubles)."""
    import sqlalchemy as sa

    from meter_export.storage import schema
    from meter_export.storage import usage

    engine = sa.create_engine("sqlite:///%s" % os.path.join(workdir, "meter-export.sqlite"))
    with engine.connect() as conn:
        far = datetime.datetime(9999, 1, 1, tzinfo=UTC)
        rows = usage.read_rated(conn, schema.make_metadata(), datetime.datetime(1970, 1, 1, tzinfo=UTC), far)
    engine.dispose()
    totals = {}
    for r in rows:
        key = (r.project_id, r.currency)
        hours, cost = totals.get(key, (set(), decimal.Decimal(0)))
        totals[key] = (hours | {r.period_start}, cost + r.cost)
    print("\nRated cost per project (view rated_usage, prices from prices.yaml):")
    print("%-36s %6s %8s %22s %10s" % ("project", "hours", "currency", "cost", "rounded"))
    for (project, currency), (hours, cost) in sorted(totals.items()):
        rounded = cost.quantize(decimal.Decimal("0.01"), rounding=decimal.ROUND_HALF_UP)
        print("%-36s %6d %8s %22s %10s" % (project, len(hours), currency, cost.normalize(), rounded))
    return sorted(project for project, _ in totals)


def first_order(config, project):
    """The project's first sales order, up to the last hour that is final.

    NOTE(demo): a stream is final up to its checkpoint minus [sync] lookback
    (one hour by default), and orders bill final hours only; two hours back
    from now is final whatever minute the demo runs at.
    """
    end = datetime.datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - datetime.timedelta(hours=2)
    print("\nmeter-export orders create --project %s --end %s" % (project, end.strftime("%Y-%m-%dT%H:%M:%SZ")))
    sys.stdout.flush()
    meter_export(config, "orders", "create", "--project", project, "--end", end.strftime("%Y-%m-%dT%H:%M:%SZ"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="demo")
    parser.add_argument("--projects", type=int, default=3)
    parser.add_argument("--resources", type=int, default=4, help="instances per project")
    parser.add_argument("--keep-running", action="store_true", help="leave Gnocchi running after the demo")
    args = parser.parse_args()
    workdir = os.path.abspath(args.workdir)
    os.makedirs(workdir, exist_ok=True)
    server = gnocchi.GnocchiServer(workdir=os.path.join(workdir, "gnocchi"))
    server.start()
    try:
        pushed = seed_usage(server, args.projects, args.resources)
        config = write_config(workdir, server.endpoint)
        meter_export(config, "dbsync")
        meter_export(config, "prices", "load", "prices.yaml")
        meter_export(config, "run", "--once")
        report(workdir, pushed)
        projects = report_cost(workdir)
        first_order(config, projects[0])
    finally:
        if not args.keep_running:
            server.stop()


if __name__ == "__main__":
    main()
