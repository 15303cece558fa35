"""A real Keystone (SQLite backend, Fernet tokens, under gunicorn) for tests.

Everything lives in one work directory: keystone.conf, the SQLite DB, the
Fernet, credential and receipt key repositories, the WSGI wrapper, the logs
({db_sync,fernet_setup,credential_setup,bootstrap,api,access}.log) and
state.json (PID, endpoint, admin password), so ``stop`` works from another
process too.  ``keystone-manage bootstrap`` creates the ``admin`` user,
project and role (with ``member`` and ``reader``), the ``RegionOne`` region
and the identity service in the catalog.

Library use::

    with KeystoneServer(token_expiration=120) as ks:    # free port
        ks.auth_url                                     # http://127.0.0.1:<port>/v3
        project = ks.create_project("p1")
        ks.create_user("alice", "pw", project=project, roles=["member"])
        token = ks.token("alice", "pw", project="p1")
        ks.register_service("gnocchi", "metric", "http://127.0.0.1:8041")
        admin = ks.new_account("admin")                 # a user and a project
        member = ks.new_account("member", project=admin.project)
        member.token(), member.credentials()

CLI::

    python -m telemetry_stack.keystone start --workdir DIR   # prints export lines
    python -m telemetry_stack.keystone stop --workdir DIR
"""

import concurrent.futures
import grp
import json
import logging
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import typing
import urllib.error
import urllib.request
import uuid

from telemetry_stack import processes
from telemetry_stack import venvs

LOG = logging.getLogger(__name__)

STATE_FILE = "state.json"
ADMIN = "admin"
REGION = "RegionOne"
DOMAIN = "default"

CONFIG = """\
[DEFAULT]
debug = {debug}
[database]
connection = sqlite:///{workdir}/keystone.sqlite
[token]
provider = fernet
expiration = {expiration}
[fernet_tokens]
key_repository = {workdir}/fernet-keys
[fernet_receipts]
# NOTE(keystone): fernet_setup also creates this repository, by default
# under /etc/keystone; keep it in the work directory.
key_repository = {workdir}/receipt-keys
[credential]
key_repository = {workdir}/credential-keys
[identity]
# NOTE(keystone): bcrypt's cheapest cost: every token issued checks a
# password, and the default (12) costs ~0.25 s of CPU each.
password_hash_rounds = 4
"""

# NOTE(keystone): keystone parses sys.argv with oslo.config when the app is
# built, and under gunicorn sys.argv is gunicorn's; it finds its config file
# through OS_KEYSTONE_CONFIG_FILES.
WSGI_WRAPPER = """\
import os
import sys
sys.argv = sys.argv[:1]
os.environ["OS_KEYSTONE_CONFIG_FILES"] = {config!r}
from keystone.wsgi.api import application  # noqa: E402,F401
"""


class KeystoneStartError(RuntimeError):
    """The server did not come up; the message holds the log tails."""


class KeystoneError(RuntimeError):
    """An API call answered an error; ``status`` holds the HTTP code."""

    def __init__(self, status, message):
        self.status = status
        super().__init__("HTTP %d: %s" % (status, message))


def _owned_by(pid, workdir):
    # NOTE(keystone): gunicorn rewrites its process title; the wrapper's
    # module name stays visible.
    command = processes.cmdline(pid)
    return workdir.encode() in command or b"mx_keystone_wsgi" in command


class Account(typing.NamedTuple):
    """A user of one project, made by KeystoneServer.new_account()."""

    keystone: typing.Any
    username: str
    password: str
    user_id: str
    project: str  # name
    project_id: str
    role: str

    def token(self):
        """A fresh token scoped to the account's project."""
        return self.keystone.token(self.username, self.password, project=self.project)

    def credentials(self):
        """[service_credentials] options of a password login (meter-export, keystoneauth)."""
        return {
            "auth_type": "password",
            "auth_url": self.keystone.auth_url,
            "username": self.username,
            "password": self.password,
            "project_name": self.project,
            "user_domain_id": DOMAIN,
            "project_domain_id": DOMAIN,
        }


