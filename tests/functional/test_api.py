"""The REST API through its whole WSGI stack (static tokens), on real databases."""

import pytest
import sqlalchemy as sa

from meter_export.api import openapi
from meter_export.storage import wakeups
from tests.functional import api_helpers
from tests.functional import billing_data as data
from tests.functional.api_helpers import MEMBER
from tests.functional.billing_data import T0
from tests.functional.billing_data import H

DAY = 24 * H


@pytest.fixture
def engine(db_url):
    engine = data.prepare(db_url)
    data.add(engine, data.hours("p1", "vm-1", "m1.small", T0, 48))  # 24 h/day x 0.048 = 1.152 -> 1.15
    data.add(engine, data.hours("p1", "vol-1", "b1.standard", T0, 10, quantity="20", price="0.000625"))  # 0.125 -> 0.12
    data.add(engine, data.hours("p2", "vm-2", "m1.small", T0, 24))
    data.mark_final(engine, T0 + 2 * DAY)
    yield engine
    engine.dispose()


@pytest.fixture
def api(tmp_path, db_url, engine):
    return api_helpers.make(api_helpers.conf(tmp_path, db_url), engine, data.NOW)


def test_sales_order_through_distil_v1_route(api):
    status, order = api.call("POST", "/sales_order", json={"tenant": "p1", "end": "2026-10-02"})
    assert status == 201
    assert order == {
        "id": order["id"],
        "project_id": "p1",
        "start": "2026-10-01T00:00:00Z",
        "end": "2026-10-02T00:00:00Z",
        "issued_at": "2026-11-20T15:30:00Z",
        "currency": "EUR",
        "total": "1.27",
        "lines": [
            {
                "resource_id": "vm-1",
                "service": "m1.small",
                "unit": "hour",
                "quantity": "24",
                "unit_price": "0.048",
                "cost": "1.15",
                "kind": "usage",
            },
            {
                "resource_id": "vol-1",
                "service": "b1.standard",
                "unit": "hour",
                "quantity": "200",
                "unit_price": "0.000625",
                "cost": "0.12",
                "kind": "usage",
            },
        ],
    }
    assert api.call("POST", "/sales_order", json={"tenant": "p1", "end": "2026-10-02"})[0] == 409
    status, body = api.call("POST", "/sales_historic", json={"tenant": "p1", "date": "2026-10-01T05:00:00Z"})
    assert status == 200 and body["order"] == order and body["difference"] == []
    status, body = api.call("POST", "/sales_range", json={"tenant": "p1", "start": "2026-09-01"})
    assert status == 200 and body == {"orders": [order]}
    status, draft = api.call("POST", "/sales_draft", json={"tenant": "p1"})
    assert status == 200 and draft["start"] == "2026-10-02T00:00:00Z" and draft["total"] == "1.15" and draft["draft"] is True
    assert draft["final_until"] == "2026-10-03T00:00:00Z" and draft["lines"][0]["provisional"] is False


@pytest.mark.parametrize(
    "path,body,parameter",
    [
        ("/sales_order", {"end": "2026-10-02"}, "tenant"),
        ("/sales_order", {"tenant": "p1", "end": "yesterday"}, "end"),
        ("/sales_order", {"tenant": "p1", "end": "2026-10-01T10:30:00"}, "end"),
        ("/sales_order", {"tenant": "p1", "end": "2027-01-01"}, "end"),
        ("/sales_draft", {"tenant": 5}, "tenant"),
        ("/sales_historic", {"tenant": "p1"}, "date"),
        ("/sales_range", {"tenant": "p1", "start": "2026-10-05", "end": "2026-10-01"}, "end"),
        ("/sales_range", {"tenant": "p1"}, "start"),
    ],
)
def test_bad_parameter_is_400_naming_it(api, path, body, parameter):
    status, answer = api.call("POST", path, json=body)
    assert status == 400 and answer["parameter"] == parameter and answer["error"].startswith(parameter + ": ")


def test_distil_routes_take_json_only(api):
    status, answer = api.call("POST", "/sales_draft", data="tenant=p1", content_type="application/x-www-form-urlencoded")
    assert status == 400 and answer["parameter"] == "body"


def test_refusals_are_409_with_the_reason(api):
    status, answer = api.call("POST", "/sales_order", json={"tenant": "p1", "end": "2026-10-04"})
    assert status == 409 and "final up to 2026-10-03T00:00:00Z" in answer["error"]
    status, answer = api.call("POST", "/sales_order", json={"tenant": "nobody"})
    assert status == 409 and "nothing to bill" in answer["error"]
    assert api.call("POST", "/sales_historic", json={"tenant": "p1", "date": "2026-10-01"})[0] == 404


def test_tokens_and_policy(api):
    assert api.call("POST", "/sales_draft", token=None, json={"tenant": "p1"}) == (
        401,
        {"error": "a valid X-Auth-Token header is required"},
    )
    assert (
        api.call(
            "POST",
            "/sales_draft",
            token="wrong",  # noqa: S106
            json={"tenant": "p1"},
        )[0]
        == 401
    )
    assert api.call("POST", "/sales_draft", token=MEMBER, json={"tenant": "p1"})[0] == 200
    status, answer = api.call("POST", "/sales_draft", token=MEMBER, json={"tenant": "p2"})
    assert status == 403 and "project p2" in answer["error"]
    assert api.call("GET", "/v1/projects/p2/draft", token=MEMBER)[0] == 403
    # a member issues no order, even for its own project (Distil: sales are admin-only)
    assert api.call("POST", "/v1/projects/p1/orders", token=MEMBER, json={"end": "2026-10-02"})[0] == 403
    # identity headers sent by the caller are not believed
    forged = {"X-Roles": "admin", "X-Project-Id": "p2"}
    assert api.call("GET", "/v1/projects/p2/draft", token=MEMBER, headers=forged)[0] == 403
    assert api.call("GET", "/v1/health", token=MEMBER)[0] == 403
    assert api.call("GET", "/v1/openapi.json", token=None)[0] == 200


