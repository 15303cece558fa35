"""Shared pieces of the end-to-end benches (e2e_*.py, backfill_rss.py, idle_cpu.py).

Not a bench itself: machine description, fresh PostgreSQL databases, the
meter-export config file, medians.  The real telemetry servers come from
tools/telemetry_stack, as in tests/functional.
"""

import contextlib
import datetime
import gc
import logging
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import uuid

import sqlalchemy as sa

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

PG_URL = os.environ.get("METER_EXPORT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BIN = os.path.join(os.path.dirname(sys.executable), "meter-export")
UTC = datetime.UTC


def machine():
    """One line: CPUs, RAM, CPU model, kernel, Python, date."""
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    except OSError:
        pass
    with open("/proc/meminfo") as f:
        ram_kb = int(next(line.split()[1] for line in f if line.startswith("MemTotal")))
    return "nproc=%d, RAM %.1f GiB, %s, Linux %s, Python %s, %s" % (
        os.cpu_count(),
        ram_kb / 2**20,
        model,
        platform.release(),
        platform.python_version(),
        datetime.datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def say(text=""):
    print(text, flush=True)


def header(title):
    say("== %s" % title)
    say("machine: %s" % machine())
    say("load average at start: %s" % loadavg())


def median(values):
    return statistics.median(values)


class Database:
    """A fresh PostgreSQL database on PG_URL, dropped by drop()."""

    def __init__(self):
        from meter_export.storage import engine as storage_engine

        # NOTE(bench): not mx_bench_ (bench/sink_throughput.py's prefix): on
        # 2026-11-21 our mx_bench_* databases were dropped by another process
        # in the middle of a run; a prefix of our own keeps clear of that.
        self.name = "mx_e2e_" + uuid.uuid4().hex[:12]
        self._admin = sa.create_engine(storage_engine.dress_url(PG_URL), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        with self._admin.connect() as conn:
            conn.execute(sa.text("CREATE DATABASE " + self.name))
        self.url = sa.engine.make_url(PG_URL).set(database=self.name).render_as_string(hide_password=False)

    def count(self, table="samples"):
        return count_rows(self.url, table)

    def drop(self):
        with self._admin.connect() as conn:
            conn.execute(sa.text("DROP DATABASE IF EXISTS %s WITH (FORCE)" % self.name))
        self._admin.dispose()


class SQLiteDatabase:
    """A fresh SQLite file in ``directory`` (the embedded default), removed by drop()."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "mx_e2e_%s.sqlite" % uuid.uuid4().hex[:12])
        self.url = "sqlite:///" + self.path

    def count(self, table="samples"):
        return count_rows(self.url, table)

    def drop(self):
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path + suffix)


def new_database(kind, directory):
    """A fresh database of ``kind`` ("postgresql" or "sqlite")."""
    return SQLiteDatabase(directory) if kind == "sqlite" else Database()


def count_rows(url, table="samples"):
    from meter_export.storage import engine as storage_engine

    engine = sa.create_engine(storage_engine.dress_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM %s" % table)).scalar()
    finally:
        engine.dispose()


def write_config(directory, db_url, source_lines, credentials, filters_yaml, sync=None, extra=""):
    """meter-export.conf + filters.yaml in ``directory``; returns the config path."""
    filters = os.path.join(directory, "filters-%s.yaml" % uuid.uuid4().hex[:6])
    with open(filters, "w") as f:
        f.write(filters_yaml)
    sync_lines = "".join("%s = %s\n" % kv for kv in (sync or {}).items())
    path = os.path.join(directory, "meter-export-%s.conf" % uuid.uuid4().hex[:6])
    with open(path, "w") as f:
        f.write(
            "[DEFAULT]\ndebug = false\n[database]\nconnection = %s\n[source]\n%s\n"
            "[service_credentials]\n%s\n[sync]\nfilters_file = %s\n%s%s"
            % (db_url, source_lines, "\n".join("%s = %s" % kv for kv in credentials.items()), filters, sync_lines, extra)
        )
    return path


def cli(config, *args, timeout=3600):
    """Run the real meter-export CLI; raise with its stderr if it fails."""
    done = subprocess.run([BIN, "--config-file", config, *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise RuntimeError("meter-export %s exited %d:\n%s" % (" ".join(args), done.returncode, done.stderr[-3000:]))
    return done


def in_process(config, *args):
    """meter-export in this process (cli.main); returns (exit code, seconds)."""
    from meter_export import cli as cli_mod

    started = time.perf_counter()
    with collector_restored():
        code = cli_mod.main(["--config-file", config, *args])
    return code, time.perf_counter() - started


@contextlib.contextmanager
def collector_restored():
    """The collector's thresholds as they were before the block.

    NOTE(bench): run and backfill tune the process's collector
    (utils.tune_collector); the baselines timed after them in this process
    must run with the interpreter's defaults, as a plain script does.
    """
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def startup_seconds(repeat=3):
    """Median wall time of a fresh interpreter importing what `run` imports.

    What a subprocess `meter-export run --once` pays before its first request
    (the benches time the sync in-process, so it is reported, not counted).
    """
    code = (
        "import meter_export.cli, meter_export.worker, meter_export.sources.gnocchi, "
        "meter_export.sources.ceilometer, meter_export.storage.samples"
    )
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - started)
    return median(times)


class StreamLines(logging.Handler):
    """Keeps the per-stream log lines of a pass (they carry the requests)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        if record.getMessage().startswith("Stream "):
            self.lines.append(record.getMessage())

    def requests(self):
        return {line.split(":", 1)[0][7:]: int(re.search(r"(\d+) requests", line).group(1)) for line in self.lines}


def per_stream(requests):
    return ", ".join("%s %d" % kv for kv in sorted(requests.items()))


def _group(proc):
    """Which party of a bench a process is: this bench, a server, or None."""
    if proc.pid == os.getpid():
        return "meter-export/client"
    name = proc.name()
    if name.startswith(("postgres", "mariadbd", "mysqld")):
        return "database"
    cmdline = " ".join(proc.cmdline())
    for server in ("gnocchi", "ceilometer", "keystone"):
        if server in cmdline:
            return server
    return None


def cpu_seconds():
    """CPU seconds used so far, per party (see _group): user + system, with
    the children each process has reaped (PostgreSQL's ended backends)."""
    import psutil

    totals = {}
    for proc in psutil.process_iter():
        try:
            group = _group(proc)
            if group is not None:
                t = proc.cpu_times()
                totals[group] = totals.get(group, 0.0) + t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            continue
    return totals


class CpuMeter:
    """CPU seconds each party spent between start and ``stop()``: the profile
    of a side when the machine's CPUs, not the network, are the limit.

    NOTE(bench): a party is every process of the machine that matches it
    (_group), this bench's servers or not: run nothing else beside it (a
    test suite's Gnocchi beside a smoke run once showed 3.6 CPUs busy on 2).
    """

    def __init__(self):
        self._before = cpu_seconds()

    def stop(self):
        after = cpu_seconds()
        return {group: after[group] - self._before.get(group, 0.0) for group in after}


def cpu_line(used, seconds):
    parts = ", ".join("%s %.1f" % kv for kv in sorted(used.items()) if kv[1] >= 0.05)
    return "CPU s: %s; total %.1f in %.1fs wall (%.2f CPUs busy)" % (parts, sum(used.values()), seconds, sum(used.values()) / seconds)


def interleaved(sides, repeat, quiet=contextlib.nullcontext):
    """Run each side ``repeat`` times, the order reversed every other round.

    ``sides``: {name: () -> (count, seconds, requests)}; each call runs
    inside ``quiet()`` and prints its round line and CPU per party.
    Returns ({name: [seconds]}, {name: count}, {name: requests}) of the last round.
    """
    times = {name: [] for name in sides}
    counts, requests = {}, {}
    for round_ in range(repeat):
        for name in list(sides) if round_ % 2 == 0 else list(reversed(sides)):
            with quiet():
                meter = CpuMeter()
                counts[name], seconds, requests[name] = sides[name]()
                used = meter.stop()
            times[name].append(seconds)
            say("  round %d  %-42s %8d samples %7.2fs  load %s" % (round_ + 1, name, counts[name], seconds, loadavg()))
            say("           %s" % cpu_line(used, seconds))
    return times, counts, requests