class KeystoneServer(processes.Server):
    """Keystone's v3 API on 127.0.0.1, bootstrapped with an admin.

    :param workdir: kept after stop() when given; a temporary one otherwise.
    :param token_expiration: [token] expiration, seconds.
    :param admin_password: the bootstrap admin's password (random if None).
    """

    def __init__(
        self, workdir=None, venv=None, token_expiration=3600, admin_password=None, workers=2, threads=4, start_timeout=120, debug=False
    ):
        self._own_workdir = workdir is None
        self.workdir = os.path.abspath(workdir or tempfile.mkdtemp(prefix="mx-keystone-"))
        self.venv = venv or venvs.venv_path(venvs.SPECS["keystone"]["name"])
        self.token_expiration = token_expiration
        self.admin_password = admin_password or secrets.token_urlsafe(16)
        self.workers, self.threads = workers, threads
        self.start_timeout = start_timeout
        self.debug = debug
        self.endpoint = None
        self.pid = None
        self._proc = None
        self._admin_token = None
        self._roles = {}

    @property
    def auth_url(self):
        return self.endpoint + "/v3"

    @property
    def config_file(self):
        return os.path.join(self.workdir, "keystone.conf")

    # -- life cycle ---------------------------------------------------------

    def start(self):
        """Configure, create the DB and keys, bootstrap, serve, wait.

        :raises KeystoneStartError: with the tails of the logs.
        """
        watch = time.monotonic()
        try:
            self.endpoint = "http://127.0.0.1:%d" % processes.free_port()
            self._write_files()
            self._manage_all()
            self._launch()
            self._wait_api()
        except Exception as e:
            report = self._failure_report(e)
            self.stop()
            raise KeystoneStartError(report) from e
        LOG.info("Keystone up at %s in %.1fs (workdir %s)", self.auth_url, time.monotonic() - watch, self.workdir)

    def _write_files(self):
        os.makedirs(self.workdir, exist_ok=True)
        with open(self.config_file, "w") as f:
            f.write(CONFIG.format(workdir=self.workdir, expiration=self.token_expiration, debug=str(self.debug).lower()))
        with open(os.path.join(self.workdir, "mx_keystone_wsgi.py"), "w") as f:
            f.write(WSGI_WRAPPER.format(config=self.config_file))
        self._write_state()

    def _manage_all(self):
        # NOTE(keystone): each keystone-manage run spends seconds importing;
        # the key repositories do not need the database, so they are made
        # while db_sync runs.
        owner = ["--keystone-user", pwd.getpwuid(os.getuid()).pw_name, "--keystone-group", grp.getgrgid(os.getgid()).gr_name]
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            jobs = [
                pool.submit(self._manage, "db_sync"),
                pool.submit(self._manage, "fernet_setup", *owner),
                pool.submit(self._manage, "credential_setup", *owner),
            ]
            for job in jobs:
                job.result()
        self._manage(
            "bootstrap",
            "--bootstrap-username",
            ADMIN,
            "--bootstrap-password",
            self.admin_password,
            "--bootstrap-project-name",
            ADMIN,
            "--bootstrap-role-name",
            ADMIN,
            "--bootstrap-region-id",
            REGION,
            *[arg for kind in ("admin", "internal", "public") for arg in ("--bootstrap-%s-url" % kind, self.auth_url)],
        )

    def _manage(self, command, *args):
        cmd = [self._bin("keystone-manage"), "--config-file", self.config_file, command, *args]
        with open(self._log(command), "w") as log:
            subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=True, timeout=self.start_timeout, cwd=self.workdir)

    def _bin(self, program):
        path = os.path.join(self.venv, "bin", program)
        if not os.path.exists(path):
            raise KeystoneStartError("%s is missing: build the venv with tools/telemetry-venvs.sh keystone" % path)
        return path

    def _launch(self):
        cmd = [
            self._bin("gunicorn"),
            "--bind",
            self.endpoint.split("//")[1],
            "--worker-class",
            "gthread",
            "--workers",
            str(self.workers),
            "--threads",
            str(self.threads),
            "--timeout",
            "120",
            "--graceful-timeout",
            "5",
            # NOTE(keystone): gunicorn 27 opens a control socket at one
            # fixed path per user by default; several servers would share it.
            "--no-control-socket",
            "--access-logfile",
            self._log("access"),
            "--chdir",
            self.workdir,
            "mx_keystone_wsgi:application",
        ]
        with open(self._log("api"), "ab") as log:
            self._proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.workdir, start_new_session=True
            )
        self.pid = self._proc.pid
        self._write_state()

    def _wait_api(self):
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise KeystoneStartError("gunicorn exited with status %s" % self._proc.returncode)
            try:
                self.admin_token()
                return
            except (OSError, urllib.error.URLError, KeystoneError):
                time.sleep(0.3)
        raise TimeoutError("no admin token within %ss" % self.start_timeout)

    def _failure_report(self, error):
        names = [n for n in ("db_sync", "fernet_setup", "credential_setup", "bootstrap", "api") if os.path.exists(self._log(n))]
        logs = "".join("\n--- %s.log (tail) ---\n%s" % (n, processes.tail(self._log(n))) for n in names)
        return "Keystone did not start (%s: %s); workdir %s%s" % (type(error).__name__, error, self.workdir, logs)

    def stop(self, timeout=20):
        """TERM the gunicorn group, KILL it after ``timeout``."""
        if self.pid and (self._proc is not None or (processes.alive(self.pid) and _owned_by(self.pid, self.workdir))):
            self._signal(signal.SIGTERM)
            if not self._wait_gone(timeout):
                LOG.warning("Keystone %d still alive after %ss, killing it", self.pid, timeout)
                self._signal(signal.SIGKILL)
                self._wait_gone(5)
        self.pid = None
        self._proc = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            self._write_state()

    # -- API ------------------------------------------------------------------

    def request(self, method, path, body=None, token=None, headers=None, timeout=30):
        """(status, headers, JSON body) of one v3 call.

        :param token: the caller's token; None for the admin's, False for
            none (POST /auth/tokens).
        :raises KeystoneError: on an HTTP error.
        """
        data = json.dumps(body).encode() if body is not None else None
        # NOTE(keystone): the URL is our own http:// endpoint, never user input.
        req = urllib.request.Request(self.auth_url + path, data=data, method=method)  # noqa: S310
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token is not False:
            req.add_header("X-Auth-Token", token or self.admin_token())
        for name, value in (headers or {}).items():
            req.add_header(name, value)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
                text = resp.read()
                return resp.status, resp.headers, (json.loads(text) if text else None)
        except urllib.error.HTTPError as e:
            raise KeystoneError(e.code, e.read().decode(errors="replace")[:500]) from None

    def authenticate(self, username, password, project=None, domain=DOMAIN):
        """(token, token body) for a user, scoped to ``project`` (a name) if given."""
        user = {"name": username, "domain": {"id": domain}, "password": password}
        auth = {"identity": {"methods": ["password"], "password": {"user": user}}}
        if project is not None:
            auth["scope"] = {"project": {"name": project, "domain": {"id": domain}}}
        _, headers, body = self.request("POST", "/auth/tokens", {"auth": auth}, token=False)
        return headers["X-Subject-Token"], body["token"]

    def token(self, username, password, project=None, domain=DOMAIN):
        """A fresh token string (see authenticate)."""
        return self.authenticate(username, password, project, domain)[0]

    def admin_token(self):
        """The bootstrap admin's project-scoped token, renewed near expiry."""
        cached = self._admin_token
        if cached is None or cached[1] - time.monotonic() < min(30, self.token_expiration / 3):
            token = self.token(ADMIN, self.admin_password, project=ADMIN)
            self._admin_token = cached = (token, time.monotonic() + self.token_expiration)
        return cached[0]

    def validate(self, token):
        """The body Keystone answers for ``token`` (asked as admin).

        :raises KeystoneError: 404 for an unknown, expired or revoked token.
        """
        return self.request("GET", "/auth/tokens", headers={"X-Subject-Token": token})[2]["token"]

    def revoke(self, token):
        """Revoke ``token`` now (DELETE /v3/auth/tokens, as admin)."""
        self.request("DELETE", "/auth/tokens", headers={"X-Subject-Token": token})

    def create_project(self, name, domain=DOMAIN, description=""):
        """A new project's id."""
        body = {"project": {"name": name, "domain_id": domain, "description": description, "enabled": True}}
        return self.request("POST", "/projects", body)[2]["project"]["id"]

    def create_user(self, name, password, project=None, roles=(), domain=DOMAIN):
        """A new user's id; ``roles`` (names) are granted on ``project`` (an id)."""
        body = {"user": {"name": name, "password": password, "domain_id": domain, "enabled": True}}
        if project is not None:
            body["user"]["default_project_id"] = project
        user_id = self.request("POST", "/users", body)[2]["user"]["id"]
        for role in roles:
            self.grant(user_id, project, role)
        return user_id

    def role_id(self, name):
        """The id of role ``name`` (created when missing)."""
        if name not in self._roles:
            found = self.request("GET", "/roles?name=%s" % name)[2]["roles"]
            if found:
                self._roles[name] = found[0]["id"]
            else:
                self._roles[name] = self.request("POST", "/roles", {"role": {"name": name}})[2]["role"]["id"]
        return self._roles[name]

    def grant(self, user_id, project_id, role):
        """Give ``role`` (a name) to a user on a project."""
        self.request("PUT", "/projects/%s/users/%s/roles/%s" % (project_id, user_id, self.role_id(role)))

    def new_account(self, role="member", project=None):
        """A new user with ``role`` on ``project`` (a name; a new project if None)."""
        suffix = uuid.uuid4().hex[:10]
        if project is None:
            project = "mx-project-" + suffix
            project_id = self.create_project(project)
        else:
            project_id = self.project_id(project)
        username, password = "mx-%s-%s" % (role, suffix), secrets.token_urlsafe(12)
        user_id = self.create_user(username, password, project=project_id, roles=[role])
        return Account(self, username, password, user_id, project, project_id, role)

    def project_id(self, name, domain=DOMAIN):
        return self.request("GET", "/projects?name=%s&domain_id=%s" % (name, domain))[2]["projects"][0]["id"]

    def register_service(self, name, service_type, url, region=REGION):
        """Put a service and its public, internal and admin endpoints in the catalog."""
        service = self.request("POST", "/services", {"service": {"name": name, "type": service_type, "enabled": True}})[2]["service"]
        for interface in ("public", "internal", "admin"):
            endpoint = {"service_id": service["id"], "interface": interface, "url": url, "region_id": region, "enabled": True}
            self.request("POST", "/endpoints", {"endpoint": endpoint})
        return service["id"]

    def tokens_issued(self):
        """How many POST /v3/auth/tokens the server answered 201 so far."""
        try:
            with open(self._log("access")) as f:
                return sum(1 for line in f if '"POST /v3/auth/tokens' in line and '" 201 ' in line)
        except OSError:
            return 0

    # -- state file (for the CLI) -------------------------------------------

    def _write_state(self):
        state = {"endpoint": self.endpoint, "pid": self.pid, "admin_password": self.admin_password}
        with open(os.path.join(self.workdir, STATE_FILE), "w") as f:
            json.dump(state, f)

    @classmethod
    def from_state(cls, workdir):
        """The server described by workdir's state file (started elsewhere)."""
        with open(os.path.join(workdir, STATE_FILE)) as f:
            state = json.load(f)
        server = cls(workdir=workdir, admin_password=state["admin_password"])
        server.endpoint, server.pid = state["endpoint"], state["pid"]
        return server

    def env(self):
        return {
            "OS_AUTH_TYPE": "password",
            "OS_AUTH_URL": self.auth_url,
            "OS_USERNAME": ADMIN,
            "OS_PASSWORD": self.admin_password,
            "OS_PROJECT_NAME": ADMIN,
            "OS_USER_DOMAIN_ID": DOMAIN,
            "OS_PROJECT_DOMAIN_ID": DOMAIN,
            "OS_IDENTITY_API_VERSION": "3",
        }


def _cli_start(args):
    if os.path.exists(os.path.join(args.workdir, STATE_FILE)):
        old = KeystoneServer.from_state(args.workdir)
        if old.pid and processes.alive(old.pid) and _owned_by(old.pid, old.workdir):
            sys.exit("a Keystone is already running from %s; stop it first" % old.workdir)
    server = KeystoneServer(workdir=args.workdir, token_expiration=args.token_expiration)
    server.start()
    return server


def main(argv=None):
    processes.cli(
        "python -m telemetry_stack.keystone",
        "keystone",
        "Holds keystone.conf, the SQLite DB, the key repositories, logs and state.json.",
        _cli_start,
        lambda args: KeystoneServer.from_state(args.workdir).stop(),
        argv,
        lambda parser: parser.add_argument("--token-expiration", type=int, default=3600, help="[token] expiration in seconds."),
    )


if __name__ == "__main__":
    main()
