"""Dialect rules on the real databases: mariadb:// and mysql:// alike, and
microseconds kept by every timestamp column on every dialect."""

import datetime

import pytest
import sqlalchemy as sa
from alembic import command

from meter_export import checkpoint
from meter_export.sources import Rejected
from meter_export.storage import migrate
from meter_export.storage.samples import Sink
from tests.functional.test_sink import STREAM
from tests.samples import make_sample

UTC = datetime.UTC
T = datetime.datetime(2026, 11, 30, 23, 59, 59, 123456, tzinfo=UTC)


@pytest.fixture(params=["mysql", "mariadb"])
def mysql_family_url(request, mysql_url):
    return request.param + mysql_url[len("mysql") :]


def _precision(sink, table, column):
    query = sa.text(
        "SELECT datetime_precision, data_type FROM information_schema.columns "
        "WHERE table_schema = DATABASE() AND table_name = :t AND column_name = :c"
    )
    with sink.engine.connect() as conn:
        return tuple(conn.execute(query, {"t": table, "c": column}).one())


def _schema(url):
    sink = Sink(url)
    migrate.upgrade(sink)
    return sink


def test_mysql_and_mariadb_urls_make_the_same_schema(mysql_family_url):
    sink = _schema(mysql_family_url)
    try:
        for table, column in (("checkpoints", "complete_until"), ("checkpoints", "updated_at"), ("quarantine", "quarantined_at")):
            assert _precision(sink, table, column) == (6, "datetime"), (table, column)
        for column in ("timestamp", "recorded_at"):
            assert _precision(sink, "samples", column) == (6, "datetime")
        assert _precision(sink, "quarantine", "payload")[1] == "longtext"
    finally:
        sink.close()


def test_every_timestamp_keeps_its_microseconds(db_url):
    sink = _schema(db_url)
    try:
        sample = make_sample(1, timestamp=T, recorded_at=T + datetime.timedelta(microseconds=1))
        big = Rejected("x" * 70000, "too big for a TEXT column", "m-1")
        sink.write([sample, big], STREAM, advance_to=T)
        with sink.engine.connect() as conn:
            row = conn.execute(sa.select(sink.samples)).one()
            assert (row.timestamp, row.recorded_at) == (sample.timestamp, sample.recorded_at)
            assert checkpoint.get(conn, sink.checkpoints, "live", STREAM.key) == T
            quarantined = conn.execute(sa.select(sink.quarantine)).one()
            assert len(quarantined.payload) == 70000
            assert quarantined.quarantined_at.tzinfo is not None
    finally:
        sink.close()


def test_dbsync_repairs_a_schema_made_through_mariadb_before_0002(mysql_url):
    url = "mariadb" + mysql_url[len("mysql") :]
    sink = Sink(url)
    try:
        with sink.engine.begin() as conn:
            command.upgrade(migrate._config(conn, sink), "0001")
            # What revision 0001 made through a mariadb:// URL before the fix.
            for table, column, null in (("checkpoints", "complete_until", "NOT NULL"), ("samples", "timestamp", "NOT NULL")):
                conn.exec_driver_sql("ALTER TABLE %s MODIFY `%s` DATETIME %s" % (table, column, null))
            conn.exec_driver_sql("ALTER TABLE quarantine MODIFY payload TEXT NOT NULL")
        assert _precision(sink, "checkpoints", "complete_until") == (0, "datetime")
        assert migrate.upgrade(sink) == migrate.head()
        assert _precision(sink, "checkpoints", "complete_until") == (6, "datetime")
        assert _precision(sink, "samples", "timestamp") == (6, "datetime")
        assert _precision(sink, "quarantine", "payload")[1] == "longtext"
    finally:
        sink.close()
