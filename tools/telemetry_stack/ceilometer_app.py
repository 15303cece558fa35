"""Serve the REAL Ceilometer 9.0.7 v2 API (pecan app + SQL storage driver).

Runs INSIDE the ceilometer venv (see venvs.SPECS["ceilometer"]), never in
ours: it imports ceilometer, which needs SQLAlchemy<2 and friends.

    python ceilometer_app.py serve --port 8777 --db /tmp/x/ceilometer.sqlite
    python ceilometer_app.py seed --db /tmp/x/ceilometer.sqlite --file s.jsonl

What is real: the controllers, WSME/pecan parsing, the error middleware,
the SQL storage driver and its models.  What is ours: two Python 3.11
shims, the option registration (only what the API reads), create_all
instead of sqlalchemy-migrate, and an identity wrapper in place of
keystonemiddleware.
"""

import argparse
import collections
import gc
import inspect
import json
import logging
import os
import socketserver
import sys
from wsgiref import simple_server

# NOTE(ceilometer): run as a script, this file's directory is sys.path[0],
# where our own telemetry_stack/ceilometer.py would shadow the real package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

LOG = logging.getLogger("ceilometer_app")

_ArgSpec = collections.namedtuple("ArgSpec", "args varargs keywords defaults")

# NOTE(ceilometer): ceilometer's own policy.json (etc/ceilometer) has a
# trailing comma; these are the same rules, as valid JSON.
POLICY = {
    "context_is_admin": "role:admin",
    "segregation": "rule:context_is_admin",
    "telemetry:get_samples": "",
    "telemetry:get_sample": "",
    "telemetry:query_sample": "",
    "telemetry:create_samples": "",
    "telemetry:compute_statistics": "",
    "telemetry:get_meters": "",
    "telemetry:get_resource": "",
    "telemetry:get_resources": "",
}

UNAUTHORIZED = {
    "error": {
        "code": 401,
        "title": "Unauthorized",
        "message": "The request you have made requires authentication.",
    }
}


def _getargspec(func):
    return _ArgSpec(*inspect.getfullargspec(func)[:4])


def _lowercase_keys(mapping):
    """Same meaning as ceilometer.utils.lowercase_keys, without mutating
    the dict while iterating over it (an error since Python 3.8)."""
    for key, value in list(mapping.items()):
        del mapping[key]
        mapping[key.lower()] = value


def apply_shims():
    # NOTE(ceilometer): inspect.getargspec was removed in 3.11; every sample,
    # meter and resource query calls it.
    inspect.getargspec = _getargspec
    from ceilometer import utils

    # NOTE(ceilometer): query.py calls it as utils.lowercase_keys, so
    # patching the module attribute is enough.
    utils.lowercase_keys = _lowercase_keys


def write_config(workdir, db_path, default_limit, gnocchi):
    """The ceilometer.conf and policy.json the app reads, beside the DB."""
    policy = os.path.join(workdir, "policy.json")
    with open(policy, "w") as f:
        json.dump(POLICY, f)
    path = os.path.join(workdir, "ceilometer.conf")
    lines = [
        "[DEFAULT]",
        "transport_url = fake://",
        "meter_dispatchers = database",
        "[database]",
        # NOTE(ceilometer): sessions left in reference cycles are collected
        # (and their connections closed) by whichever request thread runs
        # gc next; pysqlite refuses that unless check_same_thread is off.
        "connection = sqlite:///%s?check_same_thread=false&timeout=30" % os.path.abspath(db_path),
        "max_retries = 0",
        "[api]",
        "default_api_return_limit = %d" % default_limit,
        "gnocchi_is_enabled = %s" % gnocchi,
        "aodh_is_enabled = False",
        "panko_is_enabled = False",
        "[oslo_policy]",
        "policy_file = %s" % policy,
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def make_conf(config_file):
    """A ConfigOpts with only the options the v2 API and storage read."""
    from ceilometer import dispatcher
    from ceilometer import sample
    from ceilometer import storage
    from ceilometer.api import app
    from ceilometer.api.controllers.v2 import root
    from ceilometer.publisher import messaging as publisher_messaging
    from ceilometer.publisher import utils as publisher_utils
    from oslo_config import cfg
    from oslo_db import options as db_options

    conf = cfg.ConfigOpts()
    db_options.set_defaults(conf)
    conf.register_opts(storage.OPTS, group="database")
    conf.register_opts(app.API_OPTS + root.API_OPTS, group="api")
    conf.register_opts(sample.OPTS + dispatcher.OPTS)
    conf.register_opts(publisher_utils.OPTS, group="publisher")
    conf.register_opts(publisher_messaging.NOTIFIER_OPTS, group="publisher_notifier")
    conf([], project="ceilometer", default_config_files=[config_file])
    return conf


def storage_connection(conf):
    """The real SQL driver, with its schema created by create_all."""
    from ceilometer import storage
    from ceilometer.storage.sqlalchemy import models

    conn = storage.get_connection(conf, conf.database.connection)
    # NOTE(ceilometer): upgrade() needs sqlalchemy-migrate, which does not
    # run on SQLAlchemy 1.4; create_all builds the same final schema.
    models.Base.metadata.create_all(conn._engine_facade.get_engine())
    return conn


class Identity:
    """Stands where keystonemiddleware would: sets the identity headers.

    Admin by default; with ``project`` a member of that project only (to
    see the API's silent project scoping).  With ``token`` a request
    without that X-Auth-Token gets keystonemiddleware's 401.
    """

    def __init__(self, app, project=None, token=None):
        self.app = app
        self.project = project
        self.token = token

    def __call__(self, environ, start_response):
        if self.token and environ.get("HTTP_X_AUTH_TOKEN") != self.token:
            body = json.dumps(UNAUTHORIZED).encode()
            start_response(
                "401 Unauthorized",
                [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(body))),
                    ("WWW-Authenticate", 'Keystone uri="http://127.0.0.1/identity"'),
                ],
            )
            return [body]
        environ["HTTP_X_ROLES"] = "member" if self.project else "admin"
        environ["HTTP_X_PROJECT_ID"] = self.project or "admin-project"
        environ["HTTP_X_USER_ID"] = "admin-user"
        return self.app(environ, start_response)


