"""The one table of dialect rules, compiled for every URL form we accept."""

import pytest
import sqlalchemy as sa
from sqlalchemy.schema import CreateTable

from meter_export.storage import dialects
from meter_export.storage import engine
from meter_export.storage import schema


def _dialect(url):
    return engine.dress_url(url).get_dialect()()


def _ddl(url, table):
    return str(CreateTable(schema.make_metadata().tables[table]).compile(dialect=_dialect(url)))


@pytest.mark.parametrize("url", ["mysql://u@h/d", "mariadb://u@h/d", "mysql+pymysql://u@h/d", "mariadb+pymysql://u@h/d"])
def test_mysql_and_mariadb_urls_get_the_same_ddl(url):
    assert dialects.family(_dialect(url)) == "mysql"
    checkpoints = _ddl(url, "checkpoints")
    assert checkpoints.count("DATETIME(6)") == 2, checkpoints
    quarantine = _ddl(url, "quarantine")
    assert "quarantined_at DATETIME(6)" in quarantine and "payload LONGTEXT" in quarantine, quarantine
    samples = _ddl(url, "samples")
    assert samples.count("DATETIME(6)") == 2 and "resource_metadata JSON" in samples, samples


def test_postgresql_keeps_timezones_and_jsonb():
    samples = _ddl("postgresql://u@h/d", "samples")
    assert samples.count("TIMESTAMP WITH TIME ZONE") == 2 and "JSONB" in samples


def test_sqlite_keeps_json_as_text():
    samples = _ddl("sqlite://", "samples")
    assert "resource_metadata TEXT" in samples


def test_unsupported_database_is_refused():
    with pytest.raises(sa.exc.ArgumentError, match="unsupported database 'oracle'"):
        engine.dress_url("oracle://u@h/d")


@pytest.mark.parametrize("name", ["postgresql", "mysql", "mariadb", "sqlite"])
def test_every_family_has_every_rule(name):
    rules = dialects.rules(name)
    insert = rules.insert(schema.make_metadata().tables["checkpoints"])
    assert rules.upsert(insert, ["scope"], ["updated_at"]) is not None
    assert rules.insert_ignore(insert, ["scope"]) is not None


def test_an_sqlite_file_gets_wal_a_larger_page_cache_and_a_lifo_pool(tmp_path):
    """WAL and the 16 MiB page cache on every connection; the pool hands the
    connection just returned to the next write, so one cache stays warm."""
    eng = engine.make_engine("sqlite:///%s" % (tmp_path / "p.sqlite"))
    try:
        with eng.connect() as conn:
            pragmas = {p: conn.exec_driver_sql("PRAGMA %s" % p).scalar() for p in ("journal_mode", "synchronous", "cache_size")}
        assert pragmas == {"journal_mode": "wal", "synchronous": 1, "cache_size": -16384}
        first, second = eng.connect(), eng.connect()
        first_dbapi = first.connection.dbapi_connection
        second.close()
        first.close()
        with eng.connect() as again:
            assert again.connection.dbapi_connection is first_dbapi
    finally:
        eng.dispose()
    assert isinstance(engine.make_engine("sqlite://").pool, sa.pool.SingletonThreadPool)
