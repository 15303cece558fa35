"""A real Ceilometer 9.0.7 v2 API (SQLite storage) for tests and demos.

The server runs ceilometer_app.py inside the ceilometer venv
(venvs.SPECS["ceilometer"]).  Its work directory holds the SQLite DB,
ceilometer.conf, policy.json, api.log and state.json (PID, endpoint), so
``stop`` works from another process too.

Library use::

    with CeilometerServer(workdir) as server:      # free port by default
        post_samples(server.endpoint, "cpu", [{...}])   # -> stored samples
        server.seed(burst_samples("cpu", start, 300, burst=20))

CLI::

    python -m telemetry_stack.ceilometer start --workdir DIR   # prints export lines
    python -m telemetry_stack.ceilometer stop --workdir DIR
"""

import datetime
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

from telemetry_stack import processes
from telemetry_stack import venvs
from telemetry_stack.processes import free_port  # noqa: F401 (tests and benches use it from here)

LOG = logging.getLogger(__name__)

APP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ceilometer_app.py")
STATE_FILE = "state.json"
DB_FILE = "ceilometer.sqlite"
LOG_FILE = "api.log"


class CeilometerStartError(RuntimeError):
    """The server did not come up; the message holds the log tail."""


def _owned_by(pid, workdir):
    command = processes.cmdline(pid)
    return b"ceilometer_app.py" in command and workdir.encode() in command


def venv_python(venv=None):
    venv = venv or venvs.venv_path(venvs.SPECS["ceilometer"]["name"])
    return os.path.join(venv, "bin", "python")


class CeilometerServer(processes.Server):
    """The real v2 API on 127.0.0.1, as admin (no keystone in front).

    :param workdir: holds the DB, config, log and state file; kept on stop.
    :param port: a free port when None.
    :param default_limit: the server's [api] default_api_return_limit.
    :param extra_args: more ceilometer_app.py serve flags (--gnocchi,
        --non-admin PROJECT, --token T).
    """

    def __init__(self, workdir, port=None, venv=None, default_limit=100, start_timeout=60, extra_args=()):
        self.workdir = os.path.abspath(workdir)
        self.port = port
        self.venv = venv
        self.default_limit = default_limit
        self.start_timeout = start_timeout
        self.extra_args = list(extra_args)
        self.endpoint = None
        self.pid = None
        self._proc = None

    @property
    def db_path(self):
        return os.path.join(self.workdir, DB_FILE)

    @property
    def log_path(self):
        return os.path.join(self.workdir, LOG_FILE)

    def start(self):
        """Launch and wait until ``GET /`` answers 200.

        :raises CeilometerStartError: with the tail of api.log.
        """
        os.makedirs(self.workdir, exist_ok=True)
        try:
            self._launch()
            self._wait_healthy()
        except Exception as e:
            report = "Ceilometer did not start (%s: %s); log %s:\n%s" % (type(e).__name__, e, self.log_path, processes.tail(self.log_path))
            self.stop()
            raise CeilometerStartError(report) from e
        LOG.info("Ceilometer v2 API up at %s (workdir %s)", self.endpoint, self.workdir)

    def _command(self):
        python = venv_python(self.venv)
        if not os.path.exists(python):
            raise CeilometerStartError("%s is missing: build the venv with tools/telemetry-venvs.sh ceilometer" % python)
        port = self.port or processes.free_port()
        self.endpoint = "http://127.0.0.1:%d" % port
        return [
            python,
            APP,
            "serve",
            "--port",
            str(port),
            "--db",
            self.db_path,
            "--default-limit",
            str(self.default_limit),
        ] + self.extra_args

    def _launch(self):
        cmd = self._command()
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.workdir, start_new_session=True
            )
        self.pid = self._proc.pid
        self._write_state()

    def _wait_healthy(self):
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise CeilometerStartError("the server exited with status %s" % self._proc.returncode)
            try:
                with urllib.request.urlopen(self.endpoint + "/", timeout=5) as resp:  # noqa: S310 (our own http URL)
                    if resp.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        raise TimeoutError("GET / did not answer within %ss" % self.start_timeout)

    def stop(self, timeout=10):
        """TERM the recorded PID, wait up to ``timeout``, then KILL."""
        if self.pid and self._ours():
            self._signal(signal.SIGTERM)
            if not self._wait_gone(timeout):
                LOG.warning("Ceilometer %d still alive after %ss, killing it", self.pid, timeout)
                self._signal(signal.SIGKILL)
                self._wait_gone(5)
        self.pid = None
        self._proc = None
        self._write_state()

    def _ours(self):
        # NOTE(ceilometer): a PID read back from state.json may have been
        # reused; only signal a process still running our app on our workdir.
        return self._proc is not None or (processes.alive(self.pid) and _owned_by(self.pid, self.workdir))

    def _write_state(self):
        with open(os.path.join(self.workdir, STATE_FILE), "w") as f:
            json.dump({"endpoint": self.endpoint, "pid": self.pid}, f)

    @classmethod
    def from_state(cls, workdir):
        """The server described by workdir's state file (started elsewhere)."""
        with open(os.path.join(workdir, STATE_FILE)) as f:
            state = json.load(f)
        server = cls(workdir)
        server.endpoint, server.pid = state["endpoint"], state["pid"]
        return server

    def post_samples(self, meter, samples, direct=True):
        return post_samples(self.endpoint, meter, samples, direct)

    def seed(self, samples):
        """seed_samples into this server's DB, once its leftovers are collected.

        NOTE(ceilometer): the driver leaves ORM sessions in reference
        cycles, and one that still holds a SQLite read transaction makes the
        seed's commit wait out its busy timeout ("database is locked").
        The app collects them only around requests (CollectAfterRequest),
        and a seed is no request: a POST first makes the server collect
        what the ended request threads left. The seed writes in one
        transaction, so a failed one wrote nothing and is tried once more.
        """
        for attempt in (1, 2):
            self.collect_garbage()
            try:
                return seed_samples(self.db_path, samples, self.venv)
            except RuntimeError as e:
                if attempt == 2 or "database is locked" not in str(e):
                    raise
                LOG.warning("seeding %s: database is locked; collecting and trying again", self.db_path)

    def collect_garbage(self):
        """A POST (any answer): the app collects before it answers a non-GET."""
        req = urllib.request.Request(self.endpoint + "/", data=b"", method="POST")  # noqa: S310 (our own http URL)
        try:
            urllib.request.urlopen(req, timeout=30).close()  # noqa: S310
        except urllib.error.HTTPError:
            pass

    def env(self):
        return {"CEILOMETER_ENDPOINT": self.endpoint, "OS_AUTH_TYPE": "none"}