class CollectAfterRequest:
    """Runs gc.collect() once a response has been sent.

    NOTE(ceilometer): the driver leaves ORM sessions in reference cycles;
    until they are collected they hold a SQLite read transaction and the
    next write fails with "database is locked".
    """

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if environ["REQUEST_METHOD"] != "GET":
            gc.collect()  # what the previous request threads left behind
        try:
            yield from self.app(environ, start_response)
        finally:
            gc.collect()


class ThreadingWSGIServer(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class QuietHandler(simple_server.WSGIRequestHandler):
    def log_message(self, format, *args):
        LOG.debug("%s " + format, self.address_string(), *args)


def serve(args):
    workdir = os.path.dirname(os.path.abspath(args.db))
    conf = make_conf(write_config(workdir, args.db, args.default_limit, args.gnocchi))
    storage_connection(conf)
    from ceilometer.api import app as ceilometer_app

    wsgi = Identity(ceilometer_app.setup_app(conf=conf), args.non_admin, args.token)
    server = simple_server.make_server(
        "127.0.0.1",
        args.port,
        CollectAfterRequest(wsgi),
        server_class=ThreadingWSGIServer,
        handler_class=QuietHandler,
    )
    LOG.info("ceilometer 9.0.7 v2 API on http://127.0.0.1:%d (db %s)", args.port, args.db)
    server.serve_forever()


def _sample_row(conn, cache, data):
    from oslo_utils import timeutils

    meter_key = (data["counter_name"], data["counter_type"], data["counter_unit"])
    if meter_key not in cache:
        cache[meter_key] = conn._create_meter(cache["sql"], *meter_key)
    meta = data.get("resource_metadata") or {}
    res_key = (
        data["resource_id"],
        data.get("user_id"),
        data.get("project_id"),
        data.get("source", "openstack"),
        json.dumps(meta, sort_keys=True),
    )
    if res_key not in cache:
        cache[res_key] = conn._create_resource(cache["sql"], *res_key[:4], meta)
    row = {
        "meter_id": cache[meter_key],
        "resource_id": cache[res_key],
        "timestamp": timeutils.normalize_time(timeutils.parse_isotime(data["timestamp"])),
        "volume": data["counter_volume"],
        "message_signature": data.get("message_signature", ""),
        "message_id": data["message_id"],
    }
    if data.get("recorded_at"):
        row["recorded_at"] = timeutils.normalize_time(timeutils.parse_isotime(data["recorded_at"]))
    return row


def seed(args):
    """Bulk-insert meter messages (one JSON object a line) into the DB.

    Meters and resources go through the real driver's helpers; the sample
    rows are inserted with executemany, which is ~100x faster than
    record_metering_data one sample at a time.
    """
    from ceilometer.storage.sqlalchemy import models

    workdir = os.path.dirname(os.path.abspath(args.db))
    conf = make_conf(write_config(workdir, args.db, 100, False))
    conn = storage_connection(conf)
    table = models.Sample.__table__
    count = 0
    with conn._engine_facade.get_engine().begin() as sql, open(args.file) as f:
        cache = {"sql": sql}
        batch = []
        for line in f:
            if line.strip():
                batch.append(_sample_row(conn, cache, json.loads(line)))
            if len(batch) >= 5000:
                sql.execute(table.insert(), batch)
                count, batch = count + len(batch), []
        if batch:
            sql.execute(table.insert(), batch)
            count += len(batch)
    print(json.dumps({"inserted": count}))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve", help="serve the v2 API")
    run.add_argument("--port", type=int, default=8777)
    run.add_argument("--db", required=True, help="SQLite file (created if absent)")
    run.add_argument("--default-limit", type=int, default=100, help="[api] default_api_return_limit")
    run.add_argument("--non-admin", metavar="PROJECT", help="act as a member of PROJECT, not admin")
    run.add_argument("--token", help="require this X-Auth-Token (401 otherwise)")
    run.add_argument("--gnocchi", action="store_true", help="answer 410 as a Gnocchi-backed install")
    load = sub.add_parser("seed", help="bulk-insert samples from a JSON-lines file")
    load.add_argument("--db", required=True)
    load.add_argument("--file", required=True)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    apply_shims()
    {"serve": serve, "seed": seed}[args.command](args)


if __name__ == "__main__":
    main()
