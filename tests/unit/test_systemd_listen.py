"""systemd/meter-export-listen.service: valid for systemd, in step with the code."""

import os
import shutil
import subprocess
import sysconfig

import pytest
from cotyledon import oslo_config_glue

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNIT = os.path.join(ROOT, "systemd", "meter-export-listen.service")
BINARY = "/usr/bin/meter-export"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
CONFIG = "--config-file /etc/meter-export/meter-export.conf"


def _service():
    found, section = {}, None
    with open(UNIT) as f:
        for line in f:
            line = line.strip()
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
            elif line and not line.startswith("#") and section == "Service":
                key, _, value = line.partition("=")
                found.setdefault(key, []).append(value)
    return found


def _one(key):
    values = _service()[key]
    assert len(values) == 1, key
    return values[0]


def test_listen_lifecycle():
    assert _one("ExecStart") == "%s %s listen" % (BINARY, CONFIG)
    assert _one("ExecStartPre") == "%s %s dbsync" % (BINARY, CONFIG)
    assert (_one("Type"), _one("KillMode"), _one("Restart"), _one("RestartPreventExitStatus")) == ("notify", "mixed", "on-failure", "2")
    graceful = next(o.default for o in oslo_config_glue.service_opts if o.name == "graceful_shutdown_timeout")
    # NOTE(systemd): longer than cotyledon's own grace, so a batch in hand
    # gets to commit and be acknowledged before anything is SIGKILLed.
    assert int(_one("TimeoutStopSec")) > graceful
    assert _one("User") == "meter-export" and _one("ProtectSystem") == "strict"


@pytest.fixture
def installable_unit(tmp_path):
    script = os.path.join(sysconfig.get_path("scripts"), "meter-export")
    if not os.path.exists(script):
        pytest.skip("the meter-export console script is not installed")
    if not SYSTEMD_ANALYZE:
        pytest.skip("systemd-analyze is not installed")
    path = tmp_path / "meter-export-listen.service"
    with open(UNIT) as f:
        path.write_text(f.read().replace(BINARY, script))
    return path


def test_systemd_analyze_verify(installable_unit):
    result = subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", str(installable_unit)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


def test_systemd_analyze_security(installable_unit):
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=yes", "--threshold=20", str(installable_unit)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
