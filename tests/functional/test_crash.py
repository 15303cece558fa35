"""Crash suite: SIGKILL meter-export at random moments; nothing is lost or doubled.

A large sync from the real Gnocchi 4.7.1 and the real Ceilometer 9.0.7 v2 API
into PostgreSQL and MariaDB, through the real CLI: ``meter-export run`` (the
cotyledon master and its two workers, in their own process group) or
``meter-export backfill``.  The command is killed with SIGKILL (the whole
group) at a random moment and started again, KILLS times.  After every kill:

- no checkpoint is ahead of its data: every source sample of a stream older
  than that stream's checkpoint is in the table;
- no message_id is there twice, and no row is there that the source lacks
  (or that lies outside a backfill's range);
- a backfill has not written a live checkpoint.

When a kill finds the sync complete, the table must equal the source
exactly, and it is emptied so that the next kills land in a sync under way
again, however fast the machine.  After the last kill, ``run --once`` (or the
same backfill) runs until it exits 0, and the table must equal the source
exactly.  Small windows and pages make every window several transactions,
so kills land between a window's batches and the write that moves its
checkpoint.  The test fails when too few kills land while the sync was under
way, since then it proves nothing; the counts are printed (``pytest -s``)
and are part of every failure message.

Knobs: METER_EXPORT_CRASH_KILLS (default 20 per database and case; raise it
to hundreds for a soak run) and METER_EXPORT_CRASH_SEED (random by default,
printed on failure; set it to replay a run's kill times).
"""

import collections
import concurrent.futures
import dataclasses
import datetime
import os
import random
import signal
import sqlite3
import subprocess
import threading
import time
import typing
import uuid

import pytest
import sqlalchemy as sa

from meter_export import backfill
from meter_export import worker
from meter_export.storage import engine as storage_engine
from meter_export.storage import schema
from tests.functional import e2e

pytestmark = pytest.mark.slow

UTC = datetime.UTC
HOUR = datetime.timedelta(hours=1)
KILLS = int(os.environ.get("METER_EXPORT_CRASH_KILLS", "20"))
SEED = int(os.environ.get("METER_EXPORT_CRASH_SEED") or random.SystemRandom().randrange(2**32))
# NOTE(crash): the CLI needs 1-3 s on this 2-core machine before it reads
# anything (imports, cotyledon's fork), so a clock started at the spawn lands
# mostly in the interpreter's start-up.  A share COLD of the kills does count
# from the spawn (crashes while starting); the others count from the log
# line that says the command started work.
COLD = 0.25
SLEEP = (0.3, 3.0)
# The INFO lines of worker.SyncService.run and backfill._backfill.
READY = (b"Sync worker", b"windows to do")
READY_TIMEOUT = 60
WORKERS = 2
METERS = ("cpu", "memory")
# NOTE(crash): [sync] settle = 0 reads up to now and the data ends an hour
# before, so a finished stream never sees a sample arrive later.
END = datetime.datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - HOUR


# -- the sources ------------------------------------------------------------


@dataclasses.dataclass
class Source:
    """What a source holds, keyed the way table rows are compared.

    ``rows`` maps a key to (meter, timestamp, value); ``key`` turns a table
    row (message_id, resource_id, counter_name, timestamp, counter_volume)
    into (key, (meter, timestamp, value)).
    """

    config: str  # [source], [service_credentials] and the driver's group
    filters: str
    meters: tuple
    start: datetime.datetime
    end: datetime.datetime
    rows: dict
    key: typing.Callable

    def between(self, lo, hi, meter=None):
        return {k: v for k, v in self.rows.items() if lo <= v[1] < hi and (meter is None or v[0] == meter)}


def filters_yaml(source, meters, **query):
    query = ", ".join("%s: %s" % kv for kv in query.items())
    return "filters:\n  - name: %s\n    query: {%s}\n    meters: [%s]\n" % (split_filter_name(source, meters), query, ", ".join(meters))


def split_filter_name(source, meters):
    """A filter name that gives each stream its own sync worker, so that two
    processes are writing when a kill lands."""
    for i in range(100):
        keys = ["%s/f%d/%s" % (source, i, m) for m in meters]
        if all(worker.mine(keys, w, WORKERS) for w in range(WORKERS)):
            return "f%d" % i
    raise AssertionError("no filter name splits %s among %d workers" % (meters, WORKERS))


