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
    from meter_export.storage import migrate
    from meter_export.storage import samples as sink

    target = sink.Sink.from_conf(conf)
    try:
        revision = migrate.upgrade(target)
    finally:
        target.close()
    LOG.info("Schema of %s is at revision %s", target, revision)
    return 0


def run(conf):
    from meter_export import worker

    return worker.run(conf, once=conf.command.once)


def backfill(conf):
    from meter_export import backfill as backfill_mod

    return backfill_mod.run(conf)


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
    parser.add_argument("--parallel", type=int, default=2, help="Streams read at once (default 2).")
    parser.set_defaults(func=backfill)


COMMAND = cfg.SubCommandOpt("command", title="Commands", help="Run meter-export COMMAND --help for its options.", handler=_add_parsers)


def main(argv=None):
    conf = cfg.ConfigOpts()
    try:
        conf = service.prepare_service(argv, conf, cli_opts=[COMMAND], description=DESCRIPTION)
        return conf.command.func(conf)
    except service.ConfigError as e:
        sys.stderr.write("meter-export: configuration error: %s\n" % e)
        return e.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
