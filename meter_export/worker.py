"""meter-export run: the sync workers (and metrics endpoint) under cotyledon.

The same pass code runs in `run --once` (in-process) and in each SyncService
child; streams are split among children by a stable hash of their key.
"""

import logging
import os
import signal
import tempfile
import threading
import time
import wsgiref.simple_server
import zlib

import cotyledon
import sqlalchemy as sa
from cotyledon import oslo_config_glue

from meter_export import filters as filters_mod
from meter_export import service
from meter_export import sources
from meter_export import sync
from meter_export import utils
from meter_export.storage import migrate
from meter_export.storage import samples as sink_mod

LOG = logging.getLogger(__name__)


def load_streams(conf):
    """Every stream of the filters file; raises service.ConfigError."""
    try:
        filters = filters_mod.load(conf.sync.filters_file)
    except filters_mod.FiltersError as e:
        raise service.ConfigError("sync", "filters_file", str(e))
    return sync.streams(conf.source.driver, filters)


def check_ready(conf):
    """Start-up checks that need the outside world: credentials, database.

    :raises service.ConfigError: before anything is read or written.
    """
    service.check_credentials(conf)
    target = sink_mod.Sink.from_conf(conf)
    url = target.engine.url
    if url.get_backend_name() == "sqlite" and url.database and not os.path.exists(url.database):
        # NOTE(sink): connecting would create an empty file; say what to do instead.
        target.close()
        raise service.ConfigError("database", "connection", "%s does not exist: run meter-export dbsync" % url.database)
    try:
        with target.engine.connect() as conn:
            revision = migrate.current_revision(conn)
    except sa.exc.DBAPIError as e:
        raise service.UnreachableError("database", "connection", "cannot connect to %s: %s" % (target, e.orig))
    finally:
        target.close()
    if revision != migrate.head():
        raise service.ConfigError(
            "database",
            "connection",
            "schema is at revision %s, this version needs %s: run meter-export dbsync" % (revision, migrate.head()),
        )


def mine(streams, worker_id, workers):
    # NOTE(sink): crc32 and not hash(): str hashes differ between processes.
    return [s for s in streams if zlib.crc32(str(s).encode()) % workers == worker_id]


class Syncer:
    """Owns a source and a sink in the process that uses them."""

    def __init__(self, conf, streams, shutdown):
        self.conf, self.streams, self.shutdown = conf, streams, shutdown
        self.source = sources.get_driver(conf, shutdown)
        self.sink = sink_mod.Sink.from_conf(conf, shutdown)

    def one_pass(self):
        started = time.time()
        results = sync.run_pass(self.source, self.sink, self.streams, self.conf, self.shutdown)
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            from meter_export import metrics

            metrics.record_pass(started, time.time(), results)
        return results

    def close(self):
        self.source.close()
        self.sink.close()


class SyncService(cotyledon.Service):
    """A pass every [sync] delay seconds, sleeping only what is left."""

    name = "sync"

    def __init__(self, worker_id, conf, streams):
        super().__init__(worker_id)
        service.setup_logging(conf)  # lost in the child under forkserver/spawn
        self.conf = conf
        self.streams = mine(streams, worker_id, conf.sync.workers)
        self._shutdown = threading.Event()
        self._wake_up = threading.Event()
        self._stopped = threading.Event()

    def run(self):
        syncer = Syncer(self.conf, self.streams, self._shutdown)
        LOG.info("Sync worker %d started with %d streams", self.worker_id, len(self.streams))
        try:
            while not self._shutdown.is_set():
                watch = utils.StopWatch()
                try:
                    syncer.one_pass()
                except Exception:
                    LOG.error("Pass failed", exc_info=True)
                self._wake_up.wait(max(0, self.conf.sync.delay - watch.elapsed()))
        finally:
            syncer.close()
            self._stopped.set()

    def terminate(self):
        LOG.info("Sync worker %d stopping after the batch in hand", self.worker_id)
        self._shutdown.set()
        self._wake_up.set()
        self._stopped.wait()


class MetricsService(cotyledon.Service):
    """Serves /metrics on [metrics] host:port."""

    name = "metrics"

    def __init__(self, worker_id, conf):
        super().__init__(worker_id)
        service.setup_logging(conf)
        self.conf = conf
        self._server = None

    def run(self):
        from meter_export import metrics

        sink = sink_mod.Sink.from_conf(self.conf)
        self._server = wsgiref.simple_server.make_server(
            self.conf.metrics.host, self.conf.metrics.port, metrics.make_app(sink), handler_class=_QuietHandler
        )
        LOG.info("Metrics on http://%s:%d/metrics", self.conf.metrics.host, self.conf.metrics.port)
        self._server.serve_forever()

    def terminate(self):
        if self._server is not None:
            self._server.shutdown()


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, *args):
        pass


def run_once(conf, streams):
    """One pass in this process; 1 when a stream failed or was interrupted."""
    shutdown = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: shutdown.set())
    syncer = Syncer(conf, streams, shutdown)
    try:
        results = syncer.one_pass()
    finally:
        syncer.close()
    failed = [r for r in results if r.error]
    unfinished = len(streams) - len([r for r in results if r.complete])
    LOG.info(
        "Pass done: %d streams, %d failed, %d unfinished, %d samples written",
        len(streams),
        len(failed),
        unfinished,
        sum(r.written for r in results),
    )
    # NOTE(sink): a pass cut short by SIGTERM is not a success for a script
    # waiting on `run --once`, even though nothing was lost.
    return 1 if unfinished else 0


def run(conf, once=False):
    streams = load_streams(conf)
    check_ready(conf)
    if once:
        return run_once(conf, streams)
    if conf.metrics.port and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # NOTE(sink): must be set before prometheus_client is imported.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="meter-export-metrics-")
    manager = cotyledon.ServiceManager()
    oslo_config_glue.setup(manager, conf)
    manager.add(SyncService, workers=conf.sync.workers, args=(conf, streams))
    if conf.metrics.port:
        manager.add(MetricsService, workers=1, args=(conf,))
    manager.run()
    return 0
