"""The SQL sink against real PostgreSQL, MariaDB and SQLite databases."""

import datetime

import pytest
import sqlalchemy as sa
from alembic import autogenerate
from alembic import command
from alembic import migration

from meter_export import checkpoint
from meter_export.sources import Filter
from meter_export.sources import MeterSpec
from meter_export.sources import Rejected
from meter_export.sources import Stream
from meter_export.storage import migrate
from meter_export.storage import rows as rows_module
from meter_export.storage import schema
from meter_export.storage.samples import Sink
from tests.samples import T0
from tests.samples import make_sample

STREAM = Stream("gnocchi", Filter("all", (MeterSpec("cpu"),)), MeterSpec("cpu"))
UTC = datetime.UTC


@pytest.fixture
def sink(db_url):
    s = Sink(db_url, batch_size=50)
    migrate.upgrade(s)
    yield s
    s.close()


def rows(sink):
    with sink.engine.connect() as conn:
        return {r.message_id: r for r in conn.execute(sa.select(sink.samples))}


def quarantined(sink):
    with sink.engine.connect() as conn:
        return list(conn.execute(sa.select(sink.quarantine).order_by(sink.quarantine.c.id)))


def test_dbsync_twice_changes_nothing(sink):
    with sink.engine.connect() as conn:
        before = sorted(sa.inspect(conn).get_table_names())
        assert migrate.current_revision(conn) == migrate.head()
    assert migrate.upgrade(sink) == migrate.head()
    with sink.engine.connect() as conn:
        assert sorted(sa.inspect(conn).get_table_names()) == before
    assert {"samples", "checkpoints", "quarantine", "alembic_version"} <= set(before)


def test_samples_round_trip_exactly(sink):
    samples = [make_sample(i) for i in range(120)]
    result = sink.write(samples, STREAM)
    assert (result.written, result.quarantined) == (120, 0)
    stored = rows(sink)
    assert len(stored) == 120
    for s in samples:
        r = stored[s.message_id]
        assert r.timestamp == s.timestamp and r.timestamp.tzinfo is not None
        assert r.recorded_at == s.recorded_at  # microseconds survive on every dialect
        assert r.counter_volume == s.counter_volume
        assert (r.counter_name, r.counter_type, r.counter_unit) == (s.counter_name, s.counter_type, s.counter_unit)
        assert (r.project_id, r.user_id, r.resource_id, r.source) == (s.project_id, s.user_id, s.resource_id, s.source)
        assert r.resource_metadata == s.resource_metadata


def test_awkward_strings_survive(sink):
    sample = make_sample(1, resource_id="tab\there\nnew\\line 'q' \"dq\" é 漢字 🙂", resource_metadata={"k": "a\tb\nc\\d", "é": [1, None]})
    sink.write([sample], STREAM)
    r = rows(sink)[sample.message_id]
    assert r.resource_id == sample.resource_id
    assert r.resource_metadata == sample.resource_metadata


def test_upsert_incoming_row_wins_and_adds_nothing(sink):
    sink.write([make_sample(i) for i in range(10)], STREAM)
    sink.write([make_sample(i, counter_volume=100.0 + i) for i in range(5, 15)], STREAM)
    stored = rows(sink)
    assert len(stored) == 15
    assert [stored[make_sample(i).message_id].counter_volume for i in (0, 5, 14)] == [0.0, 105.0, 114.0]


def test_malformed_samples_are_quarantined_and_the_rest_lands(sink):
    items = [make_sample(1), make_sample(2, counter_volume=float("nan")), Rejected('{"raw": 1}', "bad timestamp", "m-3"), make_sample(4)]
    result = sink.write(items, STREAM)
    assert (result.written, result.quarantined) == (2, 2)
    assert set(rows(sink)) == {make_sample(1).message_id, make_sample(4).message_id}
    q = quarantined(sink)
    assert [r.reason for r in q] == ["counter_volume nan is not a finite number", "bad timestamp"]
    assert q[1].stream == "gnocchi/all/cpu" and q[1].payload == '{"raw": 1}' and q[1].message_id == "m-3"
    assert q[0].message_id == make_sample(2).message_id and '"counter_volume": NaN' in q[0].payload


def test_checkpoint_advances_with_the_batch_and_never_back(sink):
    end = T0 + datetime.timedelta(hours=1)
    sink.write([make_sample(1)], STREAM, advance_to=end)
    assert sink.checkpoint(STREAM.key) == end
    sink.write([make_sample(2)], STREAM, advance_to=T0)
    assert sink.checkpoint(STREAM.key) == end
    sink.write([], STREAM, advance_to=end + datetime.timedelta(hours=1))
    assert sink.checkpoint(STREAM.key) == end + datetime.timedelta(hours=1)
    assert sink.checkpoint(STREAM.key, scope="backfill:x") is None


