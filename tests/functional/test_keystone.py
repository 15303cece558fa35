"""meter-export's ``auth_type = password`` against a real Keystone.

The real Keystone 30.0.0 (keystone_server) and a real Gnocchi 4.7.1 in
``auth_mode = keystone`` (gnocchi_keystone_server): keystonemiddleware in
Gnocchi asks Keystone about every request's token (no token cache), and
Gnocchi is found through Keystone's catalog (service type ``metric``).
meter-export logs in with [service_credentials] auth_type = password,
auth_url, username, password, project_name and the user/project domains.

Tokens live KEYSTONE_TOKEN_EXPIRATION (130) seconds, and keystoneauth
renews one that has less than 120 s left, so a sync of more than ~10 s
runs on several tokens.  The second test makes the token in hand die in the
middle of a sync: a proxy holds one Gnocchi request, has Keystone revoke the
token it carries, and lets it go on once keystoneauth's renewal point has
passed.  Gnocchi refuses it (401) exactly as it refuses an expired token
(Keystone answers 404 to both), keystoneauth logs in again and replays it,
later requests run on renewed tokens, and the sync is exact.

NOTE(keystone): a token expiring while in use cannot be waited for
cheaply: keystoneauth never sends one with less than 120 s left, so the
test would wait two minutes; revoking it gives Gnocchi the same refusal.
"""

import datetime
import threading
import time

import pytest
from telemetry_stack import seed

from tests.functional import e2e
from tests.functional import proxies

UTC = datetime.UTC
HOUR = datetime.timedelta(hours=1)
NOW_HOUR = datetime.datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
POLICY = "mx-keystone-5min"
METERS = {"cpu": "ns", "memory": "MB"}


@pytest.fixture(scope="module")
def client(keystone_server, gnocchi_keystone_server):
    client = seed.make_client(gnocchi_keystone_server.endpoint, keystone=keystone_server)
    seed.ensure_resource_types(client)
    seed.ensure_archive_policy(client, POLICY, granularity=300)
    return client


@pytest.fixture(scope="module")
def exporter(keystone_server, gnocchi_keystone_server):
    """meter-export's service user: admin on the service project, as Ceilometer's is."""
    return keystone_server.new_account("admin", project="service")


def _seed(client, server, project_id):
    seeded = seed.seed_project(client, project_id, METERS, resources=2, start=NOW_HOUR - 2 * HOUR, end=NOW_HOUR, archive_policy=POLICY)
    server.wait_processed(timeout=120)
    rows = set()
    for (rid, meter), points in seeded.points.items():
        rows |= {(rid, meter, ts, value) for ts, value in points}
    return rows


def _config(path, db_url, credentials, project_id):
    # NOTE(keystone): three hours back, not the default three days: every
    # request is validated by Keystone, so each window costs.
    return e2e.write_config(path, db_url, credentials, _filters(project_id), lookback=4 * 3600, initial_start="-PT3H")


def _filters(project_id):
    return "filters:\n  - name: p\n    query: {project_id: %s, resource_type: instance}\n    meters: [cpu, memory]\n" % project_id


def _landed(db_url):
    rows = e2e.table(db_url)
    assert len({r[0] for r in rows}) == len(rows), "a message_id landed twice"
    return {(rid, meter, ts, value) for _, rid, meter, ts, value in rows}


def _validations(keystone_server):
    with open(keystone_server._log("access")) as f:
        return sum(1 for line in f if '"GET /v3/auth/tokens' in line)


def test_password_login_finds_gnocchi_in_the_catalog_and_syncs_exactly(
    keystone_server, gnocchi_keystone_server, client, exporter, pg_url, tmp_path
):
    project = keystone_server.new_account("member")
    expected = _seed(client, gnocchi_keystone_server, project.project_id)
    # No endpoint anywhere: keystoneauth reads Gnocchi's URL from the catalog.
    config = _config(tmp_path, pg_url, exporter.credentials(), project.project_id)
    e2e.cli(config, "dbsync")
    validated = _validations(keystone_server)
    e2e.cli(config, "run", "--once")
    assert _landed(pg_url) == expected
    assert _validations(keystone_server) > validated, "Gnocchi did not ask Keystone about the token"

    # The same login with a wrong password gets nothing in, and says why.
    wrong = dict(exporter.credentials(), password="not-" + exporter.password)
    (tmp_path / "wrong").mkdir()
    config = _config(tmp_path / "wrong", pg_url, wrong, project.project_id)
    result = e2e.cli(config, "run", "--once", check=False)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "401" in result.stderr or "authenticat" in result.stderr.lower(), result.stderr[-2000:]


class _HoldOneRequest(proxies.FaultProxy):
    """Forwards to Gnocchi; holds the first /v1/aggregates request, has its
    token revoked, and lets it go on when keystoneauth would have renewed it."""

    def __init__(self, upstream, keystone_server):
        super().__init__(upstream)
        self.keystone = keystone_server
        self.answers = []  # (path, token, status)
        self.held = None
        self.held_for = 0.0
        self._hold_lock = threading.Lock()

    def forward(self, request, headers):
        token = next((v for k, v in headers.items() if k.lower() == "x-auth-token"), None)
        with self._hold_lock:
            hold = self.held is None and request.path.startswith("/v1/aggregates")
            if hold:
                self.held = token
        if hold:
            self._hold(token)
        status, resp_headers, body = super().forward(request, headers)
        self.answers.append((request.path, token, status))
        return status, resp_headers, body

    def _hold(self, token):
        watch = time.monotonic()
        expires = datetime.datetime.fromisoformat(self.keystone.validate(token)["expires_at"].replace("Z", "+00:00"))
        self.keystone.revoke(token)
        # keystoneauth renews a token with less than 120 s left; past that
        # point, the requests after this one must run on a new token.
        renew_at = expires - datetime.timedelta(seconds=120)
        time.sleep(min(30.0, max(0.0, (renew_at - datetime.datetime.now(UTC)).total_seconds()) + 1))
        self.held_for = time.monotonic() - watch


def test_a_token_that_dies_mid_sync_is_renewed_and_the_sync_is_exact(
    keystone_server, gnocchi_keystone_server, client, exporter, pg_url, tmp_path
):
    project = keystone_server.new_account("member")
    expected = _seed(client, gnocchi_keystone_server, project.project_id)
    with _HoldOneRequest(gnocchi_keystone_server.endpoint, keystone_server) as proxy:
        config = _config(tmp_path, pg_url, exporter.credentials(), project.project_id)
        with open(config, "a") as f:
            f.write("[gnocchi]\nendpoint_override = %s\n" % proxy.endpoint)
        e2e.cli(config, "dbsync")
        e2e.cli(config, "run", "--once", timeout=300)
    assert proxy.held is not None, "no aggregates request went through the proxy"
    with pytest.raises(Exception, match="404"):
        keystone_server.validate(proxy.held)
    # The held request was refused with the dead token, then the very same
    # request came back with a new one and went through.
    refused = [(path, status) for path, token, status in proxy.answers if token == proxy.held]
    assert refused and refused[-1][1] == 401, refused
    path = refused[-1][0]
    assert any(p == path and token != proxy.held and status == 200 for p, token, status in proxy.answers), proxy.answers
    after = proxy.answers[[a[:2] for a in proxy.answers].index((path, proxy.held)) + 1 :]
    assert after and all(status == 200 and token != proxy.held for _, token, status in after), after
    assert _landed(pg_url) == expected
