"""Sink throughput: the project's Sink.write beside the best raw upsert.

Usage (from the repository root)::

    .venv/bin/python bench/sink_throughput.py [--rows 200000 1000000]
        [--db sqlite postgresql mysql] [--repeat 3] [--page 10000]

For each database and row count, a child process runs ``--repeat`` rounds.
A round gives every method (the project and each raw baseline) its own fresh
database (CREATE DATABASE mx_bench_<hex>, or a temporary SQLite file) with the
schema from migrate.upgrade, so the two BI indexes are there for every method.
It then writes the rows twice: "fresh" (empty tables) and "re-upsert" (same
message_ids, new values: all conflicts). Each page is generated once and
written by every method in turn before the next page, the turn order flipping
every page, so the methods share whatever the machine is doing at that moment.
Rates are rows/s of time spent inside the write calls, never the generation
of the data; the report gives the median of the rounds and each round's ratio.

The project's path is Sink.write(page) once per page, which is what the sync
worker does. A baseline takes the same page as plain tuples (metadata still a
dict) and does all the formatting it needs itself, inside its timed call.

Peak memory: another child, a clean interpreter, runs the project's two
passes alone and reports the rise of its peak RSS (VmHWM) over its RSS just
before: "flat" means that figure does not grow with the number of rows.
"""

import argparse
import datetime
import json
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import orjson

from meter_export.sources import Sample
from meter_export.storage import migrate
from meter_export.storage.samples import Sink

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
COLUMNS = Sample._fields
UPDATES = [c for c in COLUMNS if c != "message_id"]
EPOCH = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)


# -- Data ---------------------------------------------------------------------


class Population:
    """The fixed world samples are drawn from: meters, resources, projects."""

    def __init__(self, rng):
        projects = [uuid.UUID(int=rng.getrandbits(128)).hex for _ in range(100)]
        users = [uuid.UUID(int=rng.getrandbits(128)).hex for _ in range(300)]
        self.meters = [self._meter(rng, i) for i in range(50)]
        self.resources = [self._resource(rng, i, projects, users) for i in range(2000)]

    @staticmethod
    def _meter(rng, i):
        name = "meter.%02d.%s" % (i, rng.choice(["cpu", "memory.usage", "disk.read.bytes", "network.incoming.bytes"]))
        return name, rng.choice(["gauge", "cumulative", "delta"]), rng.choice(["ns", "MB", "B", "B/s"])

    @staticmethod
    def _resource(rng, i, projects, users):
        metadata = {
            "display_name": "vm-%05d" % i,
            "flavor": {
                "name": rng.choice(["m1.small", "m1.large", "c2.xlarge"]),
                "vcpus": rng.choice([1, 2, 4]),
                "ram": rng.choice([2048, 8192]),
            },
            "image_ref": str(uuid.UUID(int=rng.getrandbits(128))),
            "host": "compute-%03d" % rng.randrange(200),
            "state": "active",
            "availability_zone": "nova",
        }
        return str(uuid.UUID(int=rng.getrandbits(128))), rng.choice(projects), rng.choice(users), metadata


def pages(rows, page_size, version, seed=42):
    """Yield pages of plain tuples shaped like Sample, generated lazily.

    The same seed gives the same message_ids; ``version`` changes the values
    so that a re-upsert really updates every row.
    """
    rng = random.Random(seed)
    world = Population(rng)
    for start in range(0, rows, page_size):
        yield [_row(rng, world, n, version) for n in range(start, min(rows, start + page_size))]


def _row(rng, world, n, version):
    meter, kind, unit = world.meters[rng.randrange(50)]
    resource, project, user, metadata = world.resources[rng.randrange(2000)]
    ts = EPOCH + datetime.timedelta(seconds=n * 0.25, microseconds=rng.randrange(1000000))
    recorded = ts + datetime.timedelta(seconds=30 + version)
    volume = rng.random() * 1000 + version
    # NOTE(bench): a copy per sample, as when each sample's JSON is parsed
    # (Ceilometer): the sink cannot reuse the text of a dict seen earlier.
    metadata = dict(metadata, seq=n)
    return (
        str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        meter,
        kind,
        unit,
        volume,
        project,
        user,
        resource,
        "openstack",
        ts,
        recorded,
        metadata,
    )


