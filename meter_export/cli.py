"""The meter-export command: parse, prepare the service, call the library.

One function per subcommand; each stays a few lines of wiring.
"""

import logging
import sys

from oslo_config import cfg

from meter_export import service

LOG = logging.getLogger(__name__)

DESCRIPTION = (
    "Export telemetry samples from Gnocchi or the Ceilometer v2 API into an SQL database "
    "(PostgreSQL, MySQL/MariaDB, SQLite), upserted by message_id. Global options such as "
    "--config-file go before the subcommand, e.g. meter-export --config-file "
    "/etc/meter-export/meter-export.conf dbsync."
)


def dbsync(conf):
    from meter_export.listen import events
    from meter_export.storage import entities
    from meter_export.storage import migrate
    from meter_export.storage import samples as sink

    target = sink.Sink.from_conf(conf)
    try:
        revision = migrate.upgrade(target)
        entities.EntityStore(None, engine=target.engine).set_expected_meters(events.expected_meters(conf))
    finally:
        target.close()
    LOG.info("Schema of %s is at revision %s", target, revision)
    return 0


def run(conf, reread=None):
    from meter_export import worker

    return worker.run(conf, once=conf.command.once, reread=reread)


def backfill(conf):
    from meter_export import backfill as backfill_mod

    return backfill_mod.run(conf)


def rate(conf):
    from meter_export.rating import commands

    return commands.rate(conf)


def prices(conf):
    from meter_export.rating import commands

    return {"load": commands.prices_load, "list": commands.prices_list}[conf.command.action](conf)


def bi_role(conf):
    from meter_export.rating import commands

    return commands.bi_role(conf)


