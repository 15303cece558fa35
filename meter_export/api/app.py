"""The WSGI application: ``make_app(conf)``, every error as JSON."""

import dataclasses
import logging
import time
import typing

import flask
import werkzeug.exceptions

from meter_export.api import almanach
from meter_export.api import auth
from meter_export.api import policy
from meter_export.api import routes
from meter_export.billing import errors
from meter_export.billing import operations
from meter_export.storage import engine as engine_mod

LOG = logging.getLogger(__name__)

STATUS = (
    (errors.BadParameter, 400),
    (errors.NotFound, 404),
    (errors.Refused, 409),
    (routes.Forbidden, 403),
)


@dataclasses.dataclass(frozen=True)
class State:
    billing: operations.Billing
    enforcer: typing.Any
    health_max_age: int


def _error(exc):
    for kind, status in STATUS:
        if isinstance(exc, kind):
            payload = {"error": str(exc)}
            if isinstance(exc, errors.BadParameter):
                payload["parameter"] = exc.parameter
            return flask.jsonify(payload), status
    if isinstance(exc, werkzeug.exceptions.HTTPException):
        # NOTE(api): werkzeug's own response keeps its headers (Allow on a 405).
        response = exc.get_response()
        response.set_data(flask.json.dumps({"error": exc.description}))
        response.content_type = "application/json"
        return response
    LOG.error("Request %s %s failed", flask.request.method, flask.request.path, exc_info=exc)
    return flask.jsonify({"error": "internal error; the API log has the details"}), 500


def make_flask(billing, enforcer, health_max_age=3600):
    """The Flask app alone, without authentication (tests add identities)."""
    app = flask.Flask("meter_export.api")
    app.json.sort_keys = False
    app.extensions["meter_export"] = State(billing, enforcer, health_max_age)
    app.register_blueprint(routes.distil)
    app.register_blueprint(routes.v1)
    app.register_blueprint(almanach.almanach)
    app.register_error_handler(Exception, _error)
    return app


class AccessLog:
    """One line per request: method, path, status, milliseconds; never headers (tokens)."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        started, seen = time.perf_counter(), []

        def record(status, headers, exc_info=None):
            seen.append(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, record)
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            LOG.info("%s %s %s %.1f ms", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"), seen[0] if seen else "-", elapsed)


def make_app(conf, engine=None, clock=None):
    """The production WSGI app: [database], [billing], [api] and auth from ``conf``."""
    engine = engine or engine_mod.make_engine(conf.database.connection)
    kwargs = {"clock": clock} if clock else {}
    billing = operations.Billing(engine, currency=conf.billing.default_currency, **kwargs)
    app = make_flask(billing, policy.make_enforcer(conf), conf.api.health_max_age)
    return AccessLog(auth.wrap(app, conf))
