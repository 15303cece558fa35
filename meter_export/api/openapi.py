"""The OpenAPI 3 document of the API, served at /v1/openapi.json.

Written next to the routes; tests check both ways that every Flask route is
documented and every documented path answers (and schemathesis checks the
responses against it).
"""

import copy

from meter_export import __version__

_DATE = {
    "type": "string",
    "pattern": r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?)?$",
    "description": "ISO 8601 UTC: a date (midnight) or a datetime, e.g. 2026-11-01 or 2026-11-01T00:00:00Z",
    "example": "2026-11-01",
}
_DECIMAL = {"type": "string", "pattern": r"^-?\d+(\.\d+)?$", "description": "an exact decimal, as text"}
_TS = {"type": "string", "format": "date-time"}
_LINE = {
    "type": "object",
    "required": ["resource_id", "service", "unit", "quantity", "unit_price", "cost", "kind"],
    "properties": {
        "resource_id": {"type": "string"},
        "service": {"type": "string"},
        "unit": {"type": "string"},
        "quantity": _DECIMAL,
        "unit_price": _DECIMAL,
        "cost": _DECIMAL,
        "kind": {"type": "string", "enum": ["usage", "adjustment", "difference"]},
        "adjusts": {"type": "integer", "description": "the order an adjustment corrects"},
        "provisional": {"type": "boolean", "description": "drafts: some of the line's hours are not final yet"},
    },
}
_ORDER = {
    "type": "object",
    "required": ["id", "project_id", "start", "end", "currency", "total", "lines"],
    "properties": {
        "id": {"type": ["integer", "null"]},
        "project_id": {"type": "string"},
        "start": _TS,
        "end": _TS,
        "issued_at": {"type": ["string", "null"], "format": "date-time"},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "total": _DECIMAL,
        "lines": {"type": "array", "items": {"$ref": "#/components/schemas/Line"}},
        "draft": {"type": "boolean"},
        "final_until": {"type": ["string", "null"], "format": "date-time"},
    },
}
_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "parameter": {"type": "string", "description": "the bad parameter"}},
}
_USAGE = {
    "type": "object",
    "required": ["project_id", "start", "end", "group_by", "usage"],
    "properties": {
        "project_id": {"type": "string"},
        "start": _TS,
        "end": _TS,
        "group_by": {"type": "string"},
        "usage": {"type": "array", "items": {"type": "object", "required": ["quantity", "final"]}},
    },
}


def _ref(name):
    return {"$ref": "#/components/schemas/%s" % name}


def _json(schema, description):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes):
    text = {
        400: "a bad parameter, named in the body",
        401: "no valid X-Auth-Token",
        403: "the policy refuses this project",
        404: "no such order",
        409: "refused by the data: empty period, overlap, not final yet",
        503: "a stream lags",
    }
    return {str(c): _json(_ref("Error"), text[c]) for c in codes}


def _query(name, required=False, schema=None, description=None):
    param = {"name": name, "in": "query", "required": required, "schema": schema or _DATE}
    if description:
        param["description"] = description
    return param


_PROJECT = {"name": "project_id", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1, "maxLength": 255}}
_GROUP_BY = _query("group_by", schema={"type": "string", "enum": ["service", "resource", "hour"], "default": "service"})


def _distil(summary, properties, required, ok, status="200", rule=None):
    schema = {"type": "object", "required": required, "properties": properties}
    return {
        "post": {
            "summary": summary,
            "tags": ["distil-v1"],
            "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
            "responses": {status: ok, **_errors(400, 401, 403, 404, 409)},
        }
    }


_TENANT = {"type": "string", "minLength": 1, "maxLength": 255, "description": "the project id"}


