"""POST /collect_usage makes the running worker start a pass now, not after [sync] delay."""

import datetime
import uuid

from telemetry_stack import seed

from tests.functional import api_helpers
from tests.functional import e2e

HOUR = datetime.timedelta(hours=1)
METERS = {"vcpus": "vcpu"}


def test_collect_usage_wakes_the_sleeping_worker(pg_url, gnocchi_server, tmp_path):
    # NOTE(tests): the hour is taken now, not at collection, and lookback
    # (3 h) reaches the second hour's first point for two hours after it: a
    # full suite reaches this test long after it collected the module, and
    # the first pass can end in the next hour.
    now_hour = e2e.this_hour()
    client = seed.make_client(gnocchi_server.endpoint)
    seed.ensure_resource_types(client)
    seed.ensure_archive_policy(client, "mx-wake-5min", granularity=300)
    project = str(uuid.uuid4())
    first = seed.seed_project(
        client, project, METERS, resources=1, start=now_hour - 2 * HOUR, end=now_hour - HOUR, archive_policy="mx-wake-5min"
    )
    gnocchi_server.wait_processed(timeout=120)
    filters = "filters:\n  - name: p\n    query: {project_id: %s, resource_type: instance}\n    meters: [vcpus]\n" % project
    credentials = {"auth_type": "gnocchi-basic", "user": "admin", "endpoint": gnocchi_server.endpoint}
    config = e2e.write_config(tmp_path, pg_url, credentials, filters, delay=3600, lookback=3 * 3600)
    with open(config, "a") as f:
        f.write("[api]\nwake_poll = 1\nauth_strategy = static\nadmin_tokens = %s\n" % api_helpers.ADMIN)
    e2e.cli(config, "dbsync")
    worker = e2e.start_worker(config)
    try:
        count = sum(len(p) for p in first.points.values())
        assert e2e.wait_for(lambda: len(e2e.table(pg_url)) == count, timeout=120)
        # usage that arrives after the pass: the worker sleeps for an hour now
        second = seed.seed_project(client, project, METERS, resources=1, start=now_hour - HOUR, end=now_hour, archive_policy="mx-wake-5min")
        gnocchi_server.wait_processed(timeout=120)
        count += sum(len(p) for p in second.points.values())
        assert not e2e.wait_for(lambda: len(e2e.table(pg_url)) == count, timeout=3)
        from meter_export import service
        from meter_export.api import app as app_mod

        api = api_helpers.Api(app_mod.make_app(service.prepare_service(["--config-file", config])))
        assert api.call("POST", "/collect_usage")[0] == 202
        assert e2e.wait_for(lambda: len(e2e.table(pg_url)) == count, timeout=60)
    finally:
        code, err = e2e.stop_worker(worker)
    assert code == 0, err[-3000:]
