"""systemd/meter-export.service: valid for systemd, and in step with the code.

Every unit of systemd/ is checked by systemd-analyze here; the API's and the
listener's own directives are tested in test_systemd_api.py and
test_systemd_listen.py, which read them with service_directives().
"""

import collections
import os
import shutil
import subprocess
import sysconfig

import pytest
from cotyledon import oslo_config_glue

from meter_export import opts

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNITS = ("meter-export.service", "meter-export-api.service", "meter-export-listen.service")
UNIT = os.path.join(ROOT, "systemd", UNITS[0])
BINARY = "/usr/bin/meter-export"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def _directives(name=UNITS[0]):
    """{(section, key): [values]}; systemd allows a key more than once."""
    found, section = collections.defaultdict(list), None
    with open(os.path.join(ROOT, "systemd", name)) as f:
        for line in f:
            line = line.strip()
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
            elif line and not line.startswith(("#", ";")):
                key, _, value = line.partition("=")
                found[(section, key)].append(value)
    return found


def service_directives(name):
    """{key: [values]} of the [Service] section of systemd/<name>."""
    return {key: values for (section, key), values in _directives(name).items() if section == "Service"}


def _one(key):
    values = _directives()[("Service", key)]
    assert len(values) == 1, "%s= is set %d times" % (key, len(values))
    return values[0]


def _default(opt_list, name):
    return next(o.default for o in opt_list if o.name == name)


def test_cotyledon_master_lifecycle():
    assert _one("Type") == "notify"
    assert _one("KillMode") == "mixed"
    assert _one("ExecReload") == "/bin/kill -HUP $MAINPID"
    assert _one("Restart") == "on-failure"
    assert int(_one("RestartSec")) > 0
    # NOTE(systemd): systemd must wait longer than cotyledon's own graceful
    # shutdown before it SIGKILLs the workers in the middle of a batch.
    assert int(_one("TimeoutStopSec")) > _default(oslo_config_glue.service_opts, "graceful_shutdown_timeout")
    # cli.main returns 2 on a configuration error: no point restarting.
    assert _one("RestartPreventExitStatus") == "2"


def test_commands():
    config = "--config-file /etc/meter-export/meter-export.conf"
    assert _one("ExecStart") == "%s %s run" % (BINARY, config)
    assert _one("ExecStartPre") == "%s %s dbsync" % (BINARY, config)


def test_directories():
    # NOTE(systemd): the default SQLite URL is relative, so it must land in
    # the state directory, which is the working directory.
    assert _default(opts.DATABASE_OPTS, "connection") == "sqlite:///meter-export.sqlite"
    assert _one("WorkingDirectory") == "/var/lib/" + _one("StateDirectory")
    assert _one("ConfigurationDirectory") == "meter-export"
    assert _one("Environment") == "PROMETHEUS_MULTIPROC_DIR=/run/" + _one("RuntimeDirectory")
    assert _default(opts.SYNC_OPTS, "filters_file").startswith("/etc/%s/" % _one("ConfigurationDirectory"))


def test_hardening():
    for key in (
        "NoNewPrivileges",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectControlGroups",
        "LockPersonality",
    ):
        assert _one(key) == "yes", key
    assert _one("ProtectSystem") == "strict"
    # AF_UNIX carries READY=1 to NOTIFY_SOCKET.
    assert set(_one("RestrictAddressFamilies").split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert "@system-service" in _directives()[("Service", "SystemCallFilter")]


@pytest.fixture(params=UNITS)
def installable_unit(request, tmp_path):
    """The unit with ExecStart*= pointing at this checkout's installed script.

    systemd-analyze verify rejects a command that does not exist, and
    /usr/bin/meter-export is only there once the package is installed.
    """
    script = os.path.join(sysconfig.get_path("scripts"), "meter-export")
    if not os.path.exists(script):
        pytest.skip("the meter-export console script is not installed")
    if not SYSTEMD_ANALYZE:
        pytest.skip("systemd-analyze is not installed")
    with open(os.path.join(ROOT, "systemd", request.param)) as f:
        text = f.read()
    path = tmp_path / request.param
    path.write_text(text.replace(BINARY, script))
    return path


def _analyze(*args):
    return subprocess.run([SYSTEMD_ANALYZE, *args], capture_output=True, text=True, timeout=120)


def test_systemd_analyze_verify(installable_unit):
    result = _analyze("verify", "--man=no", str(installable_unit))
    # NOTE(systemd): an unknown or misspelled key is only a warning (exit 0),
    # so any output at all is a failure.
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


def test_systemd_analyze_security(installable_unit):
    # threshold is the exposure level x 10; 2.0 keeps the unit in "OK".
    result = _analyze("security", "--offline=yes", "--threshold=20", str(installable_unit))
    if "--offline" in result.stderr:
        pytest.skip("systemd-analyze security --offline needs systemd >= 250")
    assert result.returncode == 0, result.stdout + result.stderr
