"""storage/entity_reads.py: what the Almanach routes answer, on the three databases."""

import datetime
from decimal import Decimal

import pytest

from meter_export.listen import events as ev
from meter_export.storage import entities as entities_mod
from meter_export.storage import entity_reads
from meter_export.storage import migrate
from meter_export.storage.samples import Sink
from tests import notifications as n

UTC = datetime.UTC
IID = "5e1f0c3a-9d47-4b8e-8a34-0b1c2d3e4f50"
VID = "b7c6d5e4-f3a2-4b1c-9d8e-7f6a5b4c3d2e"


@pytest.fixture
def engine(db_url):
    sink = Sink(db_url)
    migrate.upgrade(sink)
    store = entities_mod.EntityStore(None, engine=sink.engine)
    steps = [
        ("volume_type.create", n.volume_type_payload("8f1c6a9e-type-ssd", "ssd"), "2026-03-01T09:00:00"),
        n.instance_create(IID, "2026-03-01T10:00:00"),
        n.instance_event("compute.instance.power_off.end", IID, "2026-03-01T11:00:00.250000"),
        n.instance_event("compute.instance.power_on.end", IID, "2026-03-01T12:00:00"),
        n.instance_event("compute.instance.resize.confirm.end", IID, "2026-03-01T14:00:00", flavor="m1.large"),
        n.volume_create(VID, "2026-03-02T10:00:00", size=50),
        n.volume_event("volume.delete.end", VID, "2026-03-03T10:00:00"),
    ]
    store.apply([ev.parse(n.message(*step)) for step in steps])
    yield sink.engine
    sink.close()


def test_entities_of_a_project_in_a_period(engine):
    reader = entity_reads.EntityReader()
    start, end = entity_reads.parse_period("2026-03-01 12:00:00.000000", "2026-03-02 10:00:00.000000")
    with engine.connect() as conn:
        found = reader.of_project(conn, n.PROJECT, start, end)
        instances = reader.of_project(conn, n.PROJECT, start, end, "instance")
        other = reader.of_project(conn, "nobody", start, end)
    # closed overlap (Almanach's): the stopped version ending exactly at the
    # start and the volume starting exactly at the end both count
    assert [(e["entity_id"], e["version"]) for e in found] == [(IID, 2), (IID, 3), (IID, 4), (VID, 1)]
    assert [e["entity_type"] for e in instances] == ["instance"] * 3 and other == []
    with engine.connect() as conn:
        first = reader.history(conn, IID)[0]
    second, volume = found[2:]
    assert first == {
        "entity_id": IID,
        "entity_type": "instance",
        "project_id": n.PROJECT,
        "name": "web-1.example.org",
        "start": "2026-03-01 10:00:00+00:00",
        "end": "2026-03-01 11:00:00.250000+00:00",
        "last_event": "2026-03-01 11:00:00.250000+00:00",
        "version": 1,
        "flavor": "m1.small",
        "os": {"distro": "ubuntu", "version": "24.04", "os_type": "linux"},
        "image_meta": {"distro": "ubuntu", "version": "24.04", "os_type": "linux"},
        "metadata": {},
        "power_state": "running",
    }
    assert (second["flavor"], second["end"]) == ("m1.large", None)
    assert (volume["volume_type"], volume["size"], volume["attached_to"], volume["end"]) == ("ssd", 50, [], "2026-03-03 10:00:00+00:00")


def test_one_entity_types_and_info(engine):
    reader = entity_reads.EntityReader()
    with engine.connect() as conn:
        assert [v["flavor"] for v in reader.history(conn, IID)] == ["m1.small", "m1.small", "m1.small", "m1.large"]
        with pytest.raises(entity_reads.NotFound):
            reader.history(conn, "unknown")
        assert reader.all_volume_types(conn) == [{"volume_type_id": "8f1c6a9e-type-ssd", "volume_type_name": "ssd"}]
        assert reader.volume_type(conn, "8f1c6a9e-type-ssd")["volume_type_name"] == "ssd"
        with pytest.raises(entity_reads.NotFound):
            reader.volume_type(conn, "nope")
        assert reader.info(conn, "1.2") == {"info": {"version": "1.2"}, "database": {"all_entities": 5, "active_entities": 1}}


def test_uptime_per_flavor_to_the_microsecond(engine):
    # running 10:00-11:00:00.25 and 12:00-14:00 on m1.small, 14:00-now on m1.large
    reader = entity_reads.EntityReader()
    start = datetime.datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
    end = datetime.datetime(2026, 3, 1, 15, 0, tzinfo=UTC)
    with engine.connect() as conn:
        rows = reader.uptime(conn, start, end, project_id=n.PROJECT)
        assert reader.uptime(conn, start, end, project_id="nobody") == []
    assert [(r["flavor"], r["seconds"]) for r in rows] == [
        ("m1.large", Decimal("3600")),
        ("m1.small", Decimal("1800.25") + Decimal("7200")),
    ]
