"""Fixtures that run real telemetry services for the functional tests."""

import os

import pytest

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _unavailable(request, what, error):
    # NOTE(gnocchi): the root conftest is not importable by name (every
    # conftest module is called "conftest"), but pytest keeps it registered
    # as a plugin under its path; reuse its skip-or-fail-in-CI rule.
    root = request.config.pluginmanager.get_plugin(os.path.join(TESTS_DIR, "conftest.py"))
    root.unavailable(what, error)


@pytest.fixture(autouse=True)
def _reap_workers():
    """No daemon outlives its test, even one whose assertion failed."""
    from tests.functional import e2e

    yield
    e2e.reap()


def _serve(request, tmp_path_factory, kind, label, make):
    """Start a real server from its own venv; yield it, stop it at the end."""
    from telemetry_stack import venvs

    try:
        venvs.ensure(kind)
        server = make(str(tmp_path_factory.mktemp(kind)))
        server.start()
    except Exception as e:
        _unavailable(request, label, e)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gnocchi_server(request, tmp_path_factory):
    """A real Gnocchi 4.7.1 (API + metricd) on a fresh PostgreSQL database.

    Builds the Gnocchi venv first if it is missing (about 35 s once).
    """
    from telemetry_stack import gnocchi

    yield from _serve(request, tmp_path_factory, "gnocchi", "Gnocchi 4.7.1", lambda d: gnocchi.GnocchiServer(workdir=d))


@pytest.fixture(scope="session")
def ceilometer_server(request, tmp_path_factory):
    """The real Ceilometer 9.0.7 v2 API (SQLite storage), acting as admin.

    Builds the Ceilometer venv first if it is missing (about 30 s once).
    """
    from telemetry_stack import ceilometer

    yield from _serve(request, tmp_path_factory, "ceilometer", "Ceilometer 9.0.7", ceilometer.CeilometerServer)
