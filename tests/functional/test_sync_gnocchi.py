"""meter-export against the real Gnocchi 4.7.1, through its real CLI.

Each test seeds a fresh project (its own uuid) so tests never see each
other's data, and compares the samples table with what was pushed: same
resources, meters, timestamps and values, no extra row.
"""

import datetime
import uuid

import pytest
from telemetry_stack import seed

from tests.functional import e2e

UTC = datetime.UTC
HOUR = datetime.timedelta(hours=1)
POLICY = "mx-e2e-5min"
METERS = {"cpu": "ns", "memory": "MB"}
NOW_HOUR = datetime.datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


@pytest.fixture(scope="module")
def client(gnocchi_server):
    client = seed.make_client(gnocchi_server.endpoint)
    seed.ensure_resource_types(client)
    seed.ensure_archive_policy(client, POLICY, granularity=300)
    return client


def filters_for(project_id):
    return "filters:\n  - name: p\n    query: {project_id: %s, resource_type: instance}\n    meters: [cpu, memory]\n" % project_id


def credentials(server):
    return {"auth_type": "gnocchi-basic", "user": "admin", "endpoint": server.endpoint}


def expected(seeded_list, start=None, end=None):
    rows = set()
    for seeded in seeded_list:
        for (rid, meter), points in seeded.points.items():
            rows |= {(rid, meter, ts, value) for ts, value in points if (start is None or ts >= start) and (end is None or ts < end)}
    return rows


def landed(db_url):
    rows = e2e.table(db_url)
    assert len({r[0] for r in rows}) == len(rows)
    return {(rid, meter, ts, value) for _, rid, meter, ts, value in rows}


def seed_project(client, server, project_id, start, end, resources=2):
    seeded = seed.seed_project(client, project_id, METERS, resources=resources, start=start, end=end, archive_policy=POLICY)
    server.wait_processed(timeout=120)
    return seeded


def test_run_once_exports_exactly_the_source_and_a_rerun_changes_nothing(db_url, client, gnocchi_server, tmp_path):
    project = str(uuid.uuid4())
    first = seed_project(client, gnocchi_server, project, NOW_HOUR - 8 * HOUR, NOW_HOUR - 2 * HOUR)
    config = e2e.write_config(tmp_path, db_url, credentials(gnocchi_server), filters_for(project), lookback=4 * 3600)
    e2e.cli(config, "dbsync")
    e2e.cli(config, "run", "--once")
    assert landed(db_url) == expected([first])
    before = sorted(e2e.table(db_url))
    e2e.cli(config, "run", "--once")
    assert sorted(e2e.table(db_url)) == before
    # New samples (a new resource, and later points) arrive on the next run,
    # including points behind the checkpoint but inside lookback (4 h: the
    # hour is taken now, since the module's may be long past in a full suite).
    now_hour = e2e.this_hour()
    later = seed_project(client, gnocchi_server, project, now_hour - 150 * datetime.timedelta(minutes=1), now_hour, resources=1)
    e2e.cli(config, "run", "--once")
    assert landed(db_url) == expected([first, later])


def test_backfill_exports_a_range_and_leaves_live_checkpoints_alone(db_url, client, gnocchi_server, tmp_path):
    project = str(uuid.uuid4())
    seeded = seed_project(client, gnocchi_server, project, NOW_HOUR - 10 * HOUR, NOW_HOUR - 1 * HOUR)
    config = e2e.write_config(tmp_path, db_url, credentials(gnocchi_server), filters_for(project), max_window=1800)
    e2e.cli(config, "dbsync")
    start, end = NOW_HOUR - 8 * HOUR, NOW_HOUR - 3 * HOUR
    result = e2e.cli(config, "backfill", "--start", start.isoformat(), "--end", end.isoformat())
    assert "windows" in result.stderr  # progress lines
    assert landed(db_url) == expected([seeded], start, end)
    assert e2e.checkpoints(db_url) == {}
    # Running it again is a no-op: its own checkpoints say it is done.
    again = e2e.cli(config, "backfill", "--start", start.isoformat(), "--end", end.isoformat())
    assert "0 windows to do" in again.stderr
    assert landed(db_url) == expected([seeded], start, end)


def test_worker_stopped_mid_pass_resumes_from_its_checkpoint(pg_url, client, gnocchi_server, tmp_path):
    project = str(uuid.uuid4())
    seeded = seed_project(client, gnocchi_server, project, NOW_HOUR - 24 * HOUR, NOW_HOUR, resources=3)
    config = e2e.write_config(tmp_path, pg_url, credentials(gnocchi_server), filters_for(project), max_window=600, delay=3600)
    e2e.cli(config, "dbsync")
    worker = e2e.start_worker(config)
    assert e2e.wait_for(lambda: len(e2e.checkpoints(pg_url)) > 0, timeout=60)
    code, err = e2e.stop_worker(worker)
    assert code == 0, err[-3000:]
    partial = e2e.checkpoints(pg_url)
    assert partial and min(partial.values()) < NOW_HOUR, "the worker finished before it was stopped; nothing was tested"
    e2e.cli(config, "run", "--once")
    assert landed(pg_url) == expected([seeded])
