"""Distil's v1 routes (same parameter names) and the /v1 resource routes.

Each handler reads its parameters, checks the policy for the project, calls
one billing operation and returns its view; refusals become JSON errors in
app.py.
"""

import flask
import sqlalchemy as sa

from meter_export.api import auth
from meter_export.api import views
from meter_export.billing import errors
from meter_export.billing import periods
from meter_export.billing import usage as usage_mod
from meter_export.storage import schema
from meter_export.storage import wakeups

distil = flask.Blueprint("distil_v1", __name__)
v1 = flask.Blueprint("v1", __name__, url_prefix="/v1")
NAME_LENGTH = 255
MAX_ID = 2**63 - 1  # BIGINT


class Forbidden(Exception):
    """The policy refuses this caller this project (HTTP 403)."""


def state():
    return flask.current_app.extensions["meter_export"]


def authorize(rule, project_id=None):
    identity = auth.Identity.from_environ(flask.request.environ)
    target = {"project_id": project_id}
    if not state().enforcer.enforce(rule, target, identity.credentials()):
        what = " for project %s" % project_id if project_id else ""
        raise Forbidden("policy %s does not allow this token%s" % (rule, what))


_ABSENT = object()


def _text(value, name, required):
    if value is _ABSENT:
        if required:
            raise errors.BadParameter(name, "required")
        return None
    if not isinstance(value, str) or not value or len(value) > NAME_LENGTH:
        raise errors.BadParameter(name, "expected a non-empty string of at most %d characters" % NAME_LENGTH)
    return value


def body():
    """The JSON object of a Distil POST (its routes take JSON only, as Distil's did)."""
    query()
    data = flask.request.get_json(silent=True)
    if not isinstance(data, dict):
        raise errors.BadParameter("body", "must be a JSON object sent as Content-Type: application/json")
    return data


def param(source, name, required=False):
    """A string parameter; present but not a non-empty string (null, a number) is bad."""
    return _text(source.get(name, _ABSENT), name, required)


def query(*names):
    """The query string, refusing a parameter the route does not take."""
    args = flask.request.args
    for name in args:
        if name not in names:
            raise errors.BadParameter(name, "unknown parameter; this route takes %s" % (", ".join(names) or "none"))
    return args


def project(value):
    return _text(value, "project_id", True)


# Distil v1 -----------------------------------------------------------------


@distil.post("/sales_order")
def sales_order():
    data = body()
    tenant = param(data, "tenant", True)
    authorize("meter_export:orders:create", tenant)
    return views.order(state().billing.order(tenant, param(data, "end"))), 201


@distil.post("/sales_draft")
def sales_draft():
    data = body()
    tenant = param(data, "tenant", True)
    authorize("meter_export:orders:get", tenant)
    return views.draft(*state().billing.draft(tenant, param(data, "end")))


@distil.post("/sales_historic")
def sales_historic():
    data = body()
    tenant = param(data, "tenant", True)
    date = param(data, "date", True)
    authorize("meter_export:orders:get", tenant)
    return views.historic(*state().billing.historic(tenant, date))


@distil.post("/sales_range")
def sales_range():
    data = body()
    tenant = param(data, "tenant", True)
    start = param(data, "start", True)
    authorize("meter_export:orders:get", tenant)
    return views.orders(state().billing.range(tenant, start, param(data, "end")))


@distil.post("/collect_usage")
def collect_usage():
    query()
    authorize("meter_export:collect:post")
    now = state().billing.clock()
    wakeups.request_pass(state().billing.engine, now)
    return {"requested_at": periods.iso(now)}, 202


@distil.get("/")
def versions():
    return {"versions": [{"id": "v1", "status": "CURRENT", "links": [{"rel": "describedby", "href": "/v1/openapi.json"}]}]}


# /v1 -----------------------------------------------------------------------


@v1.get("/openapi.json")
def openapi_document():
    from meter_export.api import openapi

    return openapi.document()


@v1.get("/health")
def health():
    query()
    authorize("meter_export:health:get")
    now, max_age = state().billing.clock(), state().health_max_age
    with state().billing.engine.connect() as conn:
        streams = usage_mod.streams_complete_until(conn)
    shown, failing = [], 0
    for source, filter_name, meter, complete_until in streams:
        lag = (now - complete_until).total_seconds()
        ok = lag <= max_age
        failing += not ok
        shown.append(
            {
                "source": source,
                "filter": filter_name,
                "meter": meter,
                "complete_until": periods.iso(complete_until),
                "lag_seconds": int(lag),
                "status": "OK" if ok else "FAIL",
            }
        )
    status = "FAIL" if failing or not streams else "OK"
    message = "%d of %d streams lag more than %d s" % (failing, len(streams), max_age) if streams else "no live stream has a checkpoint yet"
    return {"health": {"usage_collection": {"status": status, "msg": message, "streams": shown}}}, 503 if status == "FAIL" else 200


@v1.get("/prices")
def prices():
    query()
    authorize("meter_export:prices:get")
    table = schema.make_metadata().tables["prices"]
    ordered = sa.select(table).order_by(table.c.service, table.c.region, table.c.valid_from)
    with state().billing.engine.connect() as conn:
        return {"prices": [views.row(r._mapping) for r in conn.execute(ordered)]}


@v1.get("/projects/<project_id>/orders")
def list_orders(project_id):
    project(project_id)
    args = query("start", "end")
    authorize("meter_export:orders:get", project_id)
    start = param(args, "start")
    if start is None:
        if param(args, "end") is not None:
            raise errors.BadParameter("start", "required when end is given")
        return views.orders(state().billing.orders(project_id))
    return views.orders(state().billing.range(project_id, start, param(args, "end")))


@v1.post("/projects/<project_id>/orders")
def create_order(project_id):
    query()
    project(project_id)
    data = flask.request.get_json(silent=True) if flask.request.content_length else {}
    if not isinstance(data, dict):
        raise errors.BadParameter("body", "must be a JSON object sent as Content-Type: application/json")
    authorize("meter_export:orders:create", project_id)
    return views.order(state().billing.order(project_id, param(data, "end"))), 201


@v1.get("/projects/<project_id>/orders/<int:order_id>")
def show_order(project_id, order_id):
    query()
    if order_id > MAX_ID:
        raise errors.BadParameter("order_id", "at most %d" % MAX_ID)
    project(project_id)
    authorize("meter_export:orders:get", project_id)
    order = state().billing.show(order_id)
    if order.project_id != project_id:
        raise errors.NotFound("no sales order %s in project %s" % (order_id, project_id))
    return views.order(order)


@v1.get("/projects/<project_id>/draft")
def draft(project_id):
    project(project_id)
    authorize("meter_export:orders:get", project_id)
    return views.draft(*state().billing.draft(project_id, param(query("end"), "end")))


@v1.get("/projects/<project_id>/historic")
def historic(project_id):
    project(project_id)
    date = param(query("date"), "date", True)
    authorize("meter_export:orders:get", project_id)
    return views.historic(*state().billing.historic(project_id, date))


def _usage(project_id, with_cost):
    project(project_id)
    args = query("start", "end", "group_by")
    group_by = param(args, "group_by") or "service"
    start = param(args, "start", True)
    authorize("meter_export:usage:get", project_id)
    period, rows = state().billing.usage(project_id, start, param(args, "end"), group_by)
    return views.usage(project_id, period, group_by, rows, with_cost)


@v1.get("/projects/<project_id>/usage")
def usage(project_id):
    return _usage(project_id, with_cost=False)


@v1.get("/projects/<project_id>/rated")
def rated(project_id):
    return _usage(project_id, with_cost=True)