def _add_rating_parsers(subparsers):
    parser = subparsers.add_parser(
        "rate",
        help="Derive the hourly usage of a time range again from the samples ([rating] mappings_file).",
        description="Rate every UTC hour of [--start, --end) (widened to whole hours): each hour's usage rows "
        "are replaced in one transaction, so a reader never sees an hour half-rated. Resumable: started "
        "again with the same range, an interrupted run goes on where it stopped.",
    )
    parser.add_argument("--start", required=True, help="ISO 8601 UTC start (inclusive), or a negative duration such as -P30D.")
    parser.add_argument("--end", required=True, help="ISO 8601 UTC end (exclusive), or a negative duration such as -PT1H.")
    parser.set_defaults(func=rate)
    parser = subparsers.add_parser(
        "prices",
        help="Load or list the price list.",
        description="prices load FILE merges a prices file (YAML: currency, prices: [...]) into the price list: "
        "idempotent, and refused as a whole when a price overlaps another for the same service and region. "
        "prices list prints it.",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    load = actions.add_parser("load", help="Merge a prices file into the price list.")
    load.add_argument("file", help="The prices file (YAML).")
    actions.add_parser("list", help="Print the price list.")
    parser.set_defaults(func=prices)
    parser = subparsers.add_parser(
        "bi-role",
        help="Create a read-only database role for BI users (PostgreSQL, MariaDB/MySQL).",
        description="Create or update a login role that can read every table and view (also those a later "
        "dbsync adds), using [database] connection, which needs the right to create roles.",
    )
    parser.add_argument("--name", dest="role", required=True, help="Role (user) name.")
    parser.add_argument("--password", help="Its password; METER_EXPORT_BI_PASSWORD takes precedence.")
    parser.add_argument("--print", dest="print_only", action="store_true", help="Print the SQL instead of running it.")
    parser.set_defaults(func=bi_role)

# One place for the exit codes of a refused request (HTTP status -> exit).
REFUSAL_EXIT = {400: 2, 401: 5, 403: 5, 404: 4, 409: 3}


def api(conf):
    from meter_export.api import server

    return server.serve(conf)


def _transport(conf):
    """The API through the client when an endpoint is given, else in-process."""
    from meter_export import transports

    args = conf.command
    if args.endpoint or args.os_auth_url:
        from meter_export import client

        return transports.Remote(client.Client(args.endpoint, token=args.token, session=_keystone_session(args)))
    return transports.Local(conf)


def _keystone_session(args):
    if not args.os_auth_url:
        return None
    from keystoneauth1 import session
    from keystoneauth1.identity import v3

    auth = v3.Password(
        auth_url=args.os_auth_url,
        username=args.os_username,
        password=args.os_password,
        project_name=args.os_project_name,
        user_domain_name=args.os_user_domain_name,
        project_domain_name=args.os_project_domain_name,
    )
    return session.Session(auth=auth)


def _answer(conf, call):
    from meter_export import client
    from meter_export import formats

    transport = _transport(conf)
    try:
        answer = call(transport, conf.command)
    except client.ApiError as e:
        if isinstance(e, client.Unreachable):
            sys.stderr.write("meter-export: %s\n" % e.message)
            return 1
        named = " (parameter %s)" % e.parameter if e.parameter else ""
        sys.stderr.write("meter-export: refused, HTTP %d%s: %s\n" % (e.status, named, e.message))
        return REFUSAL_EXIT.get(e.status, 1)
    finally:
        transport.close()
    print(formats.render(answer, conf.command.format))
    return 0


_ORDER_ACTIONS = {
    "create": lambda t, a: t.create(_needed(a, "project"), a.end),
    "draft": lambda t, a: t.draft(_needed(a, "project"), a.end),
    "historic": lambda t, a: t.historic(_needed(a, "project"), _needed(a, "date")),
    "range": lambda t, a: t.range(_needed(a, "project"), _needed(a, "start"), a.end),
    "show": lambda t, a: t.show(_needed(a, "project"), _needed(a, "id")),
}


def _needed(args, name):
    value = getattr(args, name)
    if value is None:
        from meter_export import client

        raise client.ApiError(400, "--%s is required here" % name, name)
    return value


def orders(conf):
    return _answer(conf, _ORDER_ACTIONS[conf.command.action])


def usage(conf):
    return _answer(conf, lambda t, a: t.usage(_needed(a, "project"), _needed(a, "start"), a.end, a.group_by, a.rated))


def _transport_arguments(parser):
    import os

    from meter_export import formats

    env = os.environ.get
    parser.add_argument(
        "--format", choices=formats.FORMATS, default="table", help="table (default), json (the API's JSON as it is) or csv."
    )
    group = parser.add_argument_group(
        "transport", "With --endpoint (or --os-auth-url) the request goes to the API; without, it runs in-process against [database]."
    )
    group.add_argument(
        "--endpoint", default=env("METER_EXPORT_ENDPOINT"), help="API URL, e.g. http://billing:8787 (env METER_EXPORT_ENDPOINT)."
    )
    group.add_argument(
        "--token", default=env("METER_EXPORT_TOKEN"), help="X-Auth-Token: a static or Keystone token (env METER_EXPORT_TOKEN)."
    )
    for name in ("auth-url", "username", "password", "project-name", "user-domain-name", "project-domain-name"):
        var = "OS_" + name.upper().replace("-", "_")
        default = env(var, "Default" if "domain" in name else None)
        group.add_argument("--os-" + name, default=default, help="Keystone %s (env %s)." % (name.replace("-", " "), var))


def _add_billing_parsers(subparsers):
    parser = subparsers.add_parser(
        "api",
        help="Serve the REST API ([api] host:port) until SIGTERM.",
        description="Sales orders, drafts, rated usage and health over HTTP, behind Keystone or static tokens "
        "([api] auth_strategy). SIGTERM finishes the requests in hand and exits 0.",
    )
    parser.set_defaults(func=api)
    parser = subparsers.add_parser(
        "orders",
        help="Sales orders: create, draft, historic, range, show.",
        description="create: issue the project's next order, from the end of its last order (or its first usage) "
        "to --end (default today 00:00 UTC), final hours only. draft: the same up to --end (default now), not "
        "stored. historic: the order containing --date, beside it computed again today. range: the orders "
        "intersecting [--start, --end). show: the order --id. Exit 3 when refused (empty period, not final, "
        "overlap), 2 for a bad parameter, 4 when not found, 5 when not allowed.",
    )
    parser.add_argument("action", choices=sorted(_ORDER_ACTIONS), help="What to do.")
    parser.add_argument("--project", help="Project (tenant) id.")
    parser.add_argument("--end", help="ISO 8601 UTC date or datetime (exclusive).")
    parser.add_argument("--start", help="ISO 8601 UTC date or datetime (range).")
    parser.add_argument("--date", help="ISO 8601 UTC date or datetime inside the order (historic).")
    parser.add_argument("--id", type=int, help="Order id (show).")
    _transport_arguments(parser)
    parser.set_defaults(func=orders)
    parser = subparsers.add_parser(
        "usage",
        help="Rated usage of a project over [--start, --end), grouped.",
        description="Quantities (with --rated, unrounded costs too) of a project's rated usage, grouped by service, resource or hour.",
    )
    parser.add_argument("--project", help="Project id.")
    parser.add_argument("--start", help="ISO 8601 UTC date or datetime (inclusive).")
    parser.add_argument("--end", help="ISO 8601 UTC date or datetime (exclusive; default now).")
    parser.add_argument("--group-by", dest="group_by", choices=["service", "resource", "hour"], default="service")
    parser.add_argument("--rated", action="store_true", help="Show the unrounded cost of each group.")
    _transport_arguments(parser)
    parser.set_defaults(func=usage)


def listen(conf):
    from meter_export.listen import service as listen_service

    return listen_service.run(conf)


def _add_parsers(subparsers):
    parser = subparsers.add_parser(
        "dbsync",
        help="Create the schema, or upgrade it to this version; a no-op when it is current.",
        description="Create the samples, checkpoints and quarantine tables in [database] connection, "
        "or run the migrations that bring an existing schema up to date. Safe to run again.",
    )
    parser.set_defaults(func=dbsync)
    parser = subparsers.add_parser(
        "run",
        help="The sync worker: a pass over all streams every [sync] delay seconds.",
        description="Read every stream (source x filter x meter) from its checkpoint up to now minus "
        "[sync] settle, in windows of [sync] max_window, and upsert the samples. SIGTERM finishes "
        "the batch in hand and exits 0.",
    )
    parser.add_argument("--once", action="store_true", help="Make one pass and exit; non-zero if a stream failed.")
    parser.set_defaults(func=run)
    parser = subparsers.add_parser(
        "backfill",
        help="Export a bounded time range once, without moving the live checkpoints.",
        description="Read [--start, --end) for every stream (or the ones named) through the same "
        "pipeline as the worker. Resumable: an interrupted backfill started again with the same "
        "range skips the windows it finished.",
    )
    parser.add_argument("--start", required=True, help="ISO 8601 UTC start (inclusive), or a negative duration such as -P30D.")
    parser.add_argument("--end", required=True, help="ISO 8601 UTC end (exclusive), or a negative duration such as -PT1H.")
    parser.add_argument("--filter", action="append", dest="filters", help="Only this filter (repeatable).")
    parser.add_argument("--meter", action="append", dest="meters", help="Only this meter (repeatable).")
    parser.add_argument(
        "--parallel", type=int, help="Streams read at once (default: [sync] stream_threads; SQLite: 1)."
    )
    parser.set_defaults(func=backfill)
    _add_rating_parsers(subparsers)
    _add_billing_parsers(subparsers)
    parser = subparsers.add_parser(
        "listen",
        help="The notification listener: Nova and Cinder events become entity histories.",
        description="Consume the notifications of [listen] topics on [listen] exchanges from "
        "[listen] transport_url (or RABBITMQ_URL) and keep one row per version of every instance "
        "and volume in the entities table. A batch is acknowledged only after its commit; "
        "malformed notifications go to the quarantine table. SIGTERM finishes the batches in "
        "hand and exits 0.",
    )
    parser.set_defaults(func=listen)


COMMAND = cfg.SubCommandOpt("command", title="Commands", help="Run meter-export COMMAND --help for its options.", handler=_add_parsers)


def _prepare(argv):
    return service.prepare_service(argv, cfg.ConfigOpts(), cli_opts=[COMMAND], description=DESCRIPTION)


def main(argv=None):
    try:
        conf = _prepare(argv)
        if conf.command.func is run:
            # NOTE(worker): SIGHUP re-reads the same command line into a new
            # ConfigOpts, checked like this one before it replaces it.
            return run(conf, reread=lambda: _prepare(argv))
        return conf.command.func(conf)
    except service.ConfigError as e:
        sys.stderr.write("meter-export: configuration error: %s\n" % e)
        return e.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
