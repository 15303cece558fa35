"""storage/entities.py on the three real databases: histories, idempotency, quarantine."""

import datetime
import threading

import pytest
import sqlalchemy as sa

from meter_export.listen import events as ev
from meter_export.storage import entities as entities_mod
from meter_export.storage import migrate
from meter_export.storage.samples import Sink
from tests import notifications as n

UTC = datetime.UTC
IID = "5e1f0c3a-9d47-4b8e-8a34-0b1c2d3e4f50"
VID = "b7c6d5e4-f3a2-4b1c-9d8e-7f6a5b4c3d2e"


def schema(url):
    sink = Sink(url)
    migrate.upgrade(sink)
    sink.close()


@pytest.fixture
def store(db_url):
    schema(db_url)
    store = entities_mod.EntityStore(db_url)
    yield store
    store.close()


def parse(*steps, ids=None):
    return [ev.parse(n.message(*step, message_id=(ids[i] if ids else None))) for i, step in enumerate(steps)]


def t(text):
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC)


def versions(store, entity_id):
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(store.entities).where(store.entities.c.entity_id == entity_id).order_by("version")).all()
    return [r._asdict() for r in rows]


def spans(store, entity_id, field):
    return [(r["start"], r["end"], r[field]) for r in versions(store, entity_id)]


def count(store, table):
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()


INSTANCE_LIFE = [
    n.instance_create(IID, "2026-03-01T10:00:00"),
    n.instance_event("compute.instance.power_off.end", IID, "2026-03-01T12:00:00"),
    n.instance_event("compute.instance.power_on.end", IID, "2026-03-01T13:00:00"),
    n.instance_event("compute.instance.resize.confirm.end", IID, "2026-03-01T14:00:00.123456", flavor="m1.large"),
    n.instance_delete(IID, "2026-03-02T10:00:00"),
]


def test_instance_life_becomes_versions(store):
    result = store.apply(parse(*INSTANCE_LIFE))
    assert (result.events, result.duplicates, result.skipped) == (5, 0, 0)
    rows = versions(store, IID)
    assert [(r["start"], r["end"], r["flavor"], r["power_state"]) for r in rows] == [
        (t("2026-03-01T10:00:00"), t("2026-03-01T12:00:00"), "m1.small", "running"),
        (t("2026-03-01T12:00:00"), t("2026-03-01T13:00:00"), "m1.small", "stopped"),
        (t("2026-03-01T13:00:00"), t("2026-03-01T14:00:00.123456"), "m1.small", "running"),
        (t("2026-03-01T14:00:00.123456"), t("2026-03-02T10:00:00"), "m1.large", "running"),
    ]
    first = rows[0]
    assert (first["entity_type"], first["project_id"], first["name"]) == ("instance", n.PROJECT, "web-1.example.org")
    assert first["image_meta"] == {"distro": "ubuntu", "version": "24.04", "os_type": "linux"}
    assert first["metadata"] == {} and first["last_event"] == t("2026-03-01T12:00:00")


def test_redelivery_changes_nothing(store):
    batch = parse(*INSTANCE_LIFE)
    store.apply(batch)
    before = versions(store, IID)
    result = store.apply(batch[2:] + batch[:1])
    assert (result.events, result.duplicates) == (0, 4)
    assert versions(store, IID) == before
    assert count(store, store.events) == 5


def test_one_at_a_time_in_reverse_gives_the_same_history(store, db_url):
    for parsed in reversed(parse(*INSTANCE_LIFE)):
        store.apply([parsed])
    reverse = [(r["start"], r["end"], r["flavor"], r["power_state"], r["version"]) for r in versions(store, IID)]
    other = "e" + IID[1:]
    store.apply(parse(*[(s[0], dict(s[1], instance_id=other), s[2]) for s in INSTANCE_LIFE]))
    assert [(r["start"], r["end"], r["flavor"], r["power_state"], r["version"]) for r in versions(store, other)] == reverse


