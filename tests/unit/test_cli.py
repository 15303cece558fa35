"""The meter-export command, run as a real process: help and config checks.

A configuration error must stop the command before it touches anything:
exit status 2 (systemd's RestartPreventExitStatus), a message naming the
option, and no database file created.
"""

import os
import sqlite3
import subprocess
import sys
import sysconfig

import pytest

SCRIPT = os.path.join(sysconfig.get_path("scripts"), "meter-export")
COMMAND = [SCRIPT] if os.path.exists(SCRIPT) else [sys.executable, "-m", "meter_export.cli"]


def meter_export(*args, cwd):
    return subprocess.run(COMMAND + list(args), capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.mark.parametrize(
    "args, expected",
    [
        ((), ["dbsync", "run", "backfill", "--config-file"]),
        (("dbsync",), ["schema", "Safe to run again"]),
        (("run",), ["--once", "SIGTERM"]),
        (("backfill",), ["--start", "--end", "Resumable"]),
        (("rate",), ["--start", "--end", "one transaction", "Resumable"]),
        (("prices",), ["load", "list", "overlaps"]),
        (("bi-role",), ["--name", "--password", "--print", "read every table and view"]),
        (("api",), ["over HTTP", "SIGTERM"]),
        (("orders",), ["create,draft,historic,range,show", "--endpoint", "--format", "Exit 3 when refused"]),
        (("usage",), ["--group-by", "--rated", "--os-auth-url"]),
    ],
    ids=["main", "dbsync", "run", "backfill", "rate", "prices", "bi-role", "api", "orders", "usage"],
)
def test_help(tmp_path, args, expected):
    result = meter_export(*args, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for text in expected:
        assert text in " ".join(result.stdout.split())
    assert os.listdir(tmp_path) == []


def _write_config(tmp_path, section, lines):
    db = tmp_path / "meter-export.sqlite"
    config = tmp_path / "meter-export.conf"
    body = {"database": ["connection = sqlite:///%s" % db]}
    body.setdefault(section, []).extend(lines)
    config.write_text("".join("[%s]\n%s\n" % (name, "\n".join(opts)) for name, opts in body.items()))
    return config


BAD_CONFIGS = {
    "unknown-driver": ("source", ["driver = nosuch"], "[source] driver"),
    "negative-delay": ("sync", ["delay = -5"], "[sync] delay"),
    "zero-max-window": ("sync", ["max_window = 0"], "[sync] max_window"),
    "bad-database-url": ("database", ["connection = nosuchdb://x"], "[database] connection"),
    "unknown-auth-type": ("service_credentials", ["auth_type = nosuch"], "[service_credentials] auth_type"),
    "bad-initial-start": ("sync", ["initial_start = yesterday"], "[sync] initial_start"),
    "unknown-auth-strategy": ("api", ["auth_strategy = nosuch"], "[api] auth_strategy"),
    "bad-currency": ("billing", ["default_currency = euro"], "[billing] default_currency"),
}


def _assert_config_error(tmp_path, case, command):
    section, lines, option = BAD_CONFIGS[case]
    config = _write_config(tmp_path, section, lines)
    result = meter_export("--config-file", str(config), *command, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "configuration error: %s:" % option in result.stderr
    assert os.listdir(tmp_path) == [config.name]


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_invalid_config_exits_2_before_touching_the_database(tmp_path, case):
    _assert_config_error(tmp_path, case, ["dbsync"])


@pytest.mark.parametrize(
    "command",
    [["run", "--once"], ["backfill", "--start=-P1D", "--end=-PT1H"], ["api"], ["orders", "draft", "--project", "p"]],
    ids=["run", "backfill", "api", "orders"],
)
def test_every_command_checks_the_config_first(tmp_path, command):
    _assert_config_error(tmp_path, "zero-max-window", command)


def test_missing_config_file(tmp_path):
    missing = tmp_path / "nowhere.conf"
    result = meter_export("--config-file", str(missing), "dbsync", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "config-file" in result.stderr and str(missing) in result.stderr
    assert os.listdir(tmp_path) == []


def _tables(path):
    with sqlite3.connect(path) as conn:
        return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _revision(path):
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT version_num FROM alembic_version").fetchall()


def test_dbsync_creates_then_keeps_the_schema(tmp_path):
    config = _write_config(tmp_path, "database", [])
    db = tmp_path / "meter-export.sqlite"
    first = meter_export("--config-file", str(config), "dbsync", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert {"samples", "checkpoints", "alembic_version"} <= _tables(db)
    revision = _revision(db)
    assert len(revision) == 1
    second = meter_export("--config-file", str(config), "dbsync", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert _revision(db) == revision


GNOCCHI_AUTH = ["auth_type = gnocchi-basic", "user = admin", "endpoint = http://127.0.0.1:9"]
FILTERS_OK = "filters:\n  - name: a\n    meters: [cpu]\n"

# Checks that need the filters file, the credentials or the database: run
# and backfill refuse to start, naming the option, with nothing written.
START_UP = {
    "filters-file-missing": (
        {"sync": ["filters_file = nowhere.yaml"], "service_credentials": GNOCCHI_AUTH},
        None,
        2,
        "[sync] filters_file",
    ),
    "filters-file-invalid": ({"service_credentials": GNOCCHI_AUTH}, "filters:\n  - name: a\n", 2, "[sync] filters_file"),
    "filters-raw-item-on-timestamp": (
        {"service_credentials": GNOCCHI_AUTH},
        "filters:\n  - name: c\n    meters: [cpu]\n    query: {raw: [{field: timestamp, op: lt, value: '2026-01-01'}]}\n",
        2,
        "[sync] filters_file",
    ),
    "auth-option-missing": ({"service_credentials": ["auth_type = password"]}, FILTERS_OK, 2, "[service_credentials] auth_url"),
    "no-auth-type": ({}, FILTERS_OK, 2, "[service_credentials] auth_type"),
    "database-not-created": ({"service_credentials": GNOCCHI_AUTH}, FILTERS_OK, 2, "[database] connection"),
    "database-unreachable": (
        {"service_credentials": GNOCCHI_AUTH, "database": ["connection = postgresql://nobody@127.0.0.1:9/none"]},
        FILTERS_OK,
        1,  # may work later: systemd restarts on this one
        "[database] connection",
    ),
}


@pytest.mark.parametrize("case", sorted(START_UP))
@pytest.mark.parametrize("command", [["run", "--once"], ["backfill", "--start=-P1D", "--end=-PT1H"]], ids=["run", "backfill"])
def test_start_up_checks_refuse_before_any_work(tmp_path, case, command):
    sections, filters, code, option = START_UP[case]
    db = tmp_path / "meter-export.sqlite"
    body = {"database": ["connection = sqlite:///%s" % db], "sync": ["filters_file = %s" % (tmp_path / "filters.yaml")]}
    for name, lines in sections.items():
        body[name] = lines if name == "database" else body.get(name, []) + lines
    if filters is not None:
        (tmp_path / "filters.yaml").write_text(filters)
    config = tmp_path / "meter-export.conf"
    config.write_text("".join("[%s]\n%s\n" % (name, "\n".join(opts)) for name, opts in body.items()))
    before = sorted(os.listdir(tmp_path))
    result = meter_export("--config-file", str(config), *command, cwd=tmp_path)
    assert result.returncode == code, result.stderr
    assert "configuration error: %s" % option in result.stderr
    if case == "filters-raw-item-on-timestamp":
        assert "filter 'c': query.raw: [0]: field timestamp" in result.stderr
    assert sorted(os.listdir(tmp_path)) == before


@pytest.mark.parametrize("command", [["api"], ["orders", "draft", "--project", "p"], ["usage", "--project", "p", "--start", "2026-01-01"]])
@pytest.mark.parametrize(
    "connection,code",
    [("sqlite:///{tmp}/none.sqlite", 2), ("postgresql://nobody@127.0.0.1:9/none", 1)],
    ids=["not-created", "unreachable"],
)
def test_billing_commands_check_the_database_first(tmp_path, command, connection, code):
    config = tmp_path / "meter-export.conf"
    config.write_text("[database]\nconnection = %s\n[api]\nauth_strategy = static\nadmin_tokens = t\n" % connection.format(tmp=tmp_path))
    result = meter_export("--config-file", str(config), *command, cwd=tmp_path)
    assert result.returncode == code, result.stderr
    assert "configuration error: [database] connection" in result.stderr
    assert os.listdir(tmp_path) == [config.name]
