"""meter-export listen on the real RabbitMQ, fed by oslo.messaging's own Notifier.

Every test has its own exchange and topic (tests/functional/rabbit.py). The
expected histories are written out by hand from the event lists.
"""

import datetime
import json
import os
import signal
import time
import uuid

import pytest
import sqlalchemy as sa

from meter_export.storage import engine as storage_engine
from meter_export.storage import schema
from tests import notifications as n
from tests.functional import e2e
from tests.functional import proxies
from tests.functional import rabbit

UTC = datetime.UTC
A = "a0000000-0000-4000-8000-00000000000a"
B = "b0000000-0000-4000-8000-00000000000b"
V = "c0000000-0000-4000-8000-00000000000c"
TYPE = "8f1c6a9e-type-ssd"


def t(text):
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC)


def _unavailable(request, what, error):
    # NOTE: the root conftest's skip-or-fail-under-CI rule (see
    # tests/functional/conftest.py for why it is reached this way).
    root = request.config.pluginmanager.get_plugin(os.path.join(os.path.dirname(os.path.dirname(__file__)), "conftest.py"))
    root.unavailable(what, error)


@pytest.fixture
def channel(request):
    problem = rabbit.reachable(rabbit.RABBIT_URL)
    if problem is not None:
        _unavailable(request, "RabbitMQ at " + rabbit.RABBIT_URL, problem)
    channel = rabbit.Channel()
    yield channel
    channel.close()


def _engine(db_url):
    return sa.create_engine(storage_engine.dress_url(db_url), poolclass=sa.pool.NullPool)


def query(db_url, fn):
    engine = _engine(db_url)
    try:
        with engine.connect() as conn:
            return fn(conn, schema.make_metadata().tables)
    finally:
        engine.dispose()


def count(db_url, table):
    return query(db_url, lambda conn, tables: conn.execute(sa.select(sa.func.count()).select_from(tables[table])).scalar())


def histories(db_url):
    def read(conn, tables):
        e = tables["entities"]
        rows = conn.execute(sa.select(e).order_by(e.c.entity_id, e.c.version)).all()
        out = {}
        for r in rows:
            extra = (r.flavor, r.power_state) if r.entity_type == "instance" else (r.size, r.attached_to)
            out.setdefault(r.entity_id, []).append((r.start, r.end) + extra)
        return out

    return query(db_url, read)


def quarantined(db_url):
    return query(db_url, lambda conn, tables: sorted(r.reason for r in conn.execute(sa.select(tables["quarantine"]))))


def send(channel, step):
    event_type, payload, at = step
    publisher = "compute.compute-1" if event_type.startswith("compute.") else "volume.cinder-volume"
    channel.send(event_type, payload, n.context(at), publisher_id=publisher)


def listener(channel, tmp_path, db_url, env=None, **kwargs):
    config = channel.config(tmp_path, db_url, **kwargs)
    e2e.cli(config, "dbsync")
    log = tmp_path / "listen.log"
    started = log.read_text().count("Listening on") if log.exists() else 0
    proc = rabbit.start_listener(config, env=env, log=open(log, "ab"))
    rabbit.wait_listening(log, proc, count=started + 1)
    return proc, log


def wait_events(db_url, expected, log, timeout=60):
    assert e2e.wait_for(lambda: count(db_url, "entity_events") >= expected, timeout=timeout), open(log).read()[-4000:]


def envelope(event_type, payload, ctxt, message_id, publisher_id="compute.compute-1"):
    """The messagingv2 body oslo.messaging's Notifier publishes, with a chosen
    message_id: what a broker redelivers looks exactly like this."""
    message = {
        "message_id": message_id,
        "publisher_id": publisher_id,
        "event_type": event_type,
        "priority": "INFO",
        "payload": payload,
        "timestamp": ctxt["timestamp"].replace("T", " "),
    }
    message.update({"_context_" + k: v for k, v in ctxt.items()})
    return json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(message)})


INSTANCE_A = [
    n.instance_create(A, "2026-03-01T10:00:00"),
    n.instance_event("compute.instance.power_off.end", A, "2026-03-01T12:00:00"),
    n.instance_event("compute.instance.power_on.end", A, "2026-03-01T13:00:00"),
    n.instance_event("compute.instance.resize.confirm.end", A, "2026-03-01T14:00:00", flavor="m1.large"),
]
EXPECTED_A = [
    (t("2026-03-01T10:00:00"), t("2026-03-01T12:00:00"), "m1.small", "running"),
    (t("2026-03-01T12:00:00"), t("2026-03-01T13:00:00"), "m1.small", "stopped"),
    (t("2026-03-01T13:00:00"), t("2026-03-01T14:00:00"), "m1.small", "running"),
    (t("2026-03-01T14:00:00"), None, "m1.large", "running"),
]