def test_volume_life_with_types_and_attachments(store):
    store.apply(parse(("volume_type.create", n.volume_type_payload("8f1c6a9e-type-ssd", "ssd"), "2026-03-01T09:00:00")))
    life = parse(
        n.volume_create(VID, "2026-03-01T10:00:00", size=50),
        n.volume_event("volume.attach.end", VID, "2026-03-01T11:00:00", volume_attachment=[n.attachment(IID, VID)]),
        n.volume_event("volume.resize.end", VID, "2026-03-01T12:00:00", size=80),
        n.volume_event("volume.detach.end", VID, "2026-03-01T13:00:00", volume_attachment=[]),
        n.volume_event("volume.update.end", VID, "2026-03-01T13:30:00", display_name="archive"),
        n.volume_event("volume.delete.end", VID, "2026-03-01T15:00:00"),
    )
    store.apply(life)
    rows = versions(store, VID)
    assert [(r["start"], r["end"], r["size"], r["attached_to"], r["name"]) for r in rows] == [
        (t("2026-03-01T10:00:00"), t("2026-03-01T11:00:00"), 50, [], "data-1"),
        (t("2026-03-01T11:00:00"), t("2026-03-01T12:00:00"), 50, [IID], "data-1"),
        (t("2026-03-01T12:00:00"), t("2026-03-01T13:00:00"), 80, [IID], "data-1"),
        (t("2026-03-01T13:00:00"), t("2026-03-01T15:00:00"), 80, [], "archive"),
    ]
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(store.volume_types.c.volume_type_name)).scalars().all() == ["ssd"]


def test_periodic_exists_that_changes_nothing_is_not_kept(store):
    store.apply(parse(n.volume_create(VID, "2026-03-01T10:00:00")))
    for hour in range(11, 15):
        store.apply(parse(n.volume_event("volume.exists", VID, "2026-03-01T%d:00:00" % hour)))
    assert count(store, store.events) == 1
    store.apply(parse(n.volume_event("volume.exists", VID, "2026-03-01T16:00:00", display_name="renamed")))
    assert count(store, store.events) == 2
    assert spans(store, VID, "name") == [(t("2026-03-01T10:00:00"), None, "renamed")]


def test_malformed_goes_to_quarantine_once_and_the_rest_lands(store):
    bad = n.message(*n.instance_create(IID, "2026-03-01T10:00:00"), message_id="bad-1")
    bad["payload"]["created_at"] = "soon"
    good = ev.parse(n.message(*n.volume_create(VID, "2026-03-01T10:00:00")))
    for _ in range(2):
        result = store.apply([ev.parse(bad), good])
    assert result.quarantined == 1
    with store.engine.connect() as conn:
        [q] = conn.execute(sa.select(store.quarantine)).all()
    assert q.stream == "listen" and q.message_id == "bad-1"
    assert q.reason == "compute.instance.create.end: payload.created_at 'soon' is not an ISO 8601 time"
    assert '"soon"' in q.payload
    assert len(versions(store, VID)) == 1


def test_a_failure_before_commit_leaves_nothing(store):
    def boom():
        raise RuntimeError("killed between receive and commit")

    with pytest.raises(RuntimeError):
        store.apply(parse(*INSTANCE_LIFE), before_commit=boom)
    assert count(store, store.events) == 0 and count(store, store.entities) == 0 and count(store, store.heads) == 0


def test_concurrent_writers_of_one_entity_agree(store, db_url):
    # NOTE: two listener threads (or processes) may hold events of the same
    # entity at once; the head row lock serialises them.
    events = parse(*INSTANCE_LIFE)
    others = [entities_mod.EntityStore(db_url) for _ in events]
    errors = []

    def write(s, e):
        try:
            s.apply([e])
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=pair) for pair in zip(others, events, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for other in others:
        other.close()
    assert errors == []
    assert [r["flavor"] for r in versions(store, IID)] == ["m1.small", "m1.small", "m1.small", "m1.large"]


def test_a_notification_the_database_refuses_is_quarantined_alone(pg_url):
    # NOTE: a site's own CHECK constraint refuses one version that passes our
    # checks; it must not come back from the queue forever, nor block the rest.
    schema(pg_url)
    store = entities_mod.EntityStore(pg_url)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE entities ADD CONSTRAINT small_volumes CHECK (size < 1000)")
    huge = "f" + VID[1:]
    batch = parse(
        n.volume_create(VID, "2026-03-01T10:00:00", size=50), n.volume_create(huge, "2026-03-01T10:00:00", size=5000), *INSTANCE_LIFE
    )
    result = store.apply(batch)
    assert (result.events, result.quarantined) == (6, 1)
    assert len(versions(store, VID)) == 1 and len(versions(store, IID)) == 4 and versions(store, huge) == []
    with store.engine.connect() as conn:
        [q] = conn.execute(sa.select(store.quarantine)).all()
    assert q.reason.startswith("volume.create.end: refused by the database: ") and "small_volumes" in q.reason
    assert q.message_id == batch[1].message_id
    store.close()