@pytest.fixture(scope="module")
def gnocchi_source(gnocchi_server):
    """60 instances x 2 meters x 16 h of 5-minute points (23 040 samples).

    NOTE(crash): above 50 metrics the driver lists a meter's metrics in one
    request when it starts, instead of one GET each (3 s here with 40): that
    cost is paid again on every restart and would eat the kill window.
    """
    from telemetry_stack import seed

    client = seed.make_client(gnocchi_server.endpoint)
    seed.ensure_resource_types(client)
    seed.ensure_archive_policy(client, "mx-crash-5min", granularity=300)
    project, start = str(uuid.uuid4()), END - 16 * HOUR
    meters = {"cpu": "ns", "memory": "MB"}
    seeded = seed.seed_project(client, project, meters, resources=60, start=start, end=END, archive_policy="mx-crash-5min")
    gnocchi_server.wait_processed(timeout=300)
    rows = {(rid, meter, ts): (meter, ts, value) for (rid, meter), points in seeded.points.items() for ts, value in points}
    # NOTE(crash): with batch_size = 300, a one-hour window is 3 pages of 240
    # samples and 2 transactions: 480 rows, then 240 rows and the checkpoint.
    config = (
        "[source]\ndriver = gnocchi\ntimeout = 30\n[gnocchi]\nmetrics_per_request = 20\n"
        "[service_credentials]\nauth_type = gnocchi-basic\nuser = admin\nendpoint = %s\n" % gnocchi_server.endpoint
    )
    filters = filters_yaml("gnocchi", METERS, project_id=project, resource_type="instance")
    return Source(config, filters, METERS, start, END, rows, lambda r: ((r[1], r[2], r[3]), (r[2], r[3], r[4])))


@pytest.fixture(scope="module")
def ceilometer_source(ceilometer_server):
    """2 meters x 10 h of polling cycles every 10 minutes, each a burst of
    100 samples sharing one timestamp (12 000 samples), bursts sitting on
    the window bounds.  What the server stores is read back from its SQLite
    file, not through the API the driver reads."""
    from telemetry_stack import ceilometer as stack

    project, start = "crash-" + uuid.uuid4().hex[:8], END - 10 * HOUR
    meters = tuple("%s.%s" % (m, project) for m in METERS)
    step, burst = datetime.timedelta(minutes=10), 100
    count = int((END - start) / step) * burst
    samples = [
        s for m in meters for s in stack.burst_samples(m, start, count, burst=burst, step=step, projects=(project,), resources=burst)
    ]
    assert ceilometer_server.seed(samples) == len(samples)
    rows = stored_in_ceilometer(ceilometer_server.db_path, project)
    assert len(rows) == len(samples)
    # NOTE(crash): a one-hour window is 600 samples, read whole in 2 requests,
    # then written in 2 transactions: 400 rows, then 200 rows and the
    # checkpoint.
    config = (
        "[source]\ndriver = ceilometer\ntimeout = 30\n[ceilometer]\npage_size = 400\nstrategy = keyset\n"
        "[service_credentials]\nauth_type = none\nendpoint = %s\n" % ceilometer_server.endpoint
    )
    filters = filters_yaml("ceilometer", meters, project_id=project)
    return Source(config, filters, meters, start, END, rows, lambda r: (r[0], (r[2], r[3], r[4])))


def stored_in_ceilometer(db_path, project_id):
    """message_id -> (meter, timestamp, volume) of a project's samples."""
    query = (
        "SELECT s.message_id, m.name, s.timestamp, s.volume FROM sample s JOIN meter m ON m.id = s.meter_id "
        "JOIN resource r ON r.internal_id = s.resource_id WHERE r.project_id = ?"
    )
    conn = sqlite3.connect("file:%s?mode=ro" % db_path, uri=True)
    try:
        rows = conn.execute(query, (project_id,)).fetchall()
    finally:
        conn.close()
    stored = {mid: (meter, datetime.datetime.fromisoformat(ts).replace(tzinfo=UTC), volume) for mid, meter, ts, volume in rows}
    assert len(stored) == len(rows), "a message_id is stored twice in Ceilometer: the test data is wrong"
    return stored


# -- the destination --------------------------------------------------------


