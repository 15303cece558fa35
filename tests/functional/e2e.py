"""Helpers for the end-to-end tests: real CLI, real servers, real databases."""

import datetime
import os
import signal
import subprocess
import sys
import time

import sqlalchemy as sa

from meter_export.storage import engine as storage_engine
from meter_export.storage import schema

BIN = os.path.join(os.path.dirname(sys.executable), "meter-export")


def this_hour():
    """The start of the current UTC hour."""
    return datetime.datetime.now(datetime.UTC).replace(minute=0, second=0, microsecond=0)


def write_config(tmp_path, db_url, credentials, filters_yaml, **sync):
    """A config file and a filters file; returns the config path."""
    filters = tmp_path / "filters.yaml"
    filters.write_text(filters_yaml)
    sync_lines = "".join(
        "%s = %s\n" % kv for kv in dict(dict(initial_start="-P3D", settle=0, lookback=3600, max_window=7200), **sync).items()
    )
    config = tmp_path / "meter-export.conf"
    config.write_text(
        "[DEFAULT]\ndebug = false\n[database]\nconnection = %s\nbatch_size = 500\n"
        "[source]\n%s\n[service_credentials]\n%s\n[sync]\nfilters_file = %s\n%s"
        % (db_url, credentials.pop("_source", ""), "\n".join("%s = %s" % kv for kv in credentials.items()), filters, sync_lines)
    )
    return str(config)


def cli(config, *args, check=True, timeout=600):
    """Run meter-export and return the CompletedProcess (stderr captured)."""
    result = subprocess.run([BIN, "--config-file", config, *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError("meter-export %s exited %d:\n%s" % (" ".join(args), result.returncode, result.stderr[-4000:]))
    return result


_STARTED = []


def start_worker(config, *args, stderr=subprocess.PIPE, env=None):
    """The real daemon in its own session; reap() kills it if a test fails."""
    proc = subprocess.Popen(
        [BIN, "--config-file", config, "run", *args],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
        env=env,
        start_new_session=True,
    )
    _STARTED.append(proc)
    return proc


def reap():
    """Kill (master and children) every daemon a test left running."""
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def stop_worker(proc, sig=signal.SIGTERM, timeout=90):
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, err


def table(db_url, columns=("message_id", "resource_id", "counter_name", "timestamp", "counter_volume")):
    """The samples table as a list of tuples."""
    engine = sa.create_engine(storage_engine.dress_url(db_url), poolclass=sa.pool.NullPool)
    meta = schema.make_metadata()
    try:
        with engine.connect() as conn:
            samples = meta.tables["samples"]
            return [tuple(r) for r in conn.execute(sa.select(*[samples.c[c] for c in columns]))]
    finally:
        engine.dispose()


def checkpoints(db_url, scope="live"):
    engine = sa.create_engine(storage_engine.dress_url(db_url), poolclass=sa.pool.NullPool)
    meta = schema.make_metadata()
    try:
        with engine.connect() as conn:
            t = meta.tables["checkpoints"]
            return {(r.source, r.filter_name, r.meter): r.complete_until for r in conn.execute(sa.select(t).where(t.c.scope == scope))}
    finally:
        engine.dispose()


def wait_for(predicate, timeout=60, interval=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
