"""The missing_telemetry view on the three databases: hours an entity existed
(an instance: running) without one sample of its mapped meters."""

import datetime

import sqlalchemy as sa

from meter_export import checkpoint
from meter_export import metrics
from meter_export.listen import events as ev
from meter_export.storage import entities as entities_mod
from meter_export.storage import migrate
from meter_export.storage.samples import Sink
from tests import notifications as n
from tests.samples import make_sample

UTC = datetime.UTC
HOUR = datetime.timedelta(hours=1)
MINUTE = datetime.timedelta(minutes=1)
IID = "5e1f0c3a-9d47-4b8e-8a34-0b1c2d3e4f50"
VID = "b7c6d5e4-f3a2-4b1c-9d8e-7f6a5b4c3d2e"


def _iso(value):
    return value.strftime("%Y-%m-%dT%H:%M:%S")


def _rows(engine):
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT entity_id, hour_start, hour_end FROM missing_telemetry ORDER BY entity_id, hour_start")).all()
    return [(r[0], _aware(r[1]), _aware(r[2])) for r in rows]


def _aware(value):
    # NOTE: a view column has no declared type: SQLite hands text back,
    # MariaDB a naive datetime, PostgreSQL an aware one.
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def test_hours_without_samples_are_listed(db_url):
    sink = Sink(db_url)
    migrate.upgrade(sink)
    store = entities_mod.EntityStore(None, engine=sink.engine)
    store.set_expected_meters({"instance": ["cpu", "vcpus"], "volume": ["volume.size"]})
    top = datetime.datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    steps = [
        n.instance_create(IID, _iso(top - 5 * HOUR)),
        n.instance_event("compute.instance.power_off.end", IID, _iso(top - 2 * HOUR)),
        n.volume_create(VID, _iso(top - 3 * HOUR + 30 * MINUTE)),
    ]
    store.apply([ev.parse(n.message(*step)) for step in steps])
    project = n.PROJECT
    samples = [
        make_sample(1, counter_name="cpu", project_id=project, resource_id=IID, timestamp=top - 5 * HOUR + MINUTE * 10),
        make_sample(2, counter_name="vcpus", project_id=project, resource_id=IID, timestamp=top - 3 * HOUR + MINUTE * 30),
        # not a mapped meter, another project's resource: neither counts
        make_sample(3, counter_name="memory", project_id=project, resource_id=IID, timestamp=top - 4 * HOUR + MINUTE * 5),
        make_sample(4, counter_name="cpu", project_id="other", resource_id=IID, timestamp=top - 4 * HOUR + MINUTE * 5),
    ]
    assert sink.write(samples).written == 4
    # Instance: running [top-5h, top-2h): three whole hours, one without samples.
    # Volume: from top-2h30 on, no samples: the whole hours top-2h and top-1h.
    assert _rows(sink.engine) == [
        (IID, top - 4 * HOUR, top - 3 * HOUR),
        (VID, top - 2 * HOUR, top - HOUR),
        (VID, top - HOUR, top),
    ]
    # Hours the sync has not reached yet are not expected to have samples.
    with sink.engine.begin() as conn:
        checkpoint.advance(conn, sink.checkpoints, "live", ("gnocchi", "all", "cpu"), top - HOUR, top)
    assert _rows(sink.engine) == [(IID, top - 4 * HOUR, top - 3 * HOUR), (VID, top - 2 * HOUR, top - HOUR)]
    [family] = metrics.MissingTelemetryCollector(sink).collect()
    assert {s.labels["entity_type"]: s.value for s in family.samples} == {"instance": 1, "volume": 1}
    sink.close()