def write_config(workdir, db_url, source):
    """Small windows and batches (many transactions), data all in the past
    (settle = 0), and a delay long enough that a pass never starts twice."""
    filters = workdir / "filters.yaml"
    filters.write_text(source.filters)
    config = workdir / "meter-export.conf"
    config.write_text(
        "[DEFAULT]\ndebug = false\n[database]\nconnection = %s\nbatch_size = 300\n%s"
        "[sync]\nfilters_file = %s\ninitial_start = %s\nsettle = 0\nlookback = 600\nmax_window = 3600\n"
        "delay = 3600\nworkers = %d\n" % (db_url, source.config, filters, source.start.isoformat(), WORKERS)
    )
    return str(config)


@dataclasses.dataclass
class Snapshot:
    checkpoints: dict  # meter -> complete_until, in the scope under test
    live: int  # live checkpoint rows
    rows: list
    distinct: int  # distinct message_ids among rows


def snapshot(engine, scope):
    """Checkpoints first, then the table.

    NOTE(crash): in that order, a commit landing between the two reads can
    only add rows the checkpoints do not cover yet, so a correct sink always
    passes; the other order would report false losses.
    """
    meta = schema.make_metadata()
    cps, samples = meta.tables["checkpoints"], meta.tables["samples"]
    columns = [samples.c[c] for c in ("message_id", "resource_id", "counter_name", "timestamp", "counter_volume")]
    with engine.connect() as conn:
        found = conn.execute(sa.select(cps.c.scope, cps.c.meter, cps.c.complete_until)).all()
        rows = [tuple(r) for r in conn.execute(sa.select(*columns))]
    # NOTE(crash): message_id is the primary key, but a duplicate is what is
    # looked for here, so count the distinct ones anyway.
    live = sum(s == schema.LIVE_SCOPE for s, _, _ in found)
    return Snapshot({m: t for s, m, t in found if s == scope}, live, rows, len({r[0] for r in rows}))


# -- processes --------------------------------------------------------------


def kill_group(pgid, timeout=30):
    """SIGKILL a whole process group (cotyledon's master and its children)
    and wait until none of them runs any more."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while group_alive(pgid):
        assert time.monotonic() < deadline, "process group %d survived SIGKILL for %ss" % (pgid, timeout)
        time.sleep(0.02)


def group_alive(pgid):
    """True while a process of the group is not yet a zombie."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


# -- one command against one database ----------------------------------------


