"""systemd/meter-export-listen.service: valid for systemd, in step with the code."""

from cotyledon import oslo_config_glue

from tests.unit import test_systemd

UNIT = "meter-export-listen.service"
BINARY = "/usr/bin/meter-export"
CONFIG = "--config-file /etc/meter-export/meter-export.conf"


def _service():
    return test_systemd.service_directives(UNIT)


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
