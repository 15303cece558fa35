"""systemd/meter-export-api.service: valid for systemd, in step with meter-export api."""

from tests.unit import test_systemd

UNIT = "meter-export-api.service"
WORKER_UNIT = "meter-export.service"
BINARY = "/usr/bin/meter-export"


def _service(name=UNIT):
    return test_systemd.service_directives(name)


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
