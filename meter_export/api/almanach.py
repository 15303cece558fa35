"""Almanach's read routes (``/v1/project/<id>/instances|volumes|entities``,
``/v1/entity/<id>``, ``/v1/volume_types``, ``/v1/volume_type/<id>``,
``/v1/info``) over storage/entity_reads.py.

Same parameter formats as Almanach (``start`` required, ``end`` defaulting
to now, ``%Y-%m-%d %H:%M:%S.%f`` or ISO 8601) and the same X-Auth-Token rules
as the rest of the API; ``/v1/info`` needs no token, as in Almanach.
"""

import flask

from meter_export import __version__
from meter_export.api import routes
from meter_export.billing import errors
from meter_export.storage import entity_reads

almanach = flask.Blueprint("almanach_v1", __name__, url_prefix="/v1")
_READER = entity_reads.EntityReader()
_KINDS = {"instances": "instance", "volumes": "volume", "entities": None}


def _engine():
    return routes.state().billing.engine


def _read(fn, *args):
    """Run a read; its refusals become the API's (400 naming the parameter, 404)."""
    try:
        with _engine().connect() as conn:
            return fn(conn, *args)
    except entity_reads.BadParameter as e:
        raise errors.BadParameter(e.parameter, str(e).split(": ", 1)[1])
    except entity_reads.NotFound as e:
        raise errors.NotFound(str(e))


def _period(args):
    try:
        return entity_reads.parse_period(routes.param(args, "start"), routes.param(args, "end"), now=routes.state().billing.clock())
    except entity_reads.BadParameter as e:
        raise errors.BadParameter(e.parameter, str(e).split(": ", 1)[1])


def _project_entities(project_id, kind):
    routes.project(project_id)
    args = routes.query("start", "end")
    routes.authorize("meter_export:entities:get", project_id)
    start, end = _period(args)
    return flask.jsonify(_read(_READER.of_project, project_id, start, end, _KINDS[kind]))


@almanach.get("/project/<project_id>/instances")
def instances(project_id):
    return _project_entities(project_id, "instances")


@almanach.get("/project/<project_id>/volumes")
def volumes(project_id):
    return _project_entities(project_id, "volumes")


@almanach.get("/project/<project_id>/entities")
def project_entities(project_id):
    return _project_entities(project_id, "entities")


@almanach.get("/entity/<entity_id>")
def entity(entity_id):
    routes.query()
    versions = _read(_READER.history, entity_id)
    routes.authorize("meter_export:entities:get", versions[0]["project_id"])
    return flask.jsonify(versions)


@almanach.get("/volume_types")
def volume_types():
    routes.query()
    routes.authorize("meter_export:volume_types:get")
    return flask.jsonify(_read(_READER.all_volume_types))


@almanach.get("/volume_type/<volume_type_id>")
def volume_type(volume_type_id):
    routes.query()
    routes.authorize("meter_export:volume_types:get")
    return _read(_READER.volume_type, volume_type_id)


@almanach.get("/info")
def info():
    routes.query()
    return _read(_READER.info, __version__)


def _get(summary, params, ok, *codes):
    from meter_export.api import openapi

    responses = {"200": ok, **openapi._errors(400, 401, 403, *codes)}
    return {"get": {"summary": summary, "tags": ["almanach-v1"], "parameters": params, "responses": responses}}


def paths():
    """This blueprint's part of the OpenAPI document."""
    from meter_export.api import openapi

    entities = openapi._json(
        {"type": "array", "items": {"type": "object", "required": ["entity_id", "entity_type", "start", "end"]}}, "versions"
    )
    project = dict(openapi._PROJECT)
    period = [project, openapi._query("start", True), openapi._query("end")]
    out = {
        "/v1/project/{project_id}/%s" % kind: _get("The project's %s versions overlapping [start, end]" % kind, period, entities)
        for kind in _KINDS
    }
    entity_id = {"name": "entity_id", "in": "path", "required": True, "schema": {"type": "string"}}
    type_id = {"name": "volume_type_id", "in": "path", "required": True, "schema": {"type": "string"}}
    out["/v1/entity/{entity_id}"] = _get("Every version of one instance or volume", [entity_id], entities, 404)
    out["/v1/volume_types"] = _get("Cinder's volume types", [], openapi._json({"type": "array"}, "volume types"))
    out["/v1/volume_type/{volume_type_id}"] = _get("One volume type", [type_id], openapi._json({"type": "object"}, "a volume type"), 404)
    out["/v1/info"] = {
        "get": {
            "summary": "Version and entity counts",
            "tags": ["almanach-v1"],
            "security": [],
            "responses": {"200": openapi._json({"type": "object", "required": ["info", "database"]}, "info")},
        }
    }
    return out