def test_a_failed_checkpoint_write_rolls_back_the_samples(sink, monkeypatch):
    def broken(*args):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(checkpoint, "advance", broken)
    with pytest.raises(RuntimeError):
        sink.write([make_sample(i) for i in range(80)], STREAM, advance_to=T0)
    assert rows(sink) == {}
    assert sink.checkpoint(STREAM.key) is None


def test_batches_larger_than_batch_size_all_land(sink):
    sink.write([make_sample(i) for i in range(333)], STREAM)
    assert len(rows(sink)) == 333


_REFUSE_HUGE = {
    "sqlite": "CREATE TRIGGER refuse_huge BEFORE INSERT ON samples WHEN NEW.counter_volume > 1e300 "
    "BEGIN SELECT RAISE(ABORT, 'volume too large for this site'); END",
    "postgresql": "ALTER TABLE samples ADD CONSTRAINT refuse_huge CHECK (counter_volume <= 1e300)",
    "mysql": "ALTER TABLE samples ADD CONSTRAINT refuse_huge CHECK (counter_volume <= 1e300)",
}


@pytest.mark.parametrize("new", [False, True], ids=["upsert", "insert-first"])
def test_rows_the_database_refuses_are_isolated_and_quarantined(sink, new):
    # NOTE: a real constraint added by the site (here: a CHECK) refuses one
    # row that passes our own checks; only that row may be lost.
    with sink.engine.begin() as conn:
        conn.exec_driver_sql(_REFUSE_HUGE[sink.engine.dialect.name])
    huge = make_sample(150, counter_volume=1e308)
    items = [make_sample(i) for i in range(100)] + [huge] + [make_sample(i) for i in range(200, 300)]
    result = sink.write(items, STREAM, advance_to=T0, new=new)
    assert (result.written, result.quarantined) == (200, 1)
    stored = rows(sink)
    assert len(stored) == 200 and huge.message_id not in stored
    [q] = quarantined(sink)
    assert q.reason.startswith("refused by the database") and q.message_id == huge.message_id
    assert sink.checkpoint(STREAM.key) == T0


def test_models_match_migrations(db_url):
    sink = Sink(db_url)
    with sink.engine.begin() as conn:
        command.upgrade(migrate._config(conn, sink), "head")  # through the migrations, not create_all
    with sink.engine.connect() as conn:
        context = migration.MigrationContext.configure(conn, opts={"compare_type": True})
        diff = [
            d for d in autogenerate.compare_metadata(context, sink.metadata) if d[0] != "remove_table" or d[1].name != "alembic_version"
        ]
    sink.close()
    assert diff == []


def test_a_bad_sample_read_again_is_quarantined_once(sink):
    # Every pass re-reads [checkpoint - lookback, ...): the same bad sample
    # must not add a quarantine row each time.
    bad = make_sample(9, counter_volume=float("inf"))
    for _ in range(3):
        assert sink.write([bad, Rejected("<html>", "not JSON", None), make_sample(1)], STREAM).quarantined == 2
    assert len(quarantined(sink)) == 2
    other_stream = Stream("gnocchi", Filter("other", (MeterSpec("cpu"),)), MeterSpec("cpu"))
    sink.write([bad], other_stream)
    assert len(quarantined(sink)) == 3


@pytest.mark.parametrize("isolating", [False, True], ids=["plain", "isolating"])
def test_a_deadlock_mid_batch_retries_the_whole_transaction(mysql_url, caplog, isolating):
    # NOTE: InnoDB rolls back the whole transaction of a deadlock victim,
    # savepoints included. The sink once took the failed ROLLBACK TO
    # SAVEPOINT for bad rows and committed the checkpoint without the first
    # batch. Here another writer, heavier so that InnoDB picks the sink as
    # the victim, holds a sample of the sink's second batch and then asks for
    # one of its first. The plain path writes batches in order; the isolating
    # path (with savepoints, after a refusal) pops them from the end.
    import threading
    import time

    sink = Sink(mysql_url, batch_size=2)
    migrate.upgrade(sink)
    a, b, c, d = (make_sample(i) for i in range(4))
    first, second = (c, a) if isolating else (a, c)  # the batches: [a, b], [c, d]
    other = sa.create_engine(sa.engine.make_url(sink.engine.url), poolclass=sa.pool.NullPool)
    holding = threading.Event()

    def heavy_writer():
        with other.connect() as conn:
            trans = conn.begin()
            filler = [make_sample(1000 + i) for i in range(200)] + [second]
            conn.execute(sink.samples.insert(), [dict(s._asdict(), resource_metadata=None) for s in filler])
            holding.set()
            time.sleep(2)  # the sink now holds its first batch and waits for `second`
            try:
                conn.execute(sink.samples.insert(), [dict(first._asdict(), resource_metadata=None)])
            except sa.exc.DBAPIError:
                pass
            trans.rollback()

    thread = threading.Thread(target=heavy_writer)
    thread.start()
    assert holding.wait(30)
    if isolating:
        good, rejected = rows_module.prepare([a, b, c, d])
        result = sink._retry(sink._transaction, good, rejected, STREAM, T0, schema.LIVE_SCOPE, sink._upsert_isolating)
    else:
        result = sink.write([a, b, c, d], STREAM, advance_to=T0)
    thread.join(60)
    assert "Deadlock found" in caplog.text, "no deadlock happened: the test tested nothing"
    assert result.written == 4
    assert set(rows(sink)) == {s.message_id for s in (a, b, c, d)}
    assert sink.checkpoint(STREAM.key) == T0
    other.dispose()
    sink.close()


