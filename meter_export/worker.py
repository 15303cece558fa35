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
from cotyledon import oslo_config_glue

from meter_export import filters as filters_mod
from meter_export import service
from meter_export import sync
from meter_export import utils
from meter_export.rating import commands as rating_commands
from meter_export.rating import rater as rating
from meter_export.storage import samples as sink_mod
from meter_export.storage import wakeups

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
    rating_commands.check(conf)
    target = sink_mod.Sink.from_conf(conf)
    try:
        service.check_schema(target.engine)
    finally:
        target.close()


def mine(streams, worker_id, workers):
    # NOTE(sink): crc32 and not hash(): str hashes differ between processes.
    return [s for s in streams if zlib.crc32(str(s).encode()) % workers == worker_id]


class Syncer:
    """Owns a source and a sink in the process that uses them."""

    def __init__(self, conf, streams, shutdown, rated_streams=()):
        self.conf, self.streams, self.shutdown = conf, streams, shutdown
        self.sink = sink_mod.Sink.from_conf(conf, shutdown)
        self.drivers = sync.driver_pool(conf, shutdown)
        # NOTE(rating): one process rates (worker 0, or run --once), for all streams.
        self.rater = rating.PassRater.from_conf(conf, self.sink, rated_streams) if rated_streams else None

    def one_pass(self):
        started = time.time()
        results = sync.run_pass(self.drivers, self.sink, self.streams, self.conf, self.shutdown)
        if self.rater is not None and not self.shutdown.is_set():
            self.rater.after_pass()
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            from meter_export import metrics

            metrics.record_pass(started, time.time(), results)
        return results

    def close(self):
        self.drivers.close()
        self.sink.close()


class Plan:
    """What the master hands each sync child it forks: (conf, streams).

    NOTE(worker): cotyledon builds every child, a respawned one too, from the
    args given to ServiceManager.add(), and reconfigure() changes only the
    worker count.  The args hold this box, and a SIGHUP in the master swaps
    its content, so the children forked after it (memory copied by fork, or
    the box pickled at start under spawn) start from the new options and
    filters.  One attribute, so a fork never sees half a swap.
    """

    def __init__(self, conf, streams):
        self.state = (conf, streams)

    @property
    def conf(self):
        return self.state[0]

    @property
    def streams(self):
        return self.state[1]


class Reloader:
    """The master's SIGHUP hook: take the new configuration, or keep the old.

    :param reread: builds a fresh, checked ConfigOpts from the command line
        the daemon was started with (raises service.ConfigError).
    """

    def __init__(self, manager, sync_id, plan, reread):
        self.manager, self.sync_id, self.plan, self.reread = manager, sync_id, plan, reread
        self.processes = plan.conf.sync.workers

    def __call__(self):
        try:
            conf = self.reread()
            streams = load_streams(conf)
            check_ready(conf)
        except service.ConfigError as e:
            old = self.plan.conf
            LOG.error(
                "Reload refused, keeping the running configuration (%d streams, %d sync workers): %s",
                len(self.plan.streams),
                old.sync.workers,
                e,
            )
            return
        self.plan.state = (conf, streams)
        LOG.info("Reloaded: %d streams from %s over %d sync workers", len(streams), conf.sync.filters_file, conf.sync.workers)
        self._resize(conf.sync.workers)

    def _resize(self, workers):
        # NOTE(worker): cotyledon 2.2 stops a surplus child right after
        # respawning it, and a child signalled before it has set up its own
        # handlers writes into the master's wake-up pipe: the master then
        # shuts down (seen here on a 2 -> 1 reload).  So the process count
        # only grows; surplus children get no streams (see mine()).
        if workers > self.processes:
            self.manager.reconfigure(self.sync_id, workers)
            self.processes = workers
        elif workers < self.processes:
            LOG.warning("%d sync workers now; %d idle processes (no streams) remain until a restart", workers, self.processes - workers)


class SyncService(cotyledon.Service):
    """A pass every [sync] delay seconds, sleeping only what is left.

    A SIGHUP ends the child after the batch in hand (cotyledon's default
    reload); the master forks it again from the Plan the Reloader updated.
    """

    name = "sync"

    def __init__(self, worker_id, plan):
        super().__init__(worker_id)
        conf, streams = plan.state
        service.setup_logging(conf)  # lost in the child under forkserver/spawn
        self.conf = conf
        self.streams = mine(streams, worker_id, conf.sync.workers)
        self.rated_streams = streams if worker_id == 0 else ()
        self._shutdown = threading.Event()
        self._wake_up = threading.Event()
        self._stopped = threading.Event()

    def run(self):
        utils.tune_collector()
        syncer = Syncer(self.conf, self.streams, self._shutdown, self.rated_streams)
        LOG.info("Sync worker %d started with %d streams", self.worker_id, len(self.streams))
        try:
            while not self._shutdown.is_set():
                watch, started = utils.StopWatch(), utils.utcnow()
                try:
                    syncer.one_pass()
                except Exception:
                    LOG.error("Pass failed", exc_info=True)
                # NOTE(api): a POST /collect_usage after this pass started cuts the nap short.
                nap = max(0, self.conf.sync.delay - watch.elapsed())
                wakeups.wait(syncer.sink.engine, self._wake_up, nap, started, self.conf.api.wake_poll)
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
    utils.tune_collector()
    shutdown = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: shutdown.set())
    syncer = Syncer(conf, streams, shutdown, streams)
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


def run(conf, once=False, reread=None):
    """The worker; ``reread`` (see Reloader) makes SIGHUP reload the configuration."""
    streams = load_streams(conf)
    check_ready(conf)
    if once:
        return run_once(conf, streams)
    if conf.metrics.port and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # NOTE(sink): must be set before prometheus_client is imported.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="meter-export-metrics-")
    # NOTE(worker): cotyledon's options, but not oslo_config_glue.setup():
    # its SIGHUP hook re-reads the files into this ``conf`` and raises on a
    # bad value before ours runs (and each child then logs a traceback).  The
    # Reloader checks a separate ConfigOpts instead, so a bad file reaches
    # neither the master nor the children.
    oslo_config_glue.register_opts(conf)
    manager = cotyledon.ServiceManager(graceful_shutdown_timeout=conf.graceful_shutdown_timeout)
    plan = Plan(conf, streams)
    sync_id = manager.add(SyncService, workers=conf.sync.workers, args=(plan,))
    if reread is not None:
        manager.register_hooks(on_reload=Reloader(manager, sync_id, plan, reread))
    if conf.metrics.port:
        manager.add(MetricsService, workers=1, args=(conf,))
    manager.run()
    return 0
