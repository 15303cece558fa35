"""meter-export against the real Ceilometer 9.0.7 v2 API, through its real CLI.

Each test uses its own meter and project, and compares the samples table
with what the API stores: same message_ids, volumes and timestamps, nothing
extra. The page size is small so bursts sharing one timestamp straddle pages.
"""

import datetime
import uuid

import pytest
from telemetry_stack import ceilometer as stack

from tests.functional import e2e

UTC = datetime.UTC
NOW_HOUR = datetime.datetime.now(UTC).replace(minute=0, second=0, microsecond=0, tzinfo=None)
MINUTE = datetime.timedelta(minutes=1)


def credentials(server, strategy):
    return {
        "_source": "driver = ceilometer\n[ceilometer]\npage_size = 7\nstrategy = %s" % strategy,
        "auth_type": "none",
        "endpoint": server.endpoint,
    }


def filters_for(meter, project):
    return "filters:\n  - name: p\n    query: {project_id: %s}\n    meters: [%s]\n" % (project, meter)


def bursts(meter, project, start, count, burst=20):
    samples = stack.burst_samples(meter, start, count, burst=burst, step=MINUTE, projects=(project,))
    for s in samples:
        s["message_id"] = str(uuid.uuid4())
    return samples


def expected(seeded, start=None, end=None):
    return {
        s["message_id"]: (s["timestamp"].replace(tzinfo=UTC), s["counter_volume"])
        for s in seeded
        if (start is None or s["timestamp"] >= start) and (end is None or s["timestamp"] < end)
    }


def landed(db_url):
    rows = e2e.table(db_url, columns=("message_id", "timestamp", "counter_volume"))
    result = {mid: (ts, volume) for mid, ts, volume in rows}
    assert len(result) == len(rows)
    return result


@pytest.mark.parametrize("strategy", ["keyset", "desc"])
def test_run_once_exports_exactly_the_source_then_new_and_late_samples(db_url, ceilometer_server, tmp_path, strategy):
    meter, project = "e2e." + uuid.uuid4().hex[:8], "p-" + uuid.uuid4().hex[:8]
    seeded = bursts(meter, project, NOW_HOUR - 6 * 60 * MINUTE, 400)
    seeded.append(dict(seeded[33]))  # one message_id stored twice by the API
    seeded.append(stack.meter_message("other." + meter, NOW_HOUR - 60 * MINUTE, 1.0, project_id=project))  # not listed
    ceilometer_server.seed(seeded)
    config = e2e.write_config(tmp_path, db_url, credentials(ceilometer_server, strategy), filters_for(meter, project), lookback=2 * 3600)
    e2e.cli(config, "dbsync")
    e2e.cli(config, "run", "--once")
    want = expected([s for s in seeded if s["counter_name"] == meter])
    assert landed(db_url) == want
    e2e.cli(config, "run", "--once")
    assert landed(db_url) == want
    # Later samples, a burst right now, and a late one stored now for an
    # hour ago (behind the checkpoint, inside lookback) all arrive.
    later = bursts(meter, project, datetime.datetime.utcnow() - 3 * MINUTE, 60)
    late = [stack.meter_message(meter, datetime.datetime.utcnow() - 60 * MINUTE, 42.0, project_id=project)]
    ceilometer_server.seed(later + late)
    e2e.cli(config, "run", "--once")
    assert landed(db_url) == {**want, **expected(later + late, end=datetime.datetime.utcnow())}


def test_backfill_exports_a_range(db_url, ceilometer_server, tmp_path):
    meter, project = "bf." + uuid.uuid4().hex[:8], "p-" + uuid.uuid4().hex[:8]
    seeded = bursts(meter, project, NOW_HOUR - 10 * 60 * MINUTE, 500, burst=25)
    ceilometer_server.seed(seeded)
    config = e2e.write_config(tmp_path, db_url, credentials(ceilometer_server, "auto"), filters_for(meter, project), max_window=900)
    e2e.cli(config, "dbsync")
    start, end = NOW_HOUR - 9 * 60 * MINUTE, NOW_HOUR - 7 * 60 * MINUTE
    e2e.cli(config, "backfill", "--start", start.isoformat() + "Z", "--end", end.isoformat() + "Z")
    assert landed(db_url) == expected(seeded, start, end)
    assert e2e.checkpoints(db_url) == {}
