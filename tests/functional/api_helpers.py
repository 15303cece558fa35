"""A configured API over a test database, called through its whole WSGI stack."""

import orjson
import werkzeug.test

from meter_export import service
from meter_export.api import app as app_mod

ADMIN = "admin-secret"
MEMBER = "member-p1-secret"


def conf(tmp_path, db_url, **api):
    options = {"auth_strategy": "static", "admin_tokens": ADMIN, "project_tokens": "%s:p1" % MEMBER, **api}
    path = tmp_path / "meter-export.conf"
    lines = ["[database]", "connection = %s" % db_url, "[api]"] + ["%s = %s" % kv for kv in options.items()]
    path.write_text("\n".join(lines) + "\n")
    return service.prepare_service(["--config-file", str(path)])


class Api:
    def __init__(self, wsgi):
        self.client = werkzeug.test.Client(wsgi)

    def call(self, method, path, token=ADMIN, json=None, expect_json=True, **kwargs):
        headers = dict(kwargs.pop("headers", {}))
        if token:
            headers["X-Auth-Token"] = token
        response = self.client.open(path, method=method, json=json, headers=headers, **kwargs)
        body = orjson.loads(response.get_data()) if response.get_data() else None
        if expect_json:
            assert response.headers.get("Content-Type", "").startswith("application/json"), response.get_data()
        return response.status_code, body


def make(conf_, engine, now):
    return Api(app_mod.make_app(conf_, engine=engine, clock=lambda: now))
