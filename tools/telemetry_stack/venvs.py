"""Build the private virtualenvs the real telemetry services run from.

Each service gets its own venv under the stack directory, because their
dependency trees cannot share ours (Gnocchi pins its own oslo/SQLAlchemy
world).  A venv is rebuilt only when its pinned spec changes: the spec is
written to a marker file as the very last build step, so a half-built venv is
never mistaken for a good one.

Usage: ``python3 -m telemetry_stack.venvs gnocchi|ceilometer|keystone|all``
"""

import contextlib
import fcntl
import json
import logging
import os
import shutil
import subprocess
import sys

LOG = logging.getLogger(__name__)

MARKER = ".meter-export-spec"

# NOTE(gnocchi): the registry other engineers extend.  Each entry is the
# keyword arguments of ensure_venv(); bump the directory name together with
# the pins so two versions can live side by side.
SPECS = {
    # NOTE(keystone): the keystone extra brings keystonemiddleware, for
    # auth_mode = keystone; the new directory name lets the venv without it
    # live on beside while other branches still use it.
    "gnocchi": {
        "name": "gnocchi-4.7.1-ks",
        "requirements": ["gnocchi[postgresql,keystone]==4.7.1", "gnocchiclient==7.2.0", "keystonemiddleware==13.0.1", "gunicorn"],
    },
    # NOTE(keystone): 30.0.0 is the newest release and installs on Python
    # 3.11 with its own oslo/SQLAlchemy 2 world; gunicorn pinned because the
    # launcher passes --no-control-socket (gunicorn 27).
    "keystone": {
        "name": "keystone-30.0.0",
        "requirements": ["keystone==30.0.0", "gunicorn==27.0.1"],
    },
    # NOTE(ceilometer): the 9.0.7 wheel declares every agent's dependency
    # (nova/glance/snmp clients, kafka, tooz, sqlalchemy-migrate, ...); the v2
    # API and SQL storage need only these.  SQLAlchemy<2 and oslo.db 17.4.0
    # (still has oslo_db.sqlalchemy.session), jsonschema<3 as ceilometer asks.
    # tools/telemetry_stack/ceilometer_app.py runs inside this venv.
    "ceilometer": {
        "name": "ceilometer-9.0.7",
        "requirements": [
            "pecan==1.8.0",
            "WSME==0.13.0",
            "WebOb==1.8.11",
            "SQLAlchemy==1.4.54",
            "oslo.db==17.4.0",
            "jsonschema==2.6.0",
            "oslo.messaging==18.3.1",
            "oslo.policy==6.0.1",
            "oslo.config",
            "oslo.log",
            "oslo.utils",
            "oslo.i18n",
            "oslo.serialization",
            "oslo.middleware",
            "python-keystoneclient",
            "keystoneauth1",
            "lxml",
            "PasteDeploy",
            "python-dateutil",
            "six",
            "pbr",
            "stevedore",
            "tenacity",
            "cachetools",
            "debtcollector",
            "futurist",
            "iso8601",
            "pytz",
            "msgpack",
        ],
        "no_deps_requirements": ["ceilometer==9.0.7"],
    },
}


def stack_dir():
    """Where the venvs and service work dirs live."""
    default = os.path.join(os.path.expanduser("~"), ".cache", "meter-export")
    return os.environ.get("METER_EXPORT_STACK_DIR") or default


def venv_path(name):
    return os.path.join(stack_dir(), name)


def venv_bin(name, program):
    return os.path.join(venv_path(name), "bin", program)


def find_python(version="3.11"):
    """An interpreter of the given major.minor version."""
    if "%d.%d" % sys.version_info[:2] == version:
        return sys.executable
    found = shutil.which("python" + version)
    if not found:
        raise RuntimeError("python%s is not on PATH" % version)
    return found


def _spec_text(requirements, no_deps_requirements, python_version):
    spec = {"python": python_version, "requirements": list(requirements), "no_deps": list(no_deps_requirements)}
    return json.dumps(spec, sort_keys=True)


def _read_marker(path):
    try:
        with open(os.path.join(path, MARKER)) as f:
            return f.read()
    except OSError:
        return None


@contextlib.contextmanager
def _build_lock(path):
    # NOTE(gnocchi): pytest-xdist workers may all ask for the same venv at
    # once; an flock beside the venv makes the second one wait, then find
    # the marker and return.
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _pip(path, args, log):
    cmd = [os.path.join(path, "bin", "python"), "-m", "pip", "install", "--disable-pip-version-check"] + args
    log.write("$ %s\n" % " ".join(cmd))
    log.flush()
    subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=True)


def _build(path, requirements, no_deps_requirements, python):
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run([python, "-m", "venv", path], check=True)
    with open(os.path.join(path, "pip.log"), "w") as log:
        try:
            _pip(path, list(requirements), log)
            if no_deps_requirements:
                _pip(path, ["--no-deps"] + list(no_deps_requirements), log)
        except subprocess.CalledProcessError:
            log.flush()
            raise RuntimeError("pip failed building %s; see %s" % (path, log.name))


def ensure_venv(name, requirements, no_deps_requirements=(), python_version="3.11"):
    """Return the path of venv ``name``, building it if its spec changed.

    :param requirements: pip requirement strings installed together.
    :param no_deps_requirements: installed afterwards with ``--no-deps``
        (for packages whose declared dependencies are known to be wrong).
    :raises RuntimeError: the build failed; the message names the pip log.
    """
    path = venv_path(name)
    spec = _spec_text(requirements, no_deps_requirements, python_version)
    if _read_marker(path) == spec:
        return path
    with _build_lock(path):
        if _read_marker(path) == spec:
            return path
        LOG.info("Building venv %s (%s)", path, " ".join(requirements))
        _build(path, requirements, no_deps_requirements, find_python(python_version))
        with open(os.path.join(path, MARKER), "w") as f:
            f.write(spec)
    return path


def ensure(key):
    """Build (if needed) the venv registered as ``key`` in SPECS."""
    return ensure_venv(**SPECS[key])


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = (argv if argv is not None else sys.argv[1:]) or ["all"]
    keys = sorted(SPECS) if args == ["all"] else args
    unknown = [k for k in keys if k not in SPECS]
    if unknown:
        sys.exit("unknown venv(s) %s; known: %s, all" % (", ".join(unknown), ", ".join(sorted(SPECS))))
    for key in keys:
        print("%s=%s" % (key, ensure(key)))


if __name__ == "__main__":
    main()