# -- Throw-away databases -----------------------------------------------------


def create_database(db):
    """A fresh, empty database; returns (SQLAlchemy URL, token for drop)."""
    if db == "sqlite":
        tmp = tempfile.mkdtemp(prefix="mx_bench_")
        return "sqlite:///%s/bench.db" % tmp, tmp
    name = "mx_bench_" + uuid.uuid4().hex[:12]
    _admin(db, "CREATE DATABASE " + name)
    if db == "postgresql":
        return "postgresql://postgres@127.0.0.1:5432/" + name, name
    return "mysql://root@127.0.0.1:3306/%s?charset=utf8mb4" % name, name


def drop_database(db, token):
    if db == "sqlite":
        shutil.rmtree(token, ignore_errors=True)
    else:
        _admin(db, "DROP DATABASE IF EXISTS %s%s" % (token, " WITH (FORCE)" if db == "postgresql" else ""))


def _admin(db, statement):
    if db == "postgresql":
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(statement)
    else:
        import pymysql

        conn = pymysql.connect(**MYSQL, autocommit=True)
        with conn.cursor() as cur:
            cur.execute(statement)
        conn.close()


# -- Baselines: the best raw method per driver ----------------------------------


def _utc_text(value):
    # NOTE(bench): inputs are aware UTC, so the naive UTC text is the first
    # 26 characters of the isoformat (the "+00:00" suffix is dropped).
    return value.isoformat(" ", "microseconds")[:26]


class _Raw:
    @staticmethod
    def page(rows):
        return rows


class PgCopyMerge(_Raw):
    """psycopg 3: binary COPY into a temp staging table, INSERT ... SELECT ... ON CONFLICT."""

    name = "pg binary COPY+merge"
    TYPES = ["text"] * 4 + ["float8"] + ["text"] * 4 + ["timestamptz", "timestamptz", "text"]

    def __init__(self, url):
        import psycopg

        self.conn = psycopg.connect(url)
        cols = ", ".join('"%s" %s' % (c, t) for c, t in zip(COLUMNS, self.TYPES, strict=True))
        self.conn.execute("CREATE TEMP TABLE bench_staging (%s) ON COMMIT DELETE ROWS" % cols)
        self.conn.commit()
        names = ", ".join('"%s"' % c for c in COLUMNS)
        self.copy_sql = "COPY bench_staging (%s) FROM STDIN (FORMAT BINARY)" % names
        updates = ", ".join('"%s" = EXCLUDED."%s"' % (c, c) for c in UPDATES)
        select = names.replace('"resource_metadata"', '"resource_metadata"::jsonb')
        self.merge_sql = "INSERT INTO samples (%s) SELECT %s FROM bench_staging ON CONFLICT (message_id) DO UPDATE SET %s" % (
            names,
            select,
            updates,
        )

    def write(self, rows):
        dumps = orjson.dumps
        with self.conn.cursor() as cur:
            with cur.copy(self.copy_sql) as copy:
                copy.set_types(self.TYPES)
                for r in rows:
                    copy.write_row(r[:11] + (dumps(r[11]).decode(),))
            cur.execute(self.merge_sql)
        self.conn.commit()

    def close(self):
        self.conn.close()


class _MySQL(_Raw):
    def __init__(self, url):
        import pymysql

        name = url.rsplit("/", 1)[1].split("?")[0]
        self.conn = pymysql.connect(**MYSQL, database=name, charset="utf8mb4", local_infile=True, autocommit=False)

    def close(self):
        self.conn.close()


