"""A real Gnocchi 4.7.1 (API under gunicorn + metricd) for tests and demos.

Everything lives in one work directory: gnocchi.conf, the file storage, the
WSGI wrapper, the logs ({upgrade,api,metricd}.log) and state.json (PIDs,
endpoint, database), so ``stop`` works from another process too.

Library use::

    with GnocchiServer() as server:        # fresh DB, free port
        server.endpoint                    # http://127.0.0.1:<port>
        server.wait_processed(timeout=60)  # metricd has aggregated everything

With ``keystone=KeystoneServer`` it runs ``auth_mode = keystone``: the API
validates every token against that Keystone (keystonemiddleware, no token
cache), is registered in its catalog as service type ``metric``, and
request() authenticates as the Keystone admin.

CLI (the README demo)::

    python -m telemetry_stack.gnocchi start --workdir DIR   # prints export lines
    python -m telemetry_stack.gnocchi stop --workdir DIR
"""

import base64
import contextlib
import glob
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from telemetry_stack import processes
from telemetry_stack import venvs
from telemetry_stack.processes import free_port  # noqa: F401 (tests and benches use it from here)

LOG = logging.getLogger(__name__)

PG_URL = os.environ.get("METER_EXPORT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
STATE_FILE = "state.json"
USER = "admin"

CONFIG = """\
[DEFAULT]
verbose = false
debug = {debug}
[indexer]
url = {indexer_url}
[storage]
driver = file
file_basepath = {data}
[incoming]
driver = file
file_basepath = {data}
[metricd]
workers = 1
# NOTE(gnocchi): the default is 60 s and the file incoming driver cannot
# wake metricd up, so a low delay is what makes tests fast.
metric_processing_delay = {delay}
[api]
auth_mode = {auth_mode}
{paste}{keystone}"""

# NOTE(keystone): Gnocchi's own paste pipeline, with the one line that makes
# keystonemiddleware read [keystone_authtoken] from our config file (by
# default it looks for /etc/gnocchi/gnocchi.conf).
KEYSTONE_AUTHTOKEN = """[keystone_authtoken]
auth_type = password
auth_url = {auth_url}
www_authenticate_uri = {auth_url}
username = {user}
password = {password}
user_domain_id = default
project_name = {project}
project_domain_id = default
# NOTE(keystone): no token cache, so every request is checked by Keystone
# (an expired or revoked token is refused at once).
token_cache_time = -1
"""
SERVICE_PROJECT = "service"
SERVICE_USER = "gnocchi"


# NOTE(gnocchi): gnocchi.rest.wsgi parses sys.argv with oslo.config, and under
# gunicorn sys.argv is gunicorn's own; the wrapper hands gnocchi its argv.
WSGI_WRAPPER = """\
import sys
sys.argv = [sys.argv[0], "--config-file", {config!r}]
from gnocchi.rest.wsgi import application  # noqa: E402,F401
"""


class GnocchiStartError(RuntimeError):
    """The server did not come up; the message holds the log tails."""


# NOTE(gnocchi): run through the gnocchi venv's psycopg2, so the helper works
# from any interpreter (system python3 for the CLI, the project venv in tests).
_ADMIN_SQL = """
import sys, psycopg2
conn = psycopg2.connect(sys.argv[1])
conn.autocommit = True
conn.cursor().execute(sys.argv[2])
conn.close()
"""


def _admin_sql(venv, pg_url, statement):
    python = os.path.join(venv, "bin", "python")
    done = subprocess.run([python, "-c", _ADMIN_SQL, pg_url, statement], capture_output=True, text=True, timeout=60)
    if done.returncode:
        raise RuntimeError("%s failed: %s" % (statement, done.stderr.strip().splitlines()[-1:]))


def _with_database(url, name, scheme=None):
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((scheme or parts.scheme, parts.netloc, "/" + name, parts.query, ""))


def _owned_by(pid, workdir):
    """True when pid still looks like one of ours.

    NOTE(gnocchi): gunicorn and cotyledon rewrite their process titles
    (setproctitle), so the workdir is not always visible; the app and
    program names are.
    """
    command = processes.cmdline(pid)
    return any(mark in command for mark in (workdir.encode(), b"mx_gnocchi_wsgi", b"gnocchi-metricd"))


class GnocchiServer(processes.Server):
    """A Gnocchi API + metricd on a fresh PostgreSQL database.

    :param workdir: kept after stop() when given; a temporary one otherwise.
    :param pg_url: PostgreSQL server on which the database is created.
    :param processing_delay: metricd's metric_processing_delay (seconds).
    :param keystone: a started telemetry_stack.keystone.KeystoneServer for
        auth_mode = keystone; basic auth when None.
    """

    def __init__(
        self,
        workdir=None,
        pg_url=None,
        venv=None,
        processing_delay=1,
        api_workers=2,
        api_threads=4,
        start_timeout=90,
        debug=False,
        keystone=None,
    ):
        self._own_workdir = workdir is None
        self.workdir = os.path.abspath(workdir or tempfile.mkdtemp(prefix="mx-gnocchi-"))
        self.pg_url = pg_url or PG_URL
        self.venv = venv or venvs.venv_path(venvs.SPECS["gnocchi"]["name"])
        self.processing_delay = processing_delay
        self.api_workers, self.api_threads = api_workers, api_threads
        self.start_timeout = start_timeout
        self.debug = debug
        self.keystone = keystone
        self.db_name = None
        self.endpoint = None
        self.pids = {}
        self._procs = {}

    # -- life cycle ---------------------------------------------------------

    def start(self):
        """Create the DB, configure, upgrade, launch and wait until healthy.

        :raises GnocchiStartError: with the tails of the logs.
        """
        watch = time.monotonic()
        try:
            self._prepare()
            self._launch()
            self._wait_api()
            if self.keystone is not None:
                self.keystone.register_service("gnocchi", "metric", self.endpoint)
            self._check_metricd()
        except Exception as e:
            report = self._failure_report(e)
            self.stop()
            raise GnocchiStartError(report) from e
        LOG.info("Gnocchi up at %s in %.1fs (workdir %s)", self.endpoint, time.monotonic() - watch, self.workdir)

    def _prepare(self):
        os.makedirs(os.path.join(self.workdir, "data"), exist_ok=True)
        self.db_name = "mx_gnocchi_" + uuid.uuid4().hex[:12]
        _admin_sql(self.venv, self.pg_url, "CREATE DATABASE " + self.db_name)
        self._write_state()
        self._write_files()
        self._run_upgrade()

    def _write_files(self):
        indexer_url = _with_database(self.pg_url, self.db_name, scheme="postgresql+psycopg2")
        auth = dict(auth_mode="basic", paste="", keystone="")
        if self.keystone is not None:
            auth = dict(auth_mode="keystone", paste="paste_config = %s\n" % self._write_paste(), keystone=self._keystone_section())
        with open(self.config_file, "w") as f:
            f.write(
                CONFIG.format(
                    indexer_url=indexer_url,
                    data=os.path.join(self.workdir, "data"),
                    delay=self.processing_delay,
                    debug=str(self.debug).lower(),
                    **auth,
                )
            )
        with open(os.path.join(self.workdir, "mx_gnocchi_wsgi.py"), "w") as f:
            f.write(WSGI_WRAPPER.format(config=self.config_file))

    def _write_paste(self):
        packaged = glob.glob(os.path.join(self.venv, "lib", "python*", "site-packages", "gnocchi", "rest", "api-paste.ini"))
        if not packaged:
            raise GnocchiStartError("gnocchi/rest/api-paste.ini not found in %s" % self.venv)
        with open(packaged[0]) as f:
            text = f.read()
        section = "[filter:keystone_authtoken]\n"
        path = os.path.join(self.workdir, "api-paste.ini")
        with open(path, "w") as f:
            f.write(text.replace(section, section + "oslo_config_file = %s\n" % self.config_file))
        return path

    def _keystone_section(self):
        """[keystone_authtoken], after making Gnocchi's service user in Keystone."""
        ks = self.keystone
        try:
            project = ks.project_id(SERVICE_PROJECT)
        except IndexError:
            project = ks.create_project(SERVICE_PROJECT)
        # NOTE(keystone): one Keystone may serve several Gnocchis; a user name
        # per database keeps their service users apart.
        user, password = "%s-%s" % (SERVICE_USER, self.db_name), secrets.token_urlsafe(16)
        ks.create_user(user, password, project=project, roles=["admin", "service"])
        return KEYSTONE_AUTHTOKEN.format(auth_url=ks.auth_url, user=user, password=password, project=SERVICE_PROJECT)

    @property
    def config_file(self):
        return os.path.join(self.workdir, "gnocchi.conf")

    def _run_upgrade(self):
        with open(self._log("upgrade"), "w") as log:
            cmd = [self._bin("gnocchi-upgrade"), "--config-file", self.config_file]
            subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=True, timeout=self.start_timeout)

    def _bin(self, program):
        path = os.path.join(self.venv, "bin", program)
        if not os.path.exists(path):
            raise GnocchiStartError("%s is missing: build the venv with tools/telemetry-venvs.sh gnocchi" % path)
        return path

    def _launch(self):
        port = processes.free_port()
        self.endpoint = "http://127.0.0.1:%d" % port
        api = [
            self._bin("gunicorn"),
            "--bind",
            "127.0.0.1:%d" % port,
            "--worker-class",
            "gthread",
            "--workers",
            str(self.api_workers),
            "--threads",
            str(self.api_threads),
            "--timeout",
            "120",
            "--graceful-timeout",
            "5",
            "--chdir",
            self.workdir,
            "mx_gnocchi_wsgi:application",
        ]
        self._spawn("api", api)
        self._spawn("metricd", [self._bin("gnocchi-metricd"), "--config-file", self.config_file])
        self._write_state()

    def _spawn(self, name, cmd):
        # NOTE(gnocchi): a new session per process, so stop() can signal the
        # whole group (gunicorn workers, cotyledon children) and the servers
        # outlive the CLI that launched them.
        with open(self._log(name), "ab") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.workdir, start_new_session=True
            )
        self._procs[name] = proc
        self.pids[name] = proc.pid

    # -- health -------------------------------------------------------------

    def _deadline_loop(self, what, timeout, interval=0.2):
        """Yield until the deadline; raise TimeoutError naming ``what`` after."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_running()
            yield
            time.sleep(interval)
        raise TimeoutError("%s not reached within %ss" % (what, timeout))

    def _check_running(self):
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                raise GnocchiStartError("%s exited with status %s" % (name, proc.returncode))

    def _wait_api(self):
        for _ in self._deadline_loop("API health", self.start_timeout):
            try:
                self.request("GET", "/v1/status")
                return
            except (OSError, urllib.error.URLError):
                continue

    def _check_metricd(self):
        """Push one measure to a throw-away metric and wait for metricd."""
        metric = self.request("POST", "/v1/metric", {"archive_policy_name": "low"})
        self.request("POST", "/v1/metric/%s/measures" % metric["id"], [{"timestamp": "2020-01-01T00:00:00", "value": 1}])
        self.wait_processed(self.start_timeout)
        self.request("DELETE", "/v1/metric/%s" % metric["id"])

    def status(self):
        return self.request("GET", "/v1/status")

    @contextlib.contextmanager
    def metricd_paused(self):
        """metricd stopped (SIGSTOP to its process group) inside the block.

        NOTE(bench): with the file incoming driver and a 1 s delay, metricd
        polls its sacks every second through tooz on the indexer's
        PostgreSQL: 0.65 to 1.0 of this 2-CPU machine's CPUs with nothing
        to process (measured 2026-12-02), CPU a deployment spends on other
        hosts. The API serves processed measures without it.
        """
        os.killpg(self.pids["metricd"], signal.SIGSTOP)
        try:
            yield
        finally:
            os.killpg(self.pids["metricd"], signal.SIGCONT)

    def wait_processed(self, timeout=60):
        """Wait until metricd has no measure left to process.

        :raises TimeoutError: measures are still pending after ``timeout``.
        """
        for _ in self._deadline_loop("empty metricd backlog", timeout, interval=0.25):
            if self.status()["storage"]["summary"]["measures"] == 0:
                return

    def request(self, method, path, body=None, timeout=10):
        """One JSON request as the admin user; returns the body."""
        data = json.dumps(body).encode() if body is not None else None
        # NOTE(gnocchi): the URL is our own http:// endpoint, never user input.
        req = urllib.request.Request(self.endpoint + path, data=data, method=method)  # noqa: S310
        for name, value in self.auth_headers().items():
            req.add_header(name, value)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            text = resp.read()
        return json.loads(text) if text else None

    def auth_headers(self):
        """The admin's credentials: a Keystone token, or basic auth."""
        if self.keystone is not None:
            return {"X-Auth-Token": self.keystone.admin_token()}
        return {"Authorization": "Basic " + base64.b64encode(b"%s:" % USER.encode()).decode()}

    def _failure_report(self, error):
        names = [n for n in ("upgrade", "api", "metricd") if os.path.exists(self._log(n))]
        logs = "".join("\n--- %s.log (tail) ---\n%s" % (n, processes.tail(self._log(n))) for n in names)
        return "Gnocchi did not start (%s: %s); workdir %s%s" % (type(error).__name__, error, self.workdir, logs)

    # -- stop ---------------------------------------------------------------

    def stop(self, timeout=20):
        """TERM the processes, KILL what is left after ``timeout``, drop the DB."""
        self._signal_all(signal.SIGTERM)
        if not self._wait_gone(timeout):
            LOG.warning("Gnocchi processes still alive after %ss, killing them", timeout)
            self._signal_all(signal.SIGKILL)
            self._wait_gone(5)
        self.pids = {}
        self._procs = {}
        self._drop_database()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            self._write_state()

    def _signal_all(self, signum):
        for name, pid in self.pids.items():
            # NOTE(gnocchi): a recorded PID may have been reused since; only
            # signal a process whose command line still names our workdir.
            if processes.alive(pid) and (name in self._procs or _owned_by(pid, self.workdir)):
                try:
                    os.killpg(pid, signum)
                except ProcessLookupError:
                    pass

    def _wait_gone(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self._procs.values():
                proc.poll()
            if not any(processes.alive(pid) for pid in self.pids.values()):
                return True
            time.sleep(0.1)
        return False

    def _drop_database(self):
        if self.db_name:
            try:
                _admin_sql(self.venv, self.pg_url, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % self.db_name)
            except Exception:
                LOG.warning("Could not drop database %s", self.db_name, exc_info=True)
            self.db_name = None

    # -- state file (for the CLI) -------------------------------------------

    def _write_state(self):
        state = {"endpoint": self.endpoint, "pids": self.pids, "db_name": self.db_name, "pg_url": self.pg_url}
        with open(os.path.join(self.workdir, STATE_FILE), "w") as f:
            json.dump(state, f)

    @classmethod
    def from_state(cls, workdir):
        """The server described by workdir's state file (started elsewhere)."""
        with open(os.path.join(workdir, STATE_FILE)) as f:
            state = json.load(f)
        server = cls(workdir=workdir, pg_url=state["pg_url"])
        server.endpoint, server.pids, server.db_name = state["endpoint"], state["pids"], state["db_name"]
        return server

    def env(self):
        if self.keystone is not None:
            return dict(self.keystone.env(), GNOCCHI_ENDPOINT=self.endpoint)
        return {"GNOCCHI_ENDPOINT": self.endpoint, "GNOCCHI_USER": USER, "OS_AUTH_TYPE": "gnocchi-basic"}


def _cli_start(args):
    if os.path.exists(os.path.join(args.workdir, STATE_FILE)):
        old = GnocchiServer.from_state(args.workdir)
        if any(processes.alive(p) and _owned_by(p, old.workdir) for p in old.pids.values()):
            sys.exit("a Gnocchi is already running from %s; stop it first" % old.workdir)
    server = GnocchiServer(workdir=args.workdir)
    server.start()
    return server


def main(argv=None):
    processes.cli(
        "python -m telemetry_stack.gnocchi",
        "gnocchi",
        "Holds config, data, logs and state.json.",
        _cli_start,
        lambda args: GnocchiServer.from_state(args.workdir).stop(),
        argv,
    )


if __name__ == "__main__":
    main()
