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


# NOTE(keystone): keystoneauth renews a token before each request once it
# has less than 120 s left, so below 120 s every client logs in again for
# every request (5 logins per Gnocchi request were measured: minutes per
# sync).  130 s keeps tokens short-lived, each renewed after ~10 s of use, so
# a sync of more than a few seconds runs on several tokens.  Ask for a fresh
# token in each test.
KEYSTONE_TOKEN_EXPIRATION = int(os.environ.get("METER_EXPORT_KEYSTONE_TOKEN_EXPIRATION", "130"))


@pytest.fixture(scope="session")
def keystone_server(request, tmp_path_factory):
    """A real Keystone 30.0.0 (SQLite, Fernet tokens, gunicorn), bootstrapped.

    The bootstrap ``admin`` (``keystone_server.admin_password``) has the
    admin role on project ``admin``; roles admin, member and reader exist.
    Helpers: ``new_account(role, project=None)`` makes a user with that role
    (on a new project by default) whose ``token()`` is a fresh scoped token
    and ``credentials()`` the [service_credentials] of a password login;
    ``create_project``, ``create_user(..., roles=[...])``, ``grant``,
    ``token(user, password, project)``, ``validate(token)``,
    ``register_service(name, type, url)``.  Tokens live
    KEYSTONE_TOKEN_EXPIRATION seconds.  Builds the venv first if missing.
    """
    from telemetry_stack import keystone

    yield from _serve(
        request,
        tmp_path_factory,
        "keystone",
        "Keystone 30.0.0",
        lambda d: keystone.KeystoneServer(workdir=d, token_expiration=KEYSTONE_TOKEN_EXPIRATION),
    )


@pytest.fixture(scope="session")
def gnocchi_keystone_server(request, tmp_path_factory, keystone_server):
    """A second real Gnocchi 4.7.1, with auth_mode = keystone.

    keystonemiddleware validates every request's token against
    ``keystone_server`` (no token cache), and the API is in its catalog as
    service type ``metric``.  Seed it with
    ``seed.make_client(endpoint, keystone=keystone_server)``.
    """
    from telemetry_stack import gnocchi

    yield from _serve(
        request,
        tmp_path_factory,
        "gnocchi",
        "Gnocchi 4.7.1 (keystone)",
        lambda d: gnocchi.GnocchiServer(workdir=d, keystone=keystone_server),
    )
