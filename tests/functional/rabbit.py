"""RabbitMQ for the listener tests: oslo.messaging's own Notifier, private
topics, the real listener daemon, and a private broker that may be restarted.

Each test uses its own exchange and topic, so tests never see each other's
notifications on the machine's broker (METER_EXPORT_TEST_RABBIT_URL, by
default rabbit://guest:guest@127.0.0.1:5672/).
"""

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid

import kombu
import oslo_messaging
from oslo_config import cfg

from tests.functional import e2e

RABBIT_URL = os.environ.get("METER_EXPORT_TEST_RABBIT_URL", "rabbit://guest:guest@127.0.0.1:5672/")
RABBITMQ_SERVER = shutil.which("rabbitmq-server") and "/usr/lib/rabbitmq/bin/rabbitmq-server"


def amqp(url):
    return "amqp" + url[len("rabbit") :]


def reachable(url):
    try:
        with kombu.Connection(amqp(url), connect_timeout=3) as conn:
            conn.connect()
        return None
    except Exception as e:  # any reason is reported by the caller
        return e


class Context:
    """What Nova and Cinder hand the Notifier: a RequestContext, whose
    redacted copy serialises with its timestamp. (The Notifier drops a plain
    dict context altogether.)"""

    def __init__(self, values):
        self.values = dict(values)

    def redacted_copy(self):
        return Context(dict(self.values, auth_token=None))

    def to_dict(self):
        return dict(self.values)


class Channel:
    """A private exchange and topic; sends with oslo.messaging's Notifier."""

    def __init__(self, url=RABBIT_URL, durable=False):
        self.url, self.durable = url, durable
        token = uuid.uuid4().hex[:10]
        self.exchange, self.topic = "mx_test_x_" + token, "mx_test_t_" + token
        conf = cfg.ConfigOpts()
        conf([], project="mx-test-notifier")
        self.transport = oslo_messaging.get_notification_transport(conf, url=url)
        conf.set_override("control_exchange", self.exchange)
        conf.set_override("amqp_durable_queues", durable, group="oslo_messaging_rabbit")
        self.notifier = oslo_messaging.Notifier(self.transport, driver="messagingv2", topics=[self.topic], retry=-1)

    def send(self, event_type, payload, ctxt, publisher_id="compute.compute-1"):
        """One notification at INFO, as Nova and Cinder send their .end events."""
        self.notifier.prepare(publisher_id=publisher_id).info(Context(ctxt), event_type, payload)

    def config(self, tmp_path, db_url, batch_size=50, extra=""):
        path = tmp_path / "listen.conf"
        path.write_text(
            "[DEFAULT]\ndebug = true\n[database]\nconnection = %s\nretry_timeout = 3\n"
            "[listen]\ntransport_url = %s\nexchanges = %s\ntopics = %s\npool =\nbatch_size = %d\n"
            "batch_timeout = 0.2\nexecutor_threads = 2\n%s"
            "[oslo_messaging_rabbit]\nrabbit_retry_interval = 1\nrabbit_retry_backoff = 1\nrabbit_interval_max = 2\n"
            "amqp_durable_queues = %s\n" % (db_url, self.url, self.exchange, self.topic, batch_size, extra, self.durable)
        )
        return str(path)

    def queue_depth(self):
        with kombu.Connection(amqp(self.url)) as conn:
            _, messages, _ = conn.default_channel.queue_declare(self.topic + ".info", passive=True)
            return messages

    def publish_raw(self, body, content_type="text/plain"):
        """A body that is not an oslo.messaging envelope, straight onto the queue."""
        with kombu.Connection(amqp(self.url)) as conn:
            producer = conn.Producer()
            producer.publish(
                body, exchange=self.exchange, routing_key=self.topic + ".info", content_type=content_type, content_encoding="utf-8"
            )

    def close(self):
        self.transport.cleanup()
        try:
            with kombu.Connection(amqp(self.url), connect_timeout=3) as conn:
                channel = conn.default_channel
                channel.queue_delete(self.topic + ".info")
                channel.exchange_delete(self.exchange)
        except Exception:  # noqa: S110 (a broker that is gone has nothing left to clean)
            pass


def start_listener(config, env=None, log=None):
    """The real `meter-export listen` daemon in its own session (reaped by conftest)."""
    proc = subprocess.Popen(
        [e2e.BIN, "--config-file", config, "listen"],
        stdout=subprocess.DEVNULL,
        stderr=log or subprocess.DEVNULL,
        env=dict(os.environ, **(env or {})),
        start_new_session=True,
    )
    e2e._STARTED.append(proc)
    return proc


def wait_listening(log_path, proc, count=1, timeout=60):
    def ready():
        assert proc.poll() is None, open(log_path).read()[-3000:]
        return open(log_path).read().count("Listening on") >= count

    assert e2e.wait_for(ready, timeout=timeout), open(log_path).read()[-3000:]


def stop(proc, timeout=60):
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=timeout)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateBroker:
    """A rabbitmq-server of our own (own node name, port and data), so a test
    can stop and restart it without disturbing the machine's broker."""

    def __init__(self, workdir):
        self.workdir = str(workdir)
        self.port, self.dist_port = free_port(), free_port()
        self.node = "mxtest%d@localhost" % self.port
        self.url = "rabbit://guest:guest@127.0.0.1:%d/" % self.port
        self.proc = None
        plugins = os.path.join(self.workdir, "enabled_plugins")
        with open(plugins, "w") as f:
            f.write("[].\n")
        self.env = dict(
            os.environ,
            HOME=self.workdir,
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=os.path.join(self.workdir, "mnesia"),
            RABBITMQ_LOG_BASE=os.path.join(self.workdir, "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=plugins,
            RABBITMQ_CONFIG_FILE=os.path.join(self.workdir, "rabbitmq"),
            RABBITMQ_PID_FILE=os.path.join(self.workdir, "rabbit.pid"),
        )

    def start(self, timeout=60):
        self.proc = subprocess.Popen(
            [RABBITMQ_SERVER],
            env=self.env,
            stdout=open(os.path.join(self.workdir, "server.out"), "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while reachable(self.url) is not None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "private rabbitmq-server did not start: %s" % open(os.path.join(self.workdir, "server.out")).read()[-2000:]
                )
            time.sleep(0.3)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
