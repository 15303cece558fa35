"""meter-export api on cheroot, and the orders/usage CLI through both transports."""

import json
import os
import signal
import socket
import subprocess

import pytest

from tests.functional import api_helpers
from tests.functional import billing_data as data
from tests.functional import e2e
from tests.functional.billing_data import T0
from tests.functional.billing_data import H


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def setup(tmp_path, db_url):
    yield from _serve(tmp_path, db_url)


@pytest.fixture
def pg_setup(tmp_path, pg_url):
    yield from _serve(tmp_path, pg_url)


def _serve(tmp_path, db_url):
    engine = data.prepare(db_url)
    data.add(engine, data.hours("p1", "vm-1", "m1.small", T0, 48))  # 1.152/day -> 1.15
    data.add(engine, data.hours("p1", "vol-1", "b1.standard", T0, 24, quantity="20", price="0.0003"))  # 0.144 -> 0.14
    data.mark_final(engine, T0 + 48 * H)
    engine.dispose()
    port = _free_port()
    config = tmp_path / "meter-export.conf"
    config.write_text(
        "[database]\nconnection = %s\n[api]\nport = %d\nthreads = 4\nauth_strategy = static\nadmin_tokens = %s\nproject_tokens = %s:p1\n"
        % (db_url, port, api_helpers.ADMIN, api_helpers.MEMBER)
    )
    proc = subprocess.Popen(
        [e2e.BIN, "--config-file", str(config), "api"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, start_new_session=True
    )
    e2e._STARTED.append(proc)
    assert e2e.wait_for(lambda: _listening(port), timeout=30), proc.stderr.read() if proc.poll() is not None else "not listening"
    yield str(config), "http://127.0.0.1:%d" % port, proc


def _listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def _run(config, *args, remote=None, token=api_helpers.ADMIN):
    argv = [e2e.BIN] + (["--config-file", config] if config else []) + list(args)
    if remote:
        argv += ["--endpoint", remote, "--token", token]
    env = dict(os.environ, METER_EXPORT_ENDPOINT="", METER_EXPORT_TOKEN="", OS_AUTH_URL="")
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)


def test_both_transports_print_the_same_json(setup):
    config, endpoint, proc = setup
    local = _run(config, "orders", "draft", "--project", "p1", "--end", "2026-10-02", "--format", "json")
    remote = _run(None, "orders", "draft", "--project", "p1", "--end", "2026-10-02", "--format", "json", remote=endpoint)
    assert local.returncode == remote.returncode == 0, local.stderr + remote.stderr
    assert local.stdout == remote.stdout
    draft = json.loads(local.stdout)
    assert draft["total"] == "1.29" and [x["cost"] for x in draft["lines"]] == ["1.15", "0.14"]

    created = _run(None, "orders", "create", "--project", "p1", "--end", "2026-10-02", "--format", "json", remote=endpoint)
    assert created.returncode == 0, created.stderr
    order = json.loads(created.stdout)
    assert order["total"] == "1.29" and order["start"] == "2026-10-01T00:00:00Z" and order["end"] == "2026-10-02T00:00:00Z"
    shown = _run(config, "orders", "show", "--project", "p1", "--id", str(order["id"]), "--format", "json")
    assert json.loads(shown.stdout) == order
    ranged = [
        _run(c, "orders", "range", "--project", "p1", "--start", "2026-10-01", "--format", "json", remote=r)
        for c, r in ((config, None), (None, endpoint))
    ]
    assert ranged[0].stdout == ranged[1].stdout and json.loads(ranged[0].stdout) == {"orders": [order]}
    historic = _run(config, "orders", "historic", "--project", "p1", "--date", "2026-10-01T10:00:00Z", "--format", "json")
    assert json.loads(historic.stdout)["order"] == order

    for c, r in ((config, None), (None, endpoint)):  # the same period again: refused, exit 3
        again = _run(c, "orders", "create", "--project", "p1", "--end", "2026-10-02", remote=r)
        assert again.returncode == 3 and "HTTP 409" in again.stderr and "must be after the end of its last order" in again.stderr
    returncode, err = e2e.stop_worker(proc, signal.SIGTERM, timeout=30)
    assert returncode == 0 and "API stopped" in err
    assert api_helpers.ADMIN not in err and api_helpers.MEMBER not in err  # no secret in the log


def test_refusals_exit_codes_and_formats(pg_setup):
    config, endpoint, proc = pg_setup
    created = _run(config, "orders", "create", "--project", "p1", "--end", "2026-10-02", "--format", "json")
    order = json.loads(created.stdout)
    bad = _run(None, "orders", "create", "--project", "p1", "--end", "soon", remote=endpoint)
    assert bad.returncode == 2 and "parameter end" in bad.stderr
    member = _run(None, "orders", "draft", "--project", "p2", remote=endpoint, token=api_helpers.MEMBER)
    assert member.returncode == 5 and "HTTP 403" in member.stderr

    table = _run(config, "orders", "show", "--project", "p1", "--id", str(order["id"]))
    assert "total 1.29 EUR" in table.stdout and "vol-1" in table.stdout
    csv = _run(config, "orders", "range", "--project", "p1", "--start", "2026-10-01", "--format", "csv").stdout.splitlines()
    assert csv[0].startswith("section,id,project_id,start,end,currency,resource_id") and len(csv) == 4  # header, 2 lines, total
    usage = _run(
        None, "usage", "--project", "p1", "--start", "2026-10-01", "--end", "2026-10-02", "--rated", "--format", "json", remote=endpoint
    )
    assert [(u["service"], u["cost"]) for u in json.loads(usage.stdout)["usage"]] == [("b1.standard", "0.144"), ("m1.small", "1.152")]


def test_api_refuses_to_start_without_tokens(tmp_path, sqlite_url):
    data.prepare(sqlite_url).dispose()
    config = tmp_path / "c.conf"
    config.write_text("[database]\nconnection = %s\n[api]\nauth_strategy = static\n" % sqlite_url)
    result = _run(str(config), "api")
    assert result.returncode == 2 and "[api] admin_tokens" in result.stderr
