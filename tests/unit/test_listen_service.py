"""meter-export listen: the broker URL, its RABBITMQ_URL override, and the
start-up refusals (exit 2, the option named, nothing consumed)."""

import os
import subprocess
import sys
import sysconfig

import pytest
from oslo_config import cfg

from meter_export import service
from meter_export.listen import service as listen_service

SCRIPT = os.path.join(sysconfig.get_path("scripts"), "meter-export")
COMMAND = [SCRIPT] if os.path.exists(SCRIPT) else [sys.executable, "-m", "meter_export.cli"]


def _conf(**listen):
    conf = cfg.ConfigOpts()
    service.register_opts(conf)
    conf([], project="mx-test")
    for key, value in listen.items():
        conf.set_override(key, value, group="listen")
    return conf


def test_environment_overrides_the_option_and_amqp_means_rabbit():
    conf = _conf(transport_url="rabbit://a:b@broker-1:5672/")
    assert listen_service.transport_url(conf, environ={}) == "rabbit://a:b@broker-1:5672/"
    env = {"RABBITMQ_URL": "amqp://openstack:secret@messaging:5672/"}
    assert listen_service.transport_url(conf, environ=env) == "rabbit://openstack:secret@messaging:5672/"


def test_a_url_that_is_not_a_broker_is_refused_by_name(monkeypatch):
    monkeypatch.delenv("RABBITMQ_URL", raising=False)
    with pytest.raises(service.ConfigError) as error:
        listen_service.check_transport_url(_conf(transport_url="http://guest:guest@127.0.0.1/"))
    assert str(error.value) == "[listen] transport_url: 'http://guest:***@127.0.0.1/' is not a rabbit:// URL"
    monkeypatch.setenv("RABBITMQ_URL", "nonsense")
    with pytest.raises(service.ConfigError) as error:
        listen_service.check_transport_url(_conf())
    assert str(error.value).startswith("RABBITMQ_URL: ")


def test_test_pause_hook_is_off_unless_asked(monkeypatch, tmp_path):
    monkeypatch.delenv(listen_service.PAUSE_ENV, raising=False)
    assert listen_service._test_pause() is None
    monkeypatch.setenv(listen_service.PAUSE_ENV, "0:%s" % (tmp_path / "m"))
    hook = listen_service._test_pause()
    hook()
    hook()  # the second batch does not pause: the marker exists
    assert (tmp_path / "m").read_text() == str(os.getpid())


def _listen(tmp_path, *lines, env=None):
    config = tmp_path / "listen.conf"
    config.write_text("[database]\nconnection = sqlite:///%s\n[listen]\n%s\n" % (tmp_path / "db.sqlite", "\n".join(lines)))
    return subprocess.run(
        COMMAND + ["--config-file", str(config), "listen"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=dict(os.environ, **(env or {})),
    )


@pytest.mark.parametrize(
    "lines, expected",
    [
        (["batch_size = 0"], "[listen] batch_size"),
        (["transport_url = redis://127.0.0.1/"], "[listen] transport_url"),
        ([], "db.sqlite does not exist: run meter-export dbsync"),
    ],
    ids=["batch-size", "not-a-broker", "no-schema"],
)
def test_refused_before_anything_is_consumed(tmp_path, lines, expected):
    result = _listen(tmp_path, *lines, env={"RABBITMQ_URL": ""})
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert not (tmp_path / "db.sqlite").exists()