class Crasher:
    """Kills and restarts one command against one database, checks the
    invariant after each kill, and counts where the kills landed."""

    def __init__(self, case, workdir, db_url, source, args, lo, hi, abort):
        self.case, self.source, self.args, self.lo, self.hi, self.abort = case, source, args, lo, hi, abort
        self.config = write_config(workdir, db_url, source)
        self.scope = schema.LIVE_SCOPE if args[0] == "run" else backfill.scope_for(lo, hi)
        self.engine = sa.create_engine(storage_engine.dress_url(db_url), poolclass=sa.pool.NullPool)
        self.log = workdir / "meter-export.log"
        self.rng = random.Random("%d/%s" % (SEED, case))
        self.expected = source.between(lo, hi)
        self.stats, self.timing = collections.Counter(), collections.Counter()

    def where(self):
        return "[%s seed=%d kills=%d landed=%s log=%s]" % (self.case, SEED, KILLS, dict(self.stats), self.log)

    def summary(self):
        timing = ", ".join("%s %.0fs" % kv for kv in self.timing.items())
        return "%s: %d samples, %d kills (%s): %s" % (self.case, len(self.expected), KILLS, timing, dict(self.stats))

    def crash_and_compare(self, final):
        try:
            e2e.cli(self.config, "dbsync")
            for _ in range(KILLS):
                if self.abort.is_set():
                    return
                self.one_kill()
            watch = time.monotonic()
            self.finish(final)
            self.timing["final"] += time.monotonic() - watch
            snap = snapshot(self.engine, self.scope)
            self.check_exact(snap, self.table(snap))
            assert self.stats["mid-sync"] >= max(1, KILLS // 4), "too few kills landed mid-sync to prove anything %s" % self.where()
        except BaseException:
            self.abort.set()  # the other database stops early
            raise
        finally:
            self.engine.dispose()

    def spawn(self, *args):
        with open(self.log, "ab") as log:
            log.write(b"\n=== %s\n" % " ".join(args).encode())
            cmd = [e2e.BIN, "--config-file", self.config, *args]
            return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)

    def one_kill(self):
        watch = time.monotonic()
        offset = self.log.stat().st_size if self.log.exists() else 0
        proc = self.spawn(*self.args)
        if self.rng.random() < COLD:
            self.stats["timed from the spawn"] += 1
        else:
            self.wait_ready(proc, offset)
        self.timing["start-up"] += time.monotonic() - watch
        time.sleep(self.rng.uniform(*SLEEP))
        exited = proc.poll()
        kill_group(proc.pid)
        proc.wait(timeout=30)
        if exited is not None:
            assert self.args[0] == "backfill" and exited == 0, "%s exited %s by itself %s" % (self.args[0], exited, self.where())
            self.stats["exited before the kill"] += 1
        watch = time.monotonic()
        snap, table = self.check()
        if self.complete(snap):
            self.stats["after a complete sync"] += 1
            self.check_exact(snap, table)
            self.reset()
        else:
            self.count(snap, table)
        self.timing["checks"] += time.monotonic() - watch

    def wait_ready(self, proc, offset):
        """Until the command logs that it starts working, or exits."""
        deadline = time.monotonic() + READY_TIMEOUT
        while proc.poll() is None:
            with open(self.log, "rb") as f:
                f.seek(offset)
                text = f.read()
            if any(mark in text for mark in READY):
                return
            assert time.monotonic() < deadline, "no start-up line %s in %ss %s" % (READY, READY_TIMEOUT, self.where())
            time.sleep(0.02)

    def check(self):
        """The invariant that must hold whenever the process dies."""
        snap = snapshot(self.engine, self.scope)
        table = self.table(snap)
        extra = {k: v for k, v in table.items() if self.expected.get(k) != v}
        assert not extra, "%d rows the source does not hold in [%s, %s), e.g. %s %s" % (
            len(extra),
            self.lo,
            self.hi,
            sorted(extra.items())[:3],
            self.where(),
        )
        if self.scope != schema.LIVE_SCOPE:
            assert snap.live == 0, "backfill wrote a live checkpoint %s" % self.where()
        for meter, until in snap.checkpoints.items():
            missing = sorted(set(self.source.between(self.lo, min(until, self.hi), meter)) - set(table))
            assert not missing, "checkpoint of %s at %s is ahead of its data: %d samples missing, e.g. %s %s" % (
                meter,
                until,
                len(missing),
                missing[:3],
                self.where(),
            )
        return snap, table

    def table(self, snap):
        assert snap.distinct == len(snap.rows), "%d duplicate message_ids %s" % (len(snap.rows) - snap.distinct, self.where())
        table = dict(self.source.key(r) for r in snap.rows)
        assert len(table) == len(snap.rows), "one source sample stored under two message_ids %s" % self.where()
        return table

    def complete(self, snap):
        return all((snap.checkpoints.get(m) or self.lo) >= self.hi for m in self.source.meters)

    def reset(self):
        """Start the sync over from an empty table.

        NOTE(crash): how far the kills get before the sync completes depends
        on the machine's speed; starting over keeps the later kills landing
        in a sync under way, where they prove something.
        """
        meta = schema.make_metadata()
        with self.engine.begin() as conn:
            conn.execute(meta.tables["samples"].delete())
            conn.execute(meta.tables["checkpoints"].delete().where(meta.tables["checkpoints"].c.scope == self.scope))

    def count(self, snap, table):
        """Where the kill landed: before or during the sync."""
        if snap.checkpoints or table:
            self.stats["mid-sync"] += 1
            # NOTE(crash): rows at or past their stream's checkpoint: the kill
            # came between a window's batches and the write that ends it.
            past = any(ts >= (snap.checkpoints.get(m) or self.lo) for m, ts, _ in table.values())
            self.stats["mid-window"] += past
        else:
            self.stats["before any write"] += 1

    def finish(self, args, tries=3):
        for _ in range(tries):
            if self.spawn(*args).wait(timeout=600) == 0:
                return
        raise AssertionError("%s did not exit 0 in %d tries %s" % (" ".join(args), tries, self.where()))

    def check_exact(self, snap, table):
        """A complete sync: the table is the source, exactly."""
        missing = sorted(set(self.expected) - set(table))
        wrong = sorted(k for k, v in table.items() if self.expected.get(k) != v)
        assert not missing and not wrong, "complete sync: %d samples missing, %d wrong or extra, e.g. %s %s %s" % (
            len(missing),
            len(wrong),
            missing[:3],
            wrong[:3],
            self.where(),
        )
        assert sorted(snap.checkpoints) == sorted(self.source.meters), self.where()
        assert min(snap.checkpoints.values()) >= self.hi, self.where()
        if self.scope != schema.LIVE_SCOPE:
            assert snap.live == 0, "backfill wrote a live checkpoint %s" % self.where()


