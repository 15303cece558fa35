"""The demo behind tools/demo.sh; see README.rst.

Starts the real Gnocchi from tools/telemetry_stack, seeds a day of 5-minute
usage (cpu, memory, vcpus) for three projects, then runs the real commands:
``meter-export dbsync`` and ``meter-export run --once`` with the default
[database] connection (an SQLite file in the working directory, ./demo).
"""

import argparse
import datetime
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
    with open(os.path.join(workdir, "filters.yaml"), "w") as f:
        f.write(FILTERS)
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
        meter_export(config, "run", "--once")
        report(workdir, pushed)
    finally:
        if not args.keep_running:
            server.stop()


if __name__ == "__main__":
    main()