@pytest.mark.parametrize("stored", [0, 30], ids=["all-new", "some-stored"])
def test_rows_written_as_new_land_exactly_even_if_some_were_stored(sink, stored):
    """new=True is a guess about the rows: where it is wrong (a window read
    again after a crash), the result is still the upsert's."""
    sink.write([make_sample(i, counter_volume=-1.0) for i in range(stored)], STREAM)
    samples = [make_sample(i, counter_volume=100.0 + i) for i in range(120)]
    samples[7] = make_sample(7, counter_volume=107.0, resource_metadata=None)
    samples[8] = make_sample(8, counter_volume=108.0, resource_metadata={"k": "a\tb\n", "é": [1, None], "漢": {"x": 1.5}})
    result = sink.write(samples, STREAM, advance_to=T0, new=True)
    assert (result.written, result.quarantined) == (120, 0)
    got = rows(sink)
    assert len(got) == 120
    for s in samples:
        r = got[s.message_id]
        assert (r.counter_volume, r.timestamp, r.recorded_at, r.resource_metadata) == (
            s.counter_volume,
            s.timestamp,
            s.recorded_at,
            s.resource_metadata,
        )
    assert sink.checkpoint(STREAM.key) == T0


@pytest.mark.parametrize("stored", [0, 1], ids=["all-new", "one-stored"])
def test_on_postgresql_new_rows_are_copied_straight_in_and_upserted_only_on_a_conflict(pg_url, stored):
    sink = Sink(pg_url, batch_size=50)
    try:
        migrate.upgrade(sink)
        sink.write([make_sample(i) for i in range(stored)], STREAM)
        used = []
        for name in ("_writer", "_inserter"):
            writer = getattr(sink, name)
            setattr(sink, name, lambda conn, table, batch, name=name, writer=writer: used.append(name) or writer(conn, table, batch))
        sink.write([make_sample(i, counter_volume=9.0) for i in range(120)], STREAM, new=True)
        assert used == (["_inserter"] * 3 if not stored else ["_inserter", "_writer", "_writer", "_writer"])
        assert {r.counter_volume for r in rows(sink).values()} == {9.0} and len(rows(sink)) == 120
        with sink.engine.connect() as conn:
            # jsonb, as the binary COPY sent it: queryable by key
            query = "SELECT count(*) FROM samples WHERE resource_metadata->'flavor'->>'name' = 'm1.small'"
            assert conn.exec_driver_sql(query).scalar() == 120
    finally:
        sink.close()


def test_on_postgresql_a_samples_commit_does_not_wait_for_the_disk(pg_url):
    """synchronous_commit is off inside the sink's transactions only."""
    sink = Sink(pg_url)
    try:
        migrate.upgrade(sink)
        seen, writer = [], sink._writer

        def watched(conn, table, batch):
            seen.append(conn.exec_driver_sql("SHOW synchronous_commit").scalar())
            return writer(conn, table, batch)

        sink._writer = watched
        sink.write([make_sample(1)], STREAM)
        with sink.engine.connect() as conn:
            after = conn.exec_driver_sql("SHOW synchronous_commit").scalar()
        assert seen == ["off"] and after == "on"
    finally:
        sink.close()


@pytest.mark.parametrize("new", [False, True], ids=["upsert", "insert-first"])
def test_on_postgresql_metadata_keeps_its_text_in_any_client_encoding(pg_url, new):
    """The server reads jsonb in the client encoding: 'é' is stored as 'é'
    on a LATIN1 connection too, by both write paths."""
    sink = Sink(pg_url + "?client_encoding=LATIN1")
    try:
        migrate.upgrade(sink)
        with sink.engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW client_encoding").scalar() == "LATIN1"
        sample = make_sample(1, resource_metadata={"name": "café"})
        assert sink.write([sample], STREAM, new=new).written == 1
        reader = Sink(pg_url)
        try:
            with reader.engine.connect() as conn:
                stored = conn.exec_driver_sql("SELECT message_id, resource_metadata->>'name' FROM samples").all()
        finally:
            reader.close()
        assert stored == [(sample.message_id, "café")]
    finally:
        sink.close()