_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": "\\0"})


class MySQLLoadData(_MySQL):
    """pymysql: LOAD DATA LOCAL INFILE into a temp staging table, INSERT ... SELECT ... ODKU."""

    name = "LOAD DATA+merge"

    def __init__(self, url):
        super().__init__(url)
        self.tmp = tempfile.NamedTemporaryFile(prefix="mx_bench_", suffix=".tsv")
        with self.conn.cursor() as cur:
            cur.execute("CREATE TEMPORARY TABLE bench_staging ENGINE=InnoDB AS SELECT * FROM samples LIMIT 0")
        updates = ", ".join("`%s` = VALUES(`%s`)" % (c, c) for c in UPDATES)
        self.load_sql = "LOAD DATA LOCAL INFILE '%s' INTO TABLE bench_staging CHARACTER SET utf8mb4 (%s)" % (
            self.tmp.name,
            ", ".join("`%s`" % c for c in COLUMNS),
        )
        self.merge_sql = "INSERT INTO samples SELECT * FROM bench_staging ON DUPLICATE KEY UPDATE " + updates

    def write(self, rows):
        self._write_tsv(rows)
        with self.conn.cursor() as cur:
            cur.execute(self.load_sql)
            cur.execute(self.merge_sql)
            self.conn.commit()
            cur.execute("TRUNCATE TABLE bench_staging")

    def _write_tsv(self, rows):
        f = self.tmp.file
        f.seek(0)
        f.truncate()
        dumps = orjson.dumps
        lines = []
        for r in rows:
            text = [s.translate(_TSV_ESCAPES) if s is not None else "\\N" for s in (r[0], r[1], r[2], r[3])]
            text.append(repr(r[4]))
            text += [s.translate(_TSV_ESCAPES) if s is not None else "\\N" for s in (r[5], r[6], r[7], r[8])]
            text += [_utc_text(r[9]), _utc_text(r[10]), dumps(r[11]).decode().translate(_TSV_ESCAPES)]
            lines.append("\t".join(text))
        f.write("\n".join(lines).encode("utf-8"))
        f.flush()

    def close(self):
        super().close()
        self.tmp.close()


class MySQLExecutemany(_MySQL):
    """pymysql: executemany of a multi-row INSERT ... ON DUPLICATE KEY UPDATE."""

    name = "executemany ODKU"

    def __init__(self, url):
        super().__init__(url)
        updates = ", ".join("`%s` = VALUES(`%s`)" % (c, c) for c in UPDATES)
        cols = ", ".join("`%s`" % c for c in COLUMNS)
        self.sql = "INSERT INTO samples (%s) VALUES (%s) ON DUPLICATE KEY UPDATE %s" % (cols, ", ".join(["%s"] * 12), updates)

    def write(self, rows):
        dumps = orjson.dumps
        with self.conn.cursor() as cur:
            # NOTE(bench): the reference found larger statements help; the
            # server's max_allowed_packet is 16 MiB.
            cur.max_stmt_length = 8 * 1024 * 1024
            cur.executemany(self.sql, [r[:9] + (_utc_text(r[9]), _utc_text(r[10]), dumps(r[11]).decode()) for r in rows])
        self.conn.commit()


