"""systemd/meter-export-api.service: valid for systemd, in step with meter-export api."""

import os
import shutil
import subprocess
import sysconfig

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNIT = os.path.join(ROOT, "systemd", "meter-export-api.service")
WORKER_UNIT = os.path.join(ROOT, "systemd", "meter-export.service")
BINARY = "/usr/bin/meter-export"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def _service(path=UNIT):
    found, section = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
            elif line and not line.startswith("#") and section == "Service":
                key, _, value = line.partition("=")
                found.setdefault(key, []).append(value)
    return found


def test_serves_the_api_and_is_not_restarted_on_a_configuration_error():
    unit = _service()
    assert unit["ExecStart"] == ["%s --config-file /etc/meter-export/meter-export.conf api" % BINARY]
    assert unit["Type"] == ["notify"]  # api/server.py sends READY=1 once bound
    assert unit["RestartPreventExitStatus"] == ["2"]


def test_same_user_config_and_hardening_as_the_worker():
    api, worker = _service(), _service(WORKER_UNIT)
    for key in (
        "User",
        "Group",
        "ConfigurationDirectory",
        "ProtectSystem",
        "NoNewPrivileges",
        "RestrictAddressFamilies",
        "SystemCallFilter",
    ):
        assert api[key] == worker[key], key


@pytest.fixture
def installable_unit(tmp_path):
    script = os.path.join(sysconfig.get_path("scripts"), "meter-export")
    if not os.path.exists(script):
        pytest.skip("the meter-export console script is not installed")
    if not SYSTEMD_ANALYZE:
        pytest.skip("systemd-analyze is not installed")
    path = tmp_path / "meter-export-api.service"
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
    if "--offline" in result.stderr:
        pytest.skip("systemd-analyze security --offline needs systemd >= 250")
    assert result.returncode == 0, result.stdout + result.stderr