# -- test data ----------------------------------------------------------------


def post_samples(endpoint, meter, samples, direct=True, timeout=30):
    """POST /v2/meters/<meter>[?direct=True]; returns the stored samples.

    Each sample is an OldSample dict (counter_type, counter_unit,
    counter_volume, resource_id, timestamp, ...); counter_name defaults to
    ``meter``.  The answer carries the message_id the API generated.
    """
    body = [dict({"counter_name": meter}, **s) for s in samples]
    url = "%s/v2/meters/%s%s" % (endpoint, meter, "?direct=True" if direct else "")
    req = urllib.request.Request(url, data=json.dumps(body, default=str).encode(), method="POST")  # noqa: S310
    req.add_header("Content-Type", "application/json")
    req.add_header("Accept", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
        return json.loads(resp.read())


def seed_samples(db_path, samples, venv=None, timeout=600):
    """Bulk-insert meter messages straight into the server's SQLite DB.

    Runs ``ceilometer_app.py seed`` in the ceilometer venv, so the rows are
    written by the real driver's models (measured ~6000 samples/s, against
    ~25/s for one-sample POSTs).
    Each sample is a dict with counter_name, counter_type, counter_unit,
    counter_volume, resource_id, user_id, project_id, source, timestamp
    (naive UTC ISO 8601 or datetime), resource_metadata, message_id and
    optionally recorded_at.  A message_id may repeat: it is stored twice.
    Returns the number of rows inserted.
    """
    path = "%s.seed-%s.jsonl" % (db_path, uuid.uuid4().hex[:8])
    with open(path, "w") as f:
        for sample in samples:
            f.write(json.dumps(sample, default=_iso) + "\n")
    try:
        cmd = [venv_python(venv), APP, "seed", "--db", db_path, "--file", path]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    finally:
        os.unlink(path)
    if done.returncode:
        raise RuntimeError("seeding %s failed:\n%s" % (db_path, done.stderr[-3000:]))
    return json.loads(done.stdout.strip().splitlines()[-1])["inserted"]


def _iso(value):
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f")
    raise TypeError("not JSON serialisable: %r" % (value,))


def meter_message(
    meter,
    timestamp,
    volume,
    resource_id="r0",
    project_id="p0",
    user_id="u0",
    counter_type="gauge",
    unit="unit",
    message_id=None,
    metadata=None,
):
    """One sample as the collector stores it (input of seed_samples)."""
    return {
        "counter_name": meter,
        "counter_type": counter_type,
        "counter_unit": unit,
        "counter_volume": volume,
        "resource_id": resource_id,
        "project_id": project_id,
        "user_id": user_id,
        "source": "openstack",
        "timestamp": timestamp,
        "resource_metadata": metadata if metadata is not None else {"display_name": resource_id},
        "message_id": message_id or str(uuid.uuid4()),
    }


def burst_samples(meter, start, count, burst=20, step=datetime.timedelta(seconds=10), projects=("p0",), resources=10):
    """``count`` samples in bursts of ``burst`` sharing one timestamp.

    Like a polling cycle: every sample of a burst has the same timestamp,
    bursts are ``step`` apart from ``start`` (naive or aware UTC).  Project
    and resource cycle through ``projects`` and ``resources`` ids.
    """
    out = []
    for i in range(count):
        ts = start + step * (i // burst)
        project = projects[i % len(projects)]
        out.append(meter_message(meter, ts, float(i), resource_id="r%d" % (i % resources), project_id=project))
    return out


# -- CLI ----------------------------------------------------------------------


def _cli_start(args):
    if os.path.exists(os.path.join(args.workdir, STATE_FILE)):
        old = CeilometerServer.from_state(args.workdir)
        if old.pid and processes.alive(old.pid) and _owned_by(old.pid, old.workdir):
            sys.exit("a Ceilometer is already running from %s; stop it first" % old.workdir)
    server = CeilometerServer(args.workdir, port=args.port)
    server.start()
    return server


def main(argv=None):
    processes.cli(
        "python -m telemetry_stack.ceilometer",
        "ceilometer",
        "Holds the DB, config, api.log and state.json.",
        _cli_start,
        lambda args: CeilometerServer.from_state(args.workdir).stop(),
        argv,
        lambda parser: parser.add_argument("--port", type=int, help="Default: a free port."),
    )


if __name__ == "__main__":
    main()