class SQLiteExecutemany(_Raw):
    """sqlite3: executemany of INSERT ... ON CONFLICT DO UPDATE, one transaction per page, WAL, synchronous=NORMAL."""

    name = "executemany ON CONFLICT"

    def __init__(self, url):
        self.conn = sqlite3.connect(url[len("sqlite:///") :], isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        updates = ", ".join('"%s" = excluded."%s"' % (c, c) for c in UPDATES)
        cols = ", ".join('"%s"' % c for c in COLUMNS)
        self.sql = "INSERT INTO samples (%s) VALUES (%s) ON CONFLICT (message_id) DO UPDATE SET %s" % (cols, ", ".join("?" * 12), updates)

    def write(self, rows):
        dumps = orjson.dumps
        self.conn.execute("BEGIN")
        self.conn.executemany(self.sql, [r[:9] + (_utc_text(r[9]), _utc_text(r[10]), dumps(r[11]).decode()) for r in rows])
        self.conn.execute("COMMIT")

    def close(self):
        self.conn.close()


class Project:
    """The project's path: Sink.write(page), exactly as the sync worker calls it."""

    name = "project Sink.write"

    def __init__(self, url):
        self.sink = Sink(url)

    @staticmethod
    def page(rows):
        # NOTE(bench): the Samples a source hands over are built outside the
        # clock, like the baselines' plain tuples.
        return [Sample._make(r) for r in rows]

    def write(self, samples):
        self.sink.write(samples)

    def close(self):
        self.sink.close()


BASELINES = {
    "postgresql": [PgCopyMerge],
    "mysql": [MySQLLoadData, MySQLExecutemany],
    "sqlite": [SQLiteExecutemany],
}


# -- Measuring ------------------------------------------------------------------


def _proc_status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _reset_peak_rss():
    # NOTE(bench): writing 5 to clear_refs resets VmHWM (Linux >= 4.0), so the
    # peak below belongs to the project's run alone.
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


class _Target:
    """One method writing into its own fresh database."""

    def __init__(self, db, cls):
        self.db = db
        self.url, self.token = create_database(db)
        schema = Sink(self.url)
        migrate.upgrade(schema)
        schema.close()
        self.method = cls(self.url)
        self.spent = 0.0

    def write(self, rows):
        page = self.method.page(rows)
        started = time.perf_counter()
        self.method.write(page)
        self.spent += time.perf_counter() - started

    def close(self):
        try:
            self.method.close()
        finally:
            drop_database(self.db, self.token)


def paired_pass(targets, rows, page_size, version):
    """Every page goes to every target before the next page is generated.

    NOTE(bench): the methods take turns page by page, and the turn order
    flips every page, so a slow spell of a shared machine (another VM, the
    disk's write-back) lands on all of them alike; timing whole passes one
    after the other let such spells decide the ratio. Returns rows/s.
    """
    for target in targets:
        target.spent = 0.0
    for n, page in enumerate(pages(rows, page_size, version)):
        for target in targets if n % 2 == 0 else targets[::-1]:
            target.write(page)
    return [rows / t.spent for t in targets]


def one_round(db, methods, rows, page_size):
    """Fresh databases, fresh pass then re-upsert pass; rows/s per method and phase."""
    targets = []
    try:
        for cls in methods:
            targets.append(_Target(db, cls))
        fresh = paired_pass(targets, rows, page_size, 0)
        reupsert = paired_pass(targets, rows, page_size, 1)
        _check_count(targets[0].method, rows)
    finally:
        for target in targets:
            target.close()
    return {cls.name: {"fresh": f, "reupsert": r} for cls, f, r in zip(methods, fresh, reupsert, strict=True)}


def peak_memory(db, rows, page_size):
    """Rise of peak RSS while the project alone writes rows twice, in a clean process."""
    target = _Target(db, Project)
    try:
        rss_before = _proc_status("VmRSS")
        _reset_peak_rss()
        paired_pass([target], rows, page_size, 0)
        paired_pass([target], rows, page_size, 1)
        return _proc_status("VmHWM") - rss_before
    finally:
        target.close()


def _check_count(method, rows):
    import sqlalchemy as sa

    with method.sink.engine.connect() as conn:
        count = conn.execute(sa.text("SELECT count(*) FROM samples")).scalar()
    if count != rows:
        raise SystemExit("project wrote %d rows, expected %d" % (count, rows))


def child(db, rows, repeat, page_size):
    """All rounds for one database and row count; prints one JSON line."""
    methods = [Project] + BASELINES[db]
    results = {cls.name: [] for cls in methods}
    for r in range(repeat):
        for name, res in one_round(db, methods, rows, page_size).items():
            results[name].append(res)
            print(
                "  %s %d round %d %-24s fresh %8.0f  re-upsert %8.0f" % (db, rows, r, name, res["fresh"], res["reupsert"]),
                file=sys.stderr,
                flush=True,
            )
    print(json.dumps({"db": db, "rows": rows, "results": results}))


def memory_child(db, rows, page_size):
    peak = peak_memory(db, rows, page_size)
    print("  %s %d project peak RSS rise %.0f MiB" % (db, rows, peak / 2**20), file=sys.stderr, flush=True)
    print(json.dumps({"peak_rss": peak}))


# -- Report ---------------------------------------------------------------------


def summarise(result, peak):
    """Median rates per method; the baseline is the best raw method per phase.

    Besides the ratio of the medians, each round's own ratio (the project
    against the best baseline of that round) shows the spread.
    """
    lines = []
    runs = result["results"]
    medians = {name: {p: statistics.median(r[p] for r in rounds) for p in ("fresh", "reupsert")} for name, rounds in runs.items()}
    project = medians.pop(Project.name)
    for phase in ("fresh", "reupsert"):
        best = max(medians, key=lambda name: medians[name][phase])
        others = ", ".join("%s %.0f" % (n, m[phase]) for n, m in medians.items() if n != best)
        per_round = [mine[phase] / max(runs[n][i][phase] for n in medians) for i, mine in enumerate(runs[Project.name])]
        lines.append(
            (
                result["db"],
                result["rows"],
                phase,
                best,
                medians[best][phase],
                project[phase],
                project[phase] / medians[best][phase],
                per_round,
                peak,
                others,
            )
        )
    return lines


def print_table(lines):
    head = "%-10s %8s %-9s %-22s %9s %9s %6s  %-16s %9s  %s" % (
        "database",
        "rows",
        "phase",
        "baseline",
        "base r/s",
        "sink r/s",
        "ratio",
        "round ratios",
        "peak RSS+",
        "other raw methods",
    )
    print(head)
    print("-" * len(head))
    for db, rows, phase, best, base, proj, ratio, per_round, peak, others in lines:
        mib = "%.0f MiB" % (peak / 2**20) if peak is not None else "-"
        rounds = " ".join("%.2f" % x for x in per_round)
        print("%-10s %8d %-9s %-22s %9.0f %9.0f %6.2f  %-16s %9s  %s" % (db, rows, phase, best, base, proj, ratio, rounds, mib, others))


def _run_child(*args):
    # NOTE(bench): one child process per measurement, so that each memory
    # figure starts from a clean interpreter and no run inherits another's heap.
    out = subprocess.run([sys.executable, __file__, *args], check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[200000, 1000000])
    parser.add_argument("--db", nargs="+", choices=sorted(BASELINES), default=["sqlite", "postgresql", "mysql"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--page", type=int, default=10000, help="samples per Sink.write call / per baseline transaction")
    parser.add_argument("--child", nargs=2, metavar=("DB", "ROWS"), help=argparse.SUPPRESS)
    parser.add_argument("--memory", nargs=2, metavar=("DB", "ROWS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], int(args.child[1]), args.repeat, args.page)
    if args.memory:
        return memory_child(args.memory[0], int(args.memory[1]), args.page)
    lines = []
    started = time.monotonic()
    for db in args.db:
        for rows in args.rows:
            page = ["--page", str(args.page)]
            peak = _run_child("--memory", db, str(rows), *page)["peak_rss"]
            result = _run_child("--child", db, str(rows), "--repeat", str(args.repeat), *page)
            lines += summarise(result, peak)
    print()
    print_table(lines)
    print(
        "\n%s, page %d, median of %d, %.0f s in all"
        % (datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"), args.page, args.repeat, time.monotonic() - started)
    )


if __name__ == "__main__":
    sys.exit(main())