def test_event_list_becomes_exact_histories(channel, tmp_path, db_url):
    proc, log = listener(channel, tmp_path, db_url)
    send(channel, ("volume_type.create", n.volume_type_payload(TYPE, "ssd"), "2026-03-01T09:00:00"))
    for step in INSTANCE_A:
        send(channel, step)
    # Out-of-order pairs: B's delete before its create, V's resize before its attach.
    send(channel, n.instance_delete(B, "2026-03-01T11:30:00"))
    send(channel, n.instance_create(B, "2026-03-01T10:30:00"))
    send(channel, n.volume_create(V, "2026-03-01T10:00:00", size=50, volume_type=TYPE))
    send(channel, n.volume_event("volume.resize.end", V, "2026-03-01T12:00:00", size=80, volume_attachment=[n.attachment(A, V)]))
    send(channel, n.volume_event("volume.attach.end", V, "2026-03-01T11:00:00", volume_attachment=[n.attachment(A, V)]))
    send(channel, n.volume_event("volume.detach.end", V, "2026-03-01T13:00:00", size=80, volume_attachment=[]))
    send(channel, n.volume_event("volume.exists", V, "2026-03-01T14:00:00", size=80))
    send(channel, n.volume_event("volume.delete.end", V, "2026-03-01T15:00:00", size=80))
    # Malformed: a resize without its flavor, a payload that is not an object,
    # and a body that is not an oslo.messaging envelope at all.
    send(channel, n.instance_event("compute.instance.resize.confirm.end", A, "2026-03-01T15:00:00", instance_type=None))
    channel.send("volume.resize.end", "eighty", n.context("2026-03-01T15:00:00"), publisher_id="volume.cinder-volume")
    channel.publish_raw("this is not JSON")
    # Not followed: ignored and acknowledged.
    send(channel, n.instance_event("compute.instance.update", A, "2026-03-01T15:00:00"))
    # A duplicate burst: one notification redelivered 20 times.
    dup = n.instance_event("compute.instance.power_off.end", A, "2026-03-01T12:00:00")
    body = envelope(dup[0], dup[1], n.context(dup[2]), message_id="dup-" + uuid.uuid4().hex)
    for _ in range(20):
        channel.publish_raw(body, content_type="application/json")
    wait_events(db_url, 4 + 2 + 5 + 1, log)
    assert e2e.wait_for(lambda: len(quarantined(db_url)) == 2, timeout=30)
    time.sleep(1)  # anything still in flight would show up now
    assert rabbit.stop(proc) == 0
    assert channel.queue_depth() == 0, "every notification was acknowledged"
    assert histories(db_url) == {
        A: EXPECTED_A,
        B: [(t("2026-03-01T10:30:00"), t("2026-03-01T11:30:00"), "m1.small", "running")],
        V: [
            (t("2026-03-01T10:00:00"), t("2026-03-01T11:00:00"), 50, []),
            (t("2026-03-01T11:00:00"), t("2026-03-01T12:00:00"), 50, [A]),
            (t("2026-03-01T12:00:00"), t("2026-03-01T13:00:00"), 80, [A]),
            (t("2026-03-01T13:00:00"), t("2026-03-01T15:00:00"), 80, []),
        ],
    }
    # the duplicate power_off is one more stored event, but no new version
    assert count(db_url, "entity_events") == 12
    assert quarantined(db_url) == [
        "compute.instance.resize.confirm.end: payload.instance_type is missing or not a string",
        "volume.resize.end: payload is a str, not an object",
    ]
    assert query(db_url, lambda c, tb: c.execute(sa.select(tb["volume_types"].c.volume_type_name)).scalars().all()) == ["ssd"]


@pytest.mark.parametrize("victim", ["worker", "whole-service"])
def test_kill_9_between_receive_and_commit_redelivers(channel, tmp_path, pg_url, victim):
    marker = tmp_path / "paused"
    proc, log = listener(channel, tmp_path, pg_url, env={"METER_EXPORT_LISTEN_TEST_PAUSE": "60:%s" % marker})
    for step in INSTANCE_A:
        send(channel, step)
    assert e2e.wait_for(marker.exists, timeout=30), open(log).read()[-3000:]
    time.sleep(0.2)
    assert count(pg_url, "entity_events") == 0, "paused inside the transaction"
    if victim == "worker":
        # cotyledon starts a new worker; the broker redelivers what was unacknowledged.
        os.kill(int(marker.read_text()), signal.SIGKILL)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc, log = listener(channel, tmp_path, pg_url)
    wait_events(pg_url, 4, log)
    time.sleep(1)
    assert rabbit.stop(proc) == 0
    assert histories(pg_url) == {A: EXPECTED_A}
    assert count(pg_url, "entity_events") == 4
    assert channel.queue_depth() == 0


