"""The real daemon: readiness, several workers, /metrics, SIGTERM."""

import datetime
import os
import socket
import urllib.request
import uuid

from telemetry_stack import gnocchi as gnocchi_stack
from telemetry_stack import seed

from tests.functional import e2e

UTC = datetime.UTC
HOUR = datetime.timedelta(hours=1)
NOW_HOUR = datetime.datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
METERS = {"cpu": "ns", "memory": "MB", "vcpus": "vcpu", "disk.root.size": "GB"}


def test_daemon_notifies_splits_streams_serves_metrics_and_stops_on_sigterm(pg_url, gnocchi_server, tmp_path):
    client = seed.make_client(gnocchi_server.endpoint)
    seed.ensure_resource_types(client)
    seed.ensure_archive_policy(client, "mx-worker-5min", granularity=300)
    project = str(uuid.uuid4())
    seeded = seed.seed_project(
        client, project, METERS, resources=2, start=NOW_HOUR - 3 * HOUR, end=NOW_HOUR, archive_policy="mx-worker-5min"
    )
    gnocchi_server.wait_processed(timeout=120)
    filters = "filters:\n  - name: p\n    query: {project_id: %s, resource_type: instance}\n    meters: [%s]\n" % (
        project,
        ", ".join(METERS),
    )
    credentials = {"auth_type": "gnocchi-basic", "user": "admin", "endpoint": gnocchi_server.endpoint}
    port = gnocchi_stack.free_port()
    config = e2e.write_config(tmp_path, pg_url, credentials, filters, workers=2, delay=3600)
    with open(config, "a") as f:
        f.write("[metrics]\nport = %d\n" % port)
    e2e.cli(config, "dbsync")

    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify_path = str(tmp_path / "notify.sock")
    notify.bind(notify_path)
    notify.settimeout(60)
    env = dict(os.environ, NOTIFY_SOCKET=notify_path, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    worker = e2e.start_worker(config, env=env)
    try:
        assert b"READY=1" in notify.recv(1024)
        done = lambda: [c for c in e2e.checkpoints(pg_url).values() if c >= NOW_HOUR]  # noqa: E731
        assert e2e.wait_for(lambda: len(done()) == len(METERS), timeout=180)
        assert len(e2e.table(pg_url)) == sum(len(p) for p in seeded.points.values())
        assert e2e.wait_for(lambda: "last_run_end" in _scrape(port), timeout=30)
        metrics = _scrape(port)
    finally:
        code, err = e2e.stop_worker(worker)
    assert code == 0, err[-3000:]
    for name in ("last_run_start", "last_run_duration", "samples_written_total"):
        assert "meter_export_collector_" + name in metrics
    lags = [line for line in metrics.splitlines() if line.startswith("meter_export_collector_checkpoint_lag_seconds{")]
    assert len(lags) == len(METERS) and all(float(line.split()[-1]) < 3600 for line in lags)
    # Both workers had streams: the split is by a stable hash, every stream once.
    started = [line for line in err.splitlines() if "Sync worker" in line and "started with" in line]
    assert len(started) == 2 and sum(int(line.split("started with ")[1].split()[0]) for line in started) == len(METERS)


def _scrape(port):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as response:  # noqa: S310 (http only)
            return response.read().decode()
    except OSError:
        return ""