def _paths():
    order, orders = _json(_ref("Order"), "an order"), _json(_ref("Orders"), "orders")
    historic = _json(_ref("Historic"), "the issued order, regenerated from today's rated usage, the difference per line")
    get = lambda summary, params, ok, *codes: {  # noqa: E731
        "get": {"summary": summary, "parameters": params, "responses": {"200": ok, **_errors(400, 401, 403, *codes)}}
    }
    return {
        "/": {"get": {"summary": "API versions", "security": [], "responses": {"200": _json({"type": "object"}, "versions")}}},
        "/sales_order": _distil(
            "Issue the next order, up to end (default today 00:00 UTC)", {"tenant": _TENANT, "end": _DATE}, ["tenant"], order, "201"
        ),
        "/sales_draft": _distil("The next order up to end (default now), not stored", {"tenant": _TENANT, "end": _DATE}, ["tenant"], order),
        "/sales_historic": _distil(
            "The issued order containing date, computed again", {"tenant": _TENANT, "date": _DATE}, ["tenant", "date"], historic
        ),
        "/sales_range": _distil(
            "Issued orders intersecting [start, end)", {"tenant": _TENANT, "start": _DATE, "end": _DATE}, ["tenant", "start"], orders
        ),
        "/collect_usage": {
            "post": {
                "summary": "Make the running worker start a pass now",
                "tags": ["distil-v1"],
                "responses": {"202": _json({"type": "object", "required": ["requested_at"]}, "requested"), **_errors(401, 403)},
            }
        },
        "/v1/openapi.json": {
            "get": {"summary": "This document", "security": [], "responses": {"200": _json({"type": "object"}, "OpenAPI 3")}}
        },
        "/v1/health": {
            "get": {
                "summary": "Completeness of every live stream",
                "responses": {
                    "200": _json(_ref("Health"), "every stream is fresh"),
                    "503": _json(_ref("Health"), "a stream lags, or none has a checkpoint"),
                    **_errors(401, 403),
                },
            }
        },
        "/v1/prices": get("The price list", [], _json({"type": "object", "required": ["prices"]}, "prices")),
        "/v1/projects/{project_id}/orders": {
            **get("The project's orders, or those intersecting [start, end)", [_PROJECT, _query("start"), _query("end")], orders),
            "post": {
                "summary": "Issue the next order",
                "parameters": [_PROJECT],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": {"type": "object", "properties": {"end": _DATE}}}},
                },
                "responses": {"201": order, **_errors(400, 401, 403, 409)},
            },
        },
        "/v1/projects/{project_id}/orders/{order_id}": get(
            "One order",
            [
                _PROJECT,
                {"name": "order_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}},
            ],
            order,
            404,
        ),
        "/v1/projects/{project_id}/draft": get("A draft up to end (default now)", [_PROJECT, _query("end")], order, 409),
        "/v1/projects/{project_id}/historic": get(
            "The issued order containing date, computed again", [_PROJECT, _query("date", True)], historic, 404
        ),
        "/v1/projects/{project_id}/usage": get(
            "Rated quantities over [start, end)", [_PROJECT, _query("start", True), _query("end"), _GROUP_BY], _json(_ref("Usage"), "usage")
        ),
        "/v1/projects/{project_id}/rated": get(
            "Rated usage with unrounded costs over [start, end)",
            [_PROJECT, _query("start", True), _query("end"), _GROUP_BY],
            _json(_ref("Usage"), "rated usage"),
        ),
    }


def document():
    """A fresh copy of the document (callers may change it)."""
    from meter_export.api import almanach

    return copy.deepcopy(
        {
            "openapi": "3.1.0",
            "info": {"title": "meter-export", "version": __version__, "description": "Sales orders and rated usage."},
            "security": [{"token": []}],
            "paths": {**_paths(), **almanach.paths()},
            "components": {
                "securitySchemes": {"token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"}},
                "schemas": {
                    "Line": _LINE,
                    "Order": _ORDER,
                    "Orders": {
                        "type": "object",
                        "required": ["orders"],
                        "properties": {"orders": {"type": "array", "items": _ref("Order")}},
                    },
                    "Historic": {
                        "type": "object",
                        "required": ["order", "regenerated", "difference"],
                        "properties": {
                            "order": _ref("Order"),
                            "regenerated": _ref("Order"),
                            "difference": {"type": "array", "items": _ref("Line")},
                        },
                    },
                    "Usage": _USAGE,
                    "Health": {"type": "object", "required": ["health"]},
                    "Error": _ERROR,
                },
            },
        }
    )
