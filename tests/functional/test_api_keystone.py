"""The API behind keystonemiddleware and a real Keystone: tokens and policy."""

import secrets

import pytest

from meter_export import service
from tests.functional import api_helpers
from tests.functional import billing_data as data
from tests.functional.billing_data import T0
from tests.functional.billing_data import H


@pytest.fixture
def keystone_api(tmp_path, pg_url, keystone_server):
    ks = keystone_server
    admin_project = ks.project_id("admin")
    user, password = "mx-billing-api-" + secrets.token_hex(4), secrets.token_urlsafe(12)
    ks.create_user(user, password, project=admin_project, roles=["admin", "service"])
    member, other = ks.new_account("member"), ks.new_account("member")
    engine = data.prepare(pg_url)
    data.add(engine, data.hours(member.project_id, "vm-1", "m1.small", T0, 24))  # 1.152 -> 1.15
    data.add(engine, data.hours(other.project_id, "vm-2", "m1.small", T0, 10))  # 0.48
    data.mark_final(engine, T0 + 48 * H)
    path = tmp_path / "keystone-api.conf"
    path.write_text(
        "[database]\nconnection = %s\n[api]\nauth_strategy = keystone\n"
        "[keystone_authtoken]\nauth_type = password\nauth_url = %s\nwww_authenticate_uri = %s\nusername = %s\npassword = %s\n"
        "project_name = admin\nuser_domain_id = default\nproject_domain_id = default\n"
        "# no token cache: a revoked token is refused at once\ntoken_cache_time = -1\n" % (pg_url, ks.auth_url, ks.auth_url, user, password)
    )
    conf = service.prepare_service(["--config-file", str(path)])
    yield api_helpers.make(conf, engine, data.NOW), member, other, ks
    engine.dispose()


def test_keystone_admin_sees_all_a_member_its_project_a_bad_token_401(keystone_api):
    api, member, other, ks = keystone_api
    token = member.token()
    status, draft = api.call("GET", "/v1/projects/%s/draft?end=2026-10-02" % member.project_id, token=token)
    assert status == 200 and draft["total"] == "1.15"
    status, answer = api.call("GET", "/v1/projects/%s/draft" % other.project_id, token=token)
    assert status == 403 and other.project_id in answer["error"]
    assert api.call("POST", "/sales_draft", token=token, json={"tenant": other.project_id})[0] == 403
    assert api.call("POST", "/sales_order", token=token, json={"tenant": member.project_id, "end": "2026-10-02"})[0] == 403

    admin = ks.admin_token()
    status, order = api.call("POST", "/sales_order", token=admin, json={"tenant": other.project_id, "end": "2026-10-02"})
    assert status == 201 and order["total"] == "0.48"
    assert api.call("GET", "/v1/projects/%s/orders" % other.project_id, token=admin)[1] == {"orders": [order]}
    assert api.call("GET", "/v1/health", token=admin)[0] in (200, 503)

    for bad in ("not-a-token", None):
        status, _ = api.call("GET", "/v1/projects/%s/draft" % member.project_id, token=bad)
        assert status == 401
    ks.revoke(token)
    assert api.call("GET", "/v1/projects/%s/draft" % member.project_id, token=token)[0] == 401
    assert api.call("GET", "/v1/openapi.json", token=None)[0] == 200


def test_cli_through_keystoneauth_to_the_served_api(keystone_api, tmp_path):
    import json
    import os
    import subprocess

    from tests.functional import e2e
    from tests.functional import test_cli_billing as served

    api, member, other, ks = keystone_api
    config = tmp_path / "keystone-api.conf"
    port = served._free_port()
    config.write_text(config.read_text().replace("[api]\n", "[api]\nport = %d\n" % port))
    proc = subprocess.Popen([e2e.BIN, "--config-file", str(config), "api"], stderr=subprocess.PIPE, text=True, start_new_session=True)
    e2e._STARTED.append(proc)
    assert e2e.wait_for(lambda: served._listening(port), timeout=30)
    env = dict(os.environ, OS_PASSWORD=member.password)
    argv = [e2e.BIN, "orders", "draft", "--project", member.project_id, "--end", "2026-10-02", "--format", "json"]
    argv += ["--endpoint", "http://127.0.0.1:%d" % port, "--os-auth-url", ks.auth_url, "--os-username", member.username]
    argv += ["--os-project-name", member.project, "--os-user-domain-name", "Default", "--os-project-domain-name", "Default"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["total"] == "1.15"
    other_project = subprocess.run(argv[:4] + [other.project_id] + argv[5:], capture_output=True, text=True, timeout=120, env=env)
    assert other_project.returncode == 5 and "HTTP 403" in other_project.stderr
    code, err = e2e.stop_worker(proc, timeout=30)
    assert code == 0 and member.password not in err