def test_v1_resource_routes(api):
    status, order = api.call("POST", "/v1/projects/p1/orders", json={"end": "2026-10-02"})
    assert status == 201 and order["total"] == "1.27"
    assert api.call("GET", "/v1/projects/p1/orders/%d" % order["id"], token=MEMBER) == (200, order)
    assert api.call("GET", "/v1/projects/p2/orders/%d" % order["id"])[0] == 404
    assert api.call("GET", "/v1/projects/p1/orders") == (200, {"orders": [order]})
    assert api.call("GET", "/v1/projects/p1/orders?start=2026-10-01T12:00:00Z&end=2026-10-03")[1] == {"orders": [order]}
    assert api.call("GET", "/v1/projects/p1/orders?start=2026-10-02")[1] == {"orders": []}
    assert api.call("GET", "/v1/projects/p1/historic?date=2026-10-01")[1]["order"] == order
    status, draft = api.call("GET", "/v1/projects/p1/draft?end=2026-10-02T12:00:00Z")
    assert status == 200 and draft["lines"][0]["quantity"] == "12" and draft["total"] == "0.58"  # 0.576


def test_usage_grouped_by_service_resource_or_hour(api):
    status, body = api.call("GET", "/v1/projects/p1/rated?start=2026-10-01&end=2026-10-02")
    assert status == 200 and body["group_by"] == "service"
    assert [(u["service"], u["quantity"], u["cost"]) for u in body["usage"]] == [
        ("b1.standard", "200", "0.125"),
        ("m1.small", "24", "1.152"),
    ]
    body = api.call("GET", "/v1/projects/p1/usage?start=2026-10-01&end=2026-10-02&group_by=resource")[1]
    assert [(u["resource_id"], u["quantity"]) for u in body["usage"]] == [("vm-1", "24"), ("vol-1", "200")] and "cost" not in body["usage"][
        0
    ]
    body = api.call("GET", "/v1/projects/p1/usage?start=2026-10-01T00:00:00Z&end=2026-10-01T02:00:00Z&group_by=hour")[1]
    assert [(u["period_start"], u["service"]) for u in body["usage"]][:2] == [
        ("2026-10-01T00:00:00Z", "b1.standard"),
        ("2026-10-01T00:00:00Z", "m1.small"),
    ]
    assert len(body["usage"]) == 4
    status, answer = api.call("GET", "/v1/projects/p1/usage?start=2026-10-01&group_by=flavor")
    assert status == 400 and answer["parameter"] == "group_by"
    assert api.call("GET", "/v1/projects/p1/usage")[1]["parameter"] == "start"


def test_health_fails_when_a_stream_lags(tmp_path, db_url, engine):
    lagging = api_helpers.make(api_helpers.conf(tmp_path, db_url, health_max_age=3600), engine, T0 + 2 * DAY + 2 * H)
    status, body = lagging.call("GET", "/v1/health")
    assert status == 503 and body["health"]["usage_collection"]["status"] == "FAIL"
    assert body["health"]["usage_collection"]["streams"][0]["lag_seconds"] == 7200
    fresh = api_helpers.make(api_helpers.conf(tmp_path, db_url, health_max_age=3600), engine, T0 + 2 * DAY + H)
    assert fresh.call("GET", "/v1/health")[0] == 200


def test_collect_usage_records_a_pass_request(api, engine):
    assert wakeups.requested_at(engine) is None
    assert api.call("POST", "/collect_usage", token=MEMBER)[0] == 403
    status, body = api.call("POST", "/collect_usage")
    assert status == 202 and body == {"requested_at": "2026-11-20T15:30:00Z"}
    assert wakeups.requested_at(engine) == data.NOW


def test_prices_list(api):
    status, body = api.call("GET", "/v1/prices", token=MEMBER)
    assert status == 200
    assert sorted((p["service"], p["price"], p["currency"]) for p in body["prices"]) == [
        ("b1.standard", "0.000625", "EUR"),
        ("m1.small", "0.048", "EUR"),
    ]


def test_unknown_route_is_json_404(api):
    status, body = api.call("GET", "/v1/nothing")
    assert status == 404 and "error" in body


def test_every_route_is_documented_and_every_documented_path_is_a_route(tmp_path, db_url, engine):
    from meter_export.api import app as app_mod
    from meter_export.api import policy

    flask_app = app_mod.make_flask(None, policy.make_enforcer(api_helpers.conf(tmp_path, db_url)))
    routes = set()
    for rule in flask_app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = rule.rule.replace("<int:", "{").replace("<", "{").replace(">", "}")
        routes |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(path, m) for path, item in openapi.document()["paths"].items() for m in item}
    assert routes == documented


def test_wakeup_wait_returns_on_a_request(engine):
    import threading

    event = threading.Event()
    times = iter(range(100))
    assert not wakeups.wait(engine, event, 3, since=data.NOW, poll=0.01, clock=lambda: next(times))
    wakeups.request_pass(engine, data.NOW + H)
    assert wakeups.wait(engine, event, 30, since=data.NOW, poll=0.01, clock=lambda: 0)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(wakeups.REQUESTS)).scalar() == 1
