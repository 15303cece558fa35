"""The rating subcommands: rate, prices load/list, bi-role (thin shells)."""

import logging
import os
import re
import sys
import threading

from meter_export import checkpoint
from meter_export import service
from meter_export import utils
from meter_export.rating import RatingError
from meter_export.rating import pricelist
from meter_export.rating import rater as rater_mod
from meter_export.storage import dialects
from meter_export.storage import prices as prices_mod
from meter_export.storage import samples as sink_mod

LOG = logging.getLogger(__name__)
RATE_KEY = ("rating", "", "")


def _sink(conf):
    """The database, checked to be at this version's schema; raises ConfigError."""
    sink = sink_mod.Sink.from_conf(conf)
    try:
        service.check_schema(sink.engine)
    except service.ConfigError:
        sink.close()
        raise
    return sink


def _rater(conf, sink):
    if not conf.rating.mappings_file:
        raise service.ConfigError("rating", "mappings_file", "required to rate usage")
    try:
        return rater_mod.Rater.from_conf(conf, sink)
    except RatingError as e:
        raise service.ConfigError("rating", "mappings_file", str(e))


def check(conf):
    """Start-up check of the mappings file when rating is on; raises ConfigError."""
    if conf.rating.mappings_file:
        from meter_export.rating import mappings

        try:
            mappings.load(conf.rating.mappings_file)
        except RatingError as e:
            raise service.ConfigError("rating", "mappings_file", str(e))


def _range(conf):
    now = utils.utcnow()
    bounds = []
    for name in ("start", "end"):
        try:
            bounds.append(utils.parse_start(getattr(conf.command, name), now))
        except ValueError as e:
            raise service.ConfigError(None, "--" + name, str(e))
    start, end = rater_mod.floor_hour(bounds[0]), rater_mod.ceil_hour(bounds[1])
    if start >= end:
        raise service.ConfigError(None, "--start", "must be before --end")
    return start, end


class _Progress:
    def __init__(self, total):
        self.total, self.done, self.rows, self.watch = total, 0, 0, utils.StopWatch()

    def __call__(self, hour, rows):
        self.done, self.rows = self.done + 1, rows

    def line(self):
        bar = "#" * int(30 * self.done / max(self.total, 1))
        eta = self.watch.elapsed() / self.done * (self.total - self.done) if self.done else 0.0
        return "[%-30s] %d/%d hours, %d usage rows, ETA %ds" % (bar, self.done, self.total, self.rows, eta)


def rate(conf):
    """meter-export rate: re-derive [--start, --end) hour by hour, resumable."""
    start, end = _range(conf)
    sink = _sink(conf)
    try:
        return _rate(_rater(conf, sink), sink, start, end)
    finally:
        sink.close()


def _rate(rater, sink, start, end):
    scope = "rate:%s/%s" % (start.strftime("%Y%m%dT%H"), end.strftime("%Y%m%dT%H"))
    with sink.engine.connect() as conn:
        done = checkpoint.get(conn, sink.checkpoints, scope, RATE_KEY)
    todo = rater_mod.hours(done or start, end)
    LOG.info("Rating %s: %d hours to do%s", scope, len(todo), " (resumed)" if done else "")
    from meter_export import backfill  # NOTE(rating): backfill calls after_backfill here

    progress, stop = _Progress(len(todo)), threading.Event()
    printer = threading.Thread(target=backfill.report, args=(progress, stop), daemon=True)
    printer.start()

    def hour_done(hour, rows):
        progress(hour, rows)
        with sink.engine.begin() as conn:
            checkpoint.advance(conn, sink.checkpoints, scope, RATE_KEY, hour + rater_mod.HOUR, utils.utcnow())

    try:
        rater.rate_range(todo[0] if todo else end, end, hour_done)
    finally:
        stop.set()
        printer.join()
    with sink.engine.begin() as conn:
        # NOTE(rating): a finished range is forgotten, so running it again re-derives it.
        checkpoint.delete_scope(conn, sink.checkpoints, scope)
    return 0


def after_backfill(conf, sink, start, end):
    """Rate the hours a backfill loaded, when rating is on; returns an exit code."""
    if not conf.rating.mappings_file:
        return 0
    rater = _rater(conf, sink)
    written = rater.rate_range(start, end)
    LOG.info("Rated the backfilled range: %d usage rows", written)
    return 0


def prices_load(conf):
    try:
        loaded = pricelist.load(conf.command.file)
    except pricelist.PricesError as e:
        raise service.ConfigError(None, conf.command.file, str(e))
    sink = _sink(conf)
    try:
        written, unchanged = prices_mod.load(sink.engine, sink.metadata.tables["prices"], loaded)
    except pricelist.PricesError as e:
        raise service.ConfigError(None, conf.command.file, str(e))
    finally:
        sink.close()
    LOG.info("Prices from %s: %d written, %d unchanged", conf.command.file, written, unchanged)
    return 0


def prices_list(conf, out=sys.stdout):
    sink = _sink(conf)
    try:
        with sink.engine.connect() as conn:
            prices = prices_mod.all_prices(conn, sink.metadata.tables["prices"])
    finally:
        sink.close()
    header = ("service", "region", "unit", "per", "price", "currency", "valid_from", "valid_to")
    rows = [header] + [
        (p.service, p.region or "*", p.unit, p.per, str(p.price.normalize()), p.currency, utils.isoformat(p.valid_from)[:16],
         utils.isoformat(p.valid_to)[:16] if p.valid_to else "-")
        for p in prices
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n")
    return 0


def bi_role(conf, out=sys.stdout):
    """Create (or update) a read-only role for BI users; --print only shows the SQL."""
    name = conf.command.role
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$", name):
        raise service.ConfigError(None, "--name", "%r: letters, digits and _ only" % name)
    password = os.environ.get("METER_EXPORT_BI_PASSWORD") or conf.command.password
    if not password:
        raise service.ConfigError(None, "--password", "required (or set METER_EXPORT_BI_PASSWORD)")
    sink = sink_mod.Sink.from_conf(conf)
    try:
        rules = dialects.rules(sink.engine.dialect)
        if rules.read_only_role is None:
            raise service.ConfigError("database", "connection", "SQLite has no roles: give BI users a read-only copy of the file")
        statements = rules.read_only_role(name, password, sink.engine.url.database)
        if conf.command.print_only:
            out.write(";\n".join(statements) + ";\n")
            return 0
        with sink.engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement.replace("%", "%%"))
    finally:
        sink.close()
    LOG.info("Read-only role %s can now read every table and view of %s", name, sink)
    return 0
