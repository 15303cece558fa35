"""sources/http.py: the one mapping of HTTP answers, and the retry policy."""

import threading
import time

import pytest
from oslo_config import cfg

from meter_export import service
from meter_export import sources
from meter_export.sources import ceilometer
from meter_export.sources import gnocchi
from meter_export.sources import http


@pytest.mark.parametrize(
    "status, error",
    [
        (500, http.TryAgain),
        (503, http.TryAgain),
        (408, http.TryAgain),
        (429, http.TryAgain),
        (404, http.NotFound),
        (410, http.Gone),
        (400, sources.SourceConfigError),
        (401, sources.SourceConfigError),
        (302, sources.SourceError),
    ],
)
def test_one_table_from_status_to_error(status, error):
    assert http.error_for(status) is error


class Answer:
    def __init__(self, status, body=b"{}"):
        self.status_code, self.content, self.text = status, body, body.decode()


def test_both_drivers_call_try_again_the_same_name():
    with pytest.raises(http.TryAgain):
        ceilometer._check_status(Answer(503))
    with pytest.raises(http.TryAgain):
        http.check(Answer(503), gnocchi._error_reason)


def _conf():
    conf = cfg.ConfigOpts()
    service.register_opts(conf)
    conf([], project="meter-export")
    conf.set_override("max_retries", 6, group="source")
    return conf


class Unavailable:
    """An adapter whose every answer is a 503."""

    def request(self, *args, **kwargs):
        return Answer(503)


def _failing_gnocchi(shutdown):
    driver = gnocchi.GnocchiSource(_conf(), shutdown=shutdown)
    driver._adapter = Unavailable()
    return lambda: driver._call("GET", "/v1/metric")


def _failing_ceilometer(shutdown):
    driver = ceilometer.CeilometerSource(_conf(), shutdown=shutdown)

    def once(method, url, body):
        raise http.TryAgain("HTTP 503")

    driver._request_once = once
    return lambda: driver._request("GET", "/v2/samples")


@pytest.mark.parametrize("make", [_failing_gnocchi, _failing_ceilometer])
def test_shutdown_cuts_a_source_backoff_short(make):
    # NOTE(sources): 6 retries back off 0.5+1+2+4+8+16 s; SIGTERM (the
    # shutdown Event) after 0.3 s must end it at once, as in the sink.
    shutdown = threading.Event()
    call = make(shutdown)
    threading.Timer(0.3, shutdown.set).start()
    started = time.monotonic()
    with pytest.raises(sources.SourceUnavailable):
        call()
    assert time.monotonic() - started < 2.5
