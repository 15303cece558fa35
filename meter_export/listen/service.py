"""meter-export listen: the notification listeners under cotyledon.

Each ListenService process runs one oslo.messaging batch notification
listener with a threading executor. SIGTERM stops taking new messages, lets
the batches in hand commit and be acknowledged, then exits.
"""

import datetime
import logging
import os
import threading
import time
import urllib.parse

import cotyledon
import oslo_messaging
from cotyledon import oslo_config_glue

from meter_export import service
from meter_export.listen import endpoint as endpoint_mod
from meter_export.listen import events
from meter_export.storage import entities

LOG = logging.getLogger(__name__)

#: Almanach's override of the broker URL.
URL_ENV = "RABBITMQ_URL"
#: Test-only: "<seconds>:<marker file>". The first batch to reach its commit
#: writes the process id to the marker file and sleeps that long inside its
#: transaction, so a test can kill -9 the listener between receive and commit.
PAUSE_ENV = "METER_EXPORT_LISTEN_TEST_PAUSE"


def transport_url(conf, environ=os.environ):
    """[listen] transport_url, or RABBITMQ_URL when set (amqp:// read as rabbit://)."""
    url = environ.get(URL_ENV) or conf.listen.transport_url
    scheme, sep, rest = url.partition("://")
    return ("rabbit" if scheme == "amqp" else scheme) + sep + rest


def check_transport_url(conf):
    """:raises service.ConfigError: not a URL oslo.messaging can use."""
    url = transport_url(conf)
    where = URL_ENV if os.environ.get(URL_ENV) else "transport_url"
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("rabbit", "kafka", "amqp") or not parsed.netloc:
        raise service.ConfigError("listen" if where == "transport_url" else None, where, "%r is not a rabbit:// URL" % _masked(url))
    try:
        oslo_messaging.TransportURL.parse(conf, url)
    except oslo_messaging.InvalidTransportURL as e:
        raise service.ConfigError("listen", where, str(e))


def _masked(url):
    parsed = urllib.parse.urlsplit(url)
    if parsed.password:
        return url.replace(":" + parsed.password + "@", ":***@")
    return url


def check_database(conf):
    """The schema must be at this version's head (the sync worker's rule).

    :raises service.ConfigError: before anything is consumed.
    """
    target = entities.EntityStore(conf.database.connection, retry_timeout=0)
    try:
        service.check_schema(target.engine)
    finally:
        target.close()


def policy(conf):
    return events.Policy(image_meta_keys=tuple(conf.listen.image_meta_keys), metadata_keys=tuple(conf.listen.metadata_keys))


def _test_pause():
    """The before_commit hook of PAUSE_ENV, or None (production)."""
    spec = os.environ.get(PAUSE_ENV)
    if not spec:
        return None
    seconds, _, marker = spec.partition(":")

    def pause():
        if os.path.exists(marker):
            return
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        time.sleep(float(seconds))

    return pause


class Listener:
    """One oslo.messaging listener and the store it writes to, in this process."""

    def __init__(self, conf, shutdown, endpoint=None):
        """:param endpoint: instead of the EntityEndpoint (bench/listen.py
        measures a consumer that only acknowledges through the same listener)."""
        self.conf = conf
        listen = conf.listen
        self.store = entities.EntityStore(
            conf.database.connection,
            conf.database.retry_timeout,
            shutdown,
            volume_threshold=_seconds(listen.volume_existence_threshold),
        )
        self.store.set_expected_meters(events.expected_meters(conf))
        self.transport = oslo_messaging.get_notification_transport(conf, url=transport_url(conf))
        targets = [oslo_messaging.Target(exchange=x, topic=t) for x in listen.exchanges for t in listen.topics]
        self.listener = oslo_messaging.get_batch_notification_listener(
            self.transport,
            targets,
            [endpoint or endpoint_mod.EntityEndpoint(self.store, policy(conf), _test_pause())],
            executor="threading",
            allow_requeue=True,
            pool=listen.pool or None,
            batch_size=listen.batch_size,
            batch_timeout=listen.batch_timeout,
        )
        # NOTE(listen): oslo.messaging registers its executor option on our
        # ConfigOpts when the listener is built; [listen] is where we say it.
        conf.set_override("executor_thread_pool_size", listen.executor_threads)

    def start(self):
        self.listener.start()
        LOG.info(
            "Listening on %s for topics %s (pool %s)",
            ", ".join(self.conf.listen.exchanges),
            ", ".join(self.conf.listen.topics),
            self.conf.listen.pool or "none",
        )

    def stop(self):
        """Take no new messages; wait until the batches in hand are acknowledged."""
        self.listener.stop()
        self.listener.wait()
        self.transport.cleanup()
        self.store.close()


def _seconds(value):
    return datetime.timedelta(seconds=value)


class ListenService(cotyledon.Service):
    name = "listen"

    def __init__(self, worker_id, conf):
        super().__init__(worker_id)
        service.setup_logging(conf)  # lost in the child under forkserver/spawn
        self.conf = conf
        self._shutdown = threading.Event()
        self._stopped = threading.Event()

    def run(self):
        listener = None
        try:
            listener = Listener(self.conf, self._shutdown)
            listener.start()
            self._shutdown.wait()
        finally:
            # NOTE(listen): set even when the start failed, or terminate()
            # would wait for ever.
            if listener is not None:
                listener.stop()
                LOG.info("Listener %d stopped", self.worker_id)
            self._stopped.set()

    def terminate(self):
        LOG.info("Listener %d stopping after the batches in hand", self.worker_id)
        self._shutdown.set()
        self._stopped.wait()


def run(conf):
    check_transport_url(conf)
    check_database(conf)
    manager = cotyledon.ServiceManager()
    oslo_config_glue.setup(manager, conf)
    manager.add(ListenService, workers=conf.listen.workers, args=(conf,))
    manager.run()
    return 0