CASES = [("gnocchi", "run"), ("gnocchi", "backfill"), ("ceilometer", "run"), ("ceilometer", "backfill")]


# NOTE(crash): PostgreSQL and MariaDB run side by side in one test, each with
# its own process, database and kill times: a kill loop mostly waits, and
# the two databases one after the other would double the suite's time.
@pytest.mark.parametrize("source_name,mode", CASES, ids=["-".join(c) for c in CASES])
def test_sigkill_loses_and_doubles_nothing(request, tmp_path, pg_url, mysql_url, source_name, mode):
    source = request.getfixturevalue(source_name + "_source")
    if mode == "run":
        lo, hi = source.start, source.end
        args, final = ("run",), ("run", "--once")
    else:
        lo, hi = source.start + 2 * HOUR, source.end - 2 * HOUR
        args = final = ("backfill", "--start", lo.isoformat(), "--end", hi.isoformat())
    abort = threading.Event()
    crashers = []
    for db, db_url in (("postgresql", pg_url), ("mysql", mysql_url)):
        (tmp_path / db).mkdir()
        crashers.append(Crasher("%s-%s-%s" % (source_name, mode, db), tmp_path / db, db_url, source, args, lo, hi, abort))
    with concurrent.futures.ThreadPoolExecutor(len(crashers)) as pool:
        futures = [pool.submit(c.crash_and_compare, final) for c in crashers]
    for crasher in crashers:
        print(crasher.summary())
    for future in futures:
        future.result()


def test_sigkill_in_a_large_catch_up_window_loses_and_doubles_nothing(tmp_path, pg_url, gnocchi_source):
    """The default windowing reads the whole 16 h catch-up as one window per
    stream (the census shows 11,520 samples, under [sync] window_samples):
    killed while that window is half written, no checkpoint has moved, the
    rows written are the source's, and the next pass makes the table exact."""
    source = gnocchi_source
    filters = tmp_path / "filters.yaml"
    filters.write_text(source.filters)
    config = tmp_path / "meter-export.conf"
    # NOTE(crash): small pages and batches, so the one window is many
    # transactions; the windowing options are the defaults.
    config.write_text(
        "[DEFAULT]\ndebug = false\n[database]\nconnection = %s\nbatch_size = 300\n%s[gnocchi]\npoints_per_request = 600\n"
        "[sync]\nfilters_file = %s\ninitial_start = %s\nsettle = 0\ndelay = 3600\nworkers = 1\n"
        % (pg_url, source.config.replace("[gnocchi]\nmetrics_per_request = 20\n", ""), filters, source.start.isoformat())
    )
    crasher = Crasher("large-window", tmp_path, pg_url, source, ("run",), source.start, source.end, threading.Event())
    crasher.config = str(config)
    e2e.cli(crasher.config, "dbsync")
    inside = set()
    for _ in range(5):
        crasher.reset()
        proc = crasher.spawn("run")
        try:
            assert e2e.wait_for(lambda: _rows(crasher.engine) >= 300, timeout=300, interval=0.05), crasher.where()
        finally:
            kill_group(proc.pid)
            proc.wait(timeout=30)
        snap, table = crasher.check()
        # NOTE(crash): a stream with rows and no checkpoint: the kill landed
        # inside its one large window.
        inside = {m for m, _, _ in table.values()} - set(snap.checkpoints)
        if inside:
            break
    assert inside, "no kill landed inside a window %s" % crasher.where()
    crasher.finish(("run", "--once"))
    snap = snapshot(crasher.engine, schema.LIVE_SCOPE)
    crasher.check_exact(snap, crasher.table(snap))
    crasher.engine.dispose()


def _rows(engine):
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM samples")).scalar()
