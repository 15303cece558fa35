"""SIGHUP on the real daemon: new filters and [sync] workers, a bad file refused.

One daemon (the real ``meter-export run``: cotyledon master and children)
against the real Gnocchi 4.7.1 into PostgreSQL, three SIGHUPs in a row:

1. the filters file gains a meter and ``[sync] workers`` goes 1 -> 2: the new
   meter lands, and two children split the two streams;
2. the filters file is broken: one error line names ``[sync] filters_file``,
   and the children, forked again, still sync the old streams (a resource
   added after the refusal lands); then ``[sync] workers = 0`` is refused
   the same way;
3. ``[sync] workers`` goes back to 1 with a good file: one child has both
   streams (the surplus process stays, idle, until a restart).

At the end the table is exactly what was pushed, each sample once.
"""

import datetime
import re
import signal
import uuid

from telemetry_stack import seed

from tests.functional import e2e

UTC = datetime.UTC
HOUR = datetime.timedelta(hours=1)
NOW_HOUR = datetime.datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
POLICY = "mx-reload-5min"
METERS = {"cpu": "ns", "memory": "MB"}
STARTED = re.compile(r"Sync worker (\d+) started with (\d+) streams")


def _filters(project, meters):
    return "filters:\n  - name: p\n    query: {project_id: %s, resource_type: instance}\n    meters: [%s]\n" % (project, ", ".join(meters))


class Daemon:
    """The real daemon, its stderr in a file read from an offset."""

    def __init__(self, config, log_path):
        self.log_path = log_path
        with open(log_path, "w") as log:
            self.proc = e2e.start_worker(config, stderr=log)
        self.mark = 0

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def since_mark(self):
        return self.log()[self.mark :]

    def sighup(self):
        self.mark = len(self.log())
        self.proc.send_signal(signal.SIGHUP)

    def workers_started(self):
        """{worker id: streams} of the children started since the mark."""
        return {int(w): int(n) for w, n in STARTED.findall(self.since_mark())}


def _landed(db_url):
    rows = e2e.table(db_url)
    assert len({r[0] for r in rows}) == len(rows), "a message_id landed twice"
    return {(rid, meter, ts, value) for _, rid, meter, ts, value in rows}


def _expected(seeded_list, meters):
    rows = set()
    for seeded in seeded_list:
        for (rid, meter), points in seeded.points.items():
            rows |= {(rid, meter, ts, value) for ts, value in points if meter in meters}
    return rows


def test_sighup_reloads_filters_and_workers_and_keeps_the_old_on_a_bad_file(pg_url, gnocchi_server, tmp_path):
    client = seed.make_client(gnocchi_server.endpoint)
    seed.ensure_resource_types(client)
    seed.ensure_archive_policy(client, POLICY, granularity=300)
    project = str(uuid.uuid4())
    first = seed.seed_project(client, project, METERS, resources=2, start=NOW_HOUR - 2 * HOUR, end=NOW_HOUR, archive_policy=POLICY)
    gnocchi_server.wait_processed(timeout=120)
    credentials = {"auth_type": "gnocchi-basic", "user": "admin", "endpoint": gnocchi_server.endpoint}

    def configure(meters, workers):
        return e2e.write_config(tmp_path, pg_url, dict(credentials), _filters(project, meters), workers=workers, delay=2, lookback=4 * 3600)

    config = configure(["cpu"], workers=1)
    e2e.cli(config, "dbsync")
    daemon = Daemon(config, str(tmp_path / "worker.log"))
    try:
        assert e2e.wait_for(lambda: _landed(pg_url) == _expected([first], ["cpu"]), timeout=90), daemon.log()[-3000:]
        assert daemon.workers_started() == {0: 1}

        # 1. A new meter and a second worker.
        configure(["cpu", "memory"], workers=2)
        daemon.sighup()
        assert e2e.wait_for(lambda: _landed(pg_url) == _expected([first], METERS), timeout=90), daemon.since_mark()[-3000:]
        assert e2e.wait_for(lambda: len(daemon.workers_started()) == 2, timeout=30), daemon.since_mark()[-3000:]
        assert sum(daemon.workers_started().values()) == 2
        assert "Reloaded: 2 streams" in daemon.since_mark()

        # 2. A broken filters file: refused, the running streams go on.
        (tmp_path / "filters.yaml").write_text("filters:\n  - name: p\n    meters: []\n")
        daemon.sighup()
        assert e2e.wait_for(lambda: "Reload refused" in daemon.since_mark(), timeout=30), daemon.since_mark()[-3000:]
        refused = [line for line in daemon.since_mark().splitlines() if "Reload refused" in line]
        assert len(refused) == 1 and "ERROR" in refused[0] and "[sync] filters_file" in refused[0], refused
        assert "2 streams, 2 sync workers" in refused[0]
        assert e2e.wait_for(lambda: len(daemon.workers_started()) == 2, timeout=30), daemon.since_mark()[-3000:]
        assert sum(daemon.workers_started().values()) == 2
        later = seed.seed_project(client, project, METERS, resources=1, start=NOW_HOUR - HOUR, end=NOW_HOUR, archive_policy=POLICY)
        gnocchi_server.wait_processed(timeout=120)
        assert e2e.wait_for(lambda: _landed(pg_url) == _expected([first, later], METERS), timeout=90), daemon.since_mark()[-3000:]

        # A bad option value is refused the same way.
        configure(["cpu", "memory"], workers=0)
        daemon.sighup()
        assert e2e.wait_for(lambda: "Reload refused" in daemon.since_mark(), timeout=30), daemon.since_mark()[-3000:]
        refused = [line for line in daemon.since_mark().splitlines() if "Reload refused" in line]
        assert len(refused) == 1 and "[sync] workers" in refused[0], refused
        assert e2e.wait_for(lambda: len(daemon.workers_started()) == 2, timeout=30), daemon.since_mark()[-3000:]

        # 3. Back to one worker, which takes both streams; the surplus
        # process stays, with none (see worker.Reloader._resize).
        configure(["cpu", "memory"], workers=1)
        daemon.sighup()
        assert e2e.wait_for(lambda: "Reloaded: 2 streams" in daemon.since_mark(), timeout=30), daemon.since_mark()[-3000:]
        assert e2e.wait_for(lambda: daemon.workers_started() == {0: 2, 1: 0}, timeout=30), daemon.since_mark()[-3000:]
        assert "1 idle processes (no streams) remain until a restart" in daemon.since_mark()
        assert daemon.proc.poll() is None
    finally:
        code, _ = e2e.stop_worker(daemon.proc)
    assert code == 0, daemon.log()[-3000:]
    assert _landed(pg_url) == _expected([first, later], METERS)