def test_sigterm_finishes_the_batch_in_hand(channel, tmp_path, sqlite_url):
    marker = tmp_path / "paused"
    # Almanach's RABBITMQ_URL (an amqp:// URL) wins over a wrong transport_url.
    env = {"METER_EXPORT_LISTEN_TEST_PAUSE": "3:%s" % marker, "RABBITMQ_URL": rabbit.amqp(channel.url)}
    channel.url, real = "rabbit://nobody:wrong@127.0.0.1:1/", channel.url
    proc, log = listener(channel, tmp_path, sqlite_url, env=env)
    channel.url = real
    for step in INSTANCE_A:
        send(channel, step)
    assert e2e.wait_for(marker.exists, timeout=30), open(log).read()[-3000:]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, open(log).read()[-3000:]
    # the paused batch committed and was acknowledged before the exit
    stored = count(sqlite_url, "entity_events")
    assert stored >= 1
    assert channel.queue_depth() == len(INSTANCE_A) - stored


def test_database_outage_longer_than_the_retries_requeues_and_loses_nothing(channel, tmp_path, pg_url):
    # NOTE: [database] retry_timeout (3 s) is shorter than the outage (8 s):
    # the batch in hand gives up, goes back to the queue unacknowledged, and
    # lands once the database is back.
    upstream = sa.engine.make_url(pg_url)
    with proxies.TcpProxy((upstream.host, upstream.port)) as proxy:
        config_url = proxy.url_for(pg_url)
        proc, log = listener(channel, tmp_path, config_url, batch_size=5)
        ids = ["%08d-0000-4000-8000-0000000000aa" % i for i in range(40)]
        for iid in ids[:20]:
            send(channel, n.instance_create(iid, "2026-03-01T10:00:00"))
        proxy.cut()
        for iid in ids[20:]:
            send(channel, n.instance_create(iid, "2026-03-01T10:00:00"))
        time.sleep(8)
        proxy.restore()
        wait_events(pg_url, 40, log, timeout=120)
        time.sleep(1)
        assert rabbit.stop(proc) == 0
    assert sorted(histories(pg_url)) == ids
    assert count(pg_url, "entity_events") == 40
    assert channel.queue_depth() == 0
    text = open(log).read()
    assert "they go back to the queue" in text, "the outage was never seen by the listener"


@pytest.fixture
def private_broker(tmp_path_factory, request):
    if not rabbit.RABBITMQ_SERVER:
        _unavailable(request, "rabbitmq-server", "not installed")
    broker = rabbit.PrivateBroker(tmp_path_factory.mktemp("rabbit"))
    try:
        broker.start()
    except (OSError, RuntimeError) as e:
        broker.stop()
        _unavailable(request, "a private rabbitmq-server", e)
    yield broker
    broker.stop()


@pytest.mark.slow
def test_broker_restart_mid_stream_loses_nothing(private_broker, tmp_path, pg_url):
    # NOTE: durable queues, as an operator sets them for a broker that may
    # restart: a transient queue and what is in it die with the broker.
    channel = rabbit.Channel(private_broker.url, durable=True)
    proc = None
    try:
        proc, log = listener(channel, tmp_path, pg_url, batch_size=10)
        ids = ["%08d-0000-4000-8000-000000000000" % i for i in range(60)]
        for iid in ids[:30]:
            send(channel, n.instance_create(iid, "2026-03-01T10:00:00"))
        private_broker.stop()
        private_broker.start()
        for iid in ids[30:]:
            send(channel, n.instance_create(iid, "2026-03-01T10:00:00"))
        wait_events(pg_url, 60, log, timeout=120)
        time.sleep(1)
        assert rabbit.stop(proc) == 0
        # NOTE: the acknowledgements of the batches committed while the
        # broker went down were lost with the connection, so the broker
        # delivers those messages again. oslo.messaging's listener remembers
        # the last 16 message ids it received (amqp._MsgIdCache) and drops a
        # repeat of one without acknowledging it; those wait on the queue
        # for the next connection. A second run acknowledges them as the
        # duplicates they are.
        assert channel.queue_depth() <= 16
        proc, log = listener(channel, tmp_path, pg_url, batch_size=10)
        assert e2e.wait_for(lambda: channel.queue_depth() == 0, timeout=60), open(log).read()[-3000:]
        time.sleep(1)
        assert rabbit.stop(proc) == 0
        proc = None
        assert sorted(histories(pg_url)) == ids
        assert count(pg_url, "entity_events") == 60
        assert channel.queue_depth() == 0
    finally:
        if proc is not None:
            proc.kill()
        channel.close()
