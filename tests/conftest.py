"""Shared fixtures: a fresh real database per test, and the CI no-skip rule.

Database servers come from environment variables, defaulting to the local
services of a development machine:

- METER_EXPORT_TEST_PG_URL     (postgresql://postgres@127.0.0.1:5432/test)
- METER_EXPORT_TEST_MYSQL_URL  (mysql://root@127.0.0.1:3306/test)

Each test gets its own database, created on that server and dropped after.
When a server is absent the test is skipped with a loud reason, except under
CI=true where any skipped test fails the run (see pytest_sessionfinish).
"""

import os
import sys
import uuid

import pytest
import sqlalchemy as sa

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

PG_URL = os.environ.get("METER_EXPORT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("METER_EXPORT_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")

IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(what, error):
    """Skip loudly, or fail under CI where nothing may be skipped."""
    message = "%s is not available: %s" % (what, error)
    if IN_CI:
        pytest.fail("CI=true and " + message)
    pytest.skip(message)


def _admin_engine(url):
    from meter_export.storage import engine as storage_engine

    return sa.create_engine(storage_engine.dress_url(url), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


def _fresh_server_database(url):
    name = "mx_test_" + uuid.uuid4().hex[:12]
    admin = _admin_engine(url)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("CREATE DATABASE " + name))
    except Exception as e:
        unavailable(url.split("://")[0] + " at " + url.split("@")[-1], e)
    new_url = sa.engine.make_url(url).set(database=name).render_as_string(hide_password=False)
    return admin, name, new_url


def _drop(admin, name, force):
    with admin.connect() as conn:
        conn.execute(sa.text("DROP DATABASE IF EXISTS %s%s" % (name, force)))
    admin.dispose()


@pytest.fixture
def pg_url():
    admin, name, url = _fresh_server_database(PG_URL)
    yield url
    _drop(admin, name, " WITH (FORCE)")


@pytest.fixture
def mysql_url():
    admin, name, url = _fresh_server_database(MYSQL_URL)
    yield url
    _drop(admin, name, "")


@pytest.fixture
def sqlite_url(tmp_path):
    return "sqlite:///%s" % (tmp_path / "meter-export.sqlite")


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def db_url(request):
    """A fresh, empty database on each of the three dialects."""
    return request.getfixturevalue({"sqlite": "sqlite_url", "postgresql": "pg_url", "mysql": "mysql_url"}[request.param])


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if IN_CI and skipped and session.exitstatus == 0:
        reporter.write_line("CI=true: %d test(s) were skipped; a skipped database or server test is a failure here." % skipped, red=True)
        session.exitstatus = 1
