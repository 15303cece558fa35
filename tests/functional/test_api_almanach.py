"""Almanach's routes through the API's whole WSGI stack (static tokens), on real databases."""

import datetime

import pytest

from meter_export.listen import events as ev
from meter_export.storage import engine as engine_mod
from meter_export.storage import entities as entities_mod
from meter_export.storage import migrate
from meter_export.storage.samples import Sink
from tests import notifications as n
from tests.functional import api_helpers

UTC = datetime.UTC
NOW = datetime.datetime(2026, 3, 10, tzinfo=UTC)
IID = "5e1f0c3a-9d47-4b8e-8a34-0b1c2d3e4f50"
VID = "b7c6d5e4-f3a2-4b1c-9d8e-7f6a5b4c3d2e"
PROJECT = n.PROJECT


@pytest.fixture
def api(tmp_path, db_url):
    sink = Sink(db_url)
    migrate.upgrade(sink)
    sink.close()
    engine = engine_mod.make_engine(db_url)
    steps = [
        ("volume_type.create", n.volume_type_payload("8f1c6a9e-type-ssd", "ssd"), "2026-03-01T09:00:00"),
        n.instance_create(IID, "2026-03-01T10:00:00"),
        n.instance_event("compute.instance.resize.confirm.end", IID, "2026-03-01T14:00:00", flavor="m1.large"),
        n.volume_create(VID, "2026-03-02T10:00:00", size=50),
    ]
    entities_mod.EntityStore(None, engine=engine).apply([ev.parse(n.message(*step)) for step in steps])
    conf = api_helpers.conf(tmp_path, db_url, project_tokens="%s:%s" % (api_helpers.MEMBER, PROJECT))
    yield api_helpers.make(conf, engine, NOW)
    engine.dispose()


def test_project_entities_in_a_period(api):
    status, body = api.call("GET", "/v1/project/%s/entities?start=2026-03-01 12:00:00.000000&end=2026-03-02 10:00:00.000000" % PROJECT)
    assert status == 200, body
    assert [(e["entity_id"], e["version"], e.get("flavor"), e.get("volume_type")) for e in body] == [
        (IID, 1, "m1.small", None),
        (IID, 2, "m1.large", None),
        (VID, 1, None, "ssd"),
    ]
    status, body = api.call("GET", "/v1/project/%s/instances?start=2026-03-01 15:00:00.000000" % PROJECT)
    assert status == 200 and [(e["version"], e["end"]) for e in body] == [(2, None)]
    status, body = api.call("GET", "/v1/project/%s/volumes?start=2026-03-01 00:00:00.000000" % PROJECT, token=api_helpers.MEMBER)
    assert status == 200 and [(e["entity_id"], e["size"]) for e in body] == [(VID, 50)]


def test_one_entity_volume_types_and_info(api):
    status, body = api.call("GET", "/v1/entity/%s" % IID)
    assert status == 200 and [v["flavor"] for v in body] == ["m1.small", "m1.large"]
    assert api.call("GET", "/v1/entity/nosuch")[0] == 404
    assert api.call("GET", "/v1/volume_types") == (200, [{"volume_type_id": "8f1c6a9e-type-ssd", "volume_type_name": "ssd"}])
    assert api.call("GET", "/v1/volume_type/nope")[0] == 404
    status, body = api.call("GET", "/v1/info", token=None)
    assert status == 200 and body["database"] == {"all_entities": 3, "active_entities": 2}


@pytest.mark.parametrize(
    "path, parameter",
    [
        ("/v1/project/%s/entities" % PROJECT, "start"),
        ("/v1/project/%s/entities?start=yesterday" % PROJECT, "start"),
        ("/v1/project/%s/entities?start=2026-03-01&end=soon" % PROJECT, "end"),
        ("/v1/project/%s/entities?start=2026-03-01&colour=red" % PROJECT, "colour"),
    ],
)
def test_bad_parameter_is_400_naming_it(api, path, parameter):
    status, body = api.call("GET", path)
    assert (status, body["parameter"]) == (400, parameter), body


def test_tokens_and_policy(api):
    path = "/v1/project/%s/entities?start=2026-03-01" % PROJECT
    assert api.call("GET", path, token=None)[0] == 401
    assert api.call("GET", path, token="wrong")[0] == 401  # noqa: S106
    assert api.call("GET", "/v1/project/other/entities?start=2026-03-01", token=api_helpers.MEMBER)[0] == 403
    assert api.call("GET", path, token=api_helpers.MEMBER)[0] == 200
    assert api.call("GET", "/v1/entity/%s" % IID, token=api_helpers.MEMBER)[0] == 200


def test_every_route_is_documented(tmp_path, sqlite_url):
    # NOTE: tests/functional/test_api.py has the same check; this one needs
    # no billing data.
    from meter_export.api import app as app_mod
    from meter_export.api import openapi
    from meter_export.api import policy

    flask_app = app_mod.make_flask(None, policy.make_enforcer(api_helpers.conf(tmp_path, sqlite_url)))
    routes = set()
    for rule in flask_app.url_map.iter_rules():
        if rule.endpoint != "static":
            path = rule.rule.replace("<int:", "{").replace("<", "{").replace(">", "}")
            routes |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(path, m) for path, item in openapi.document()["paths"].items() for m in item}
    assert routes == documented
