"""Prometheus metrics, declared once.

The names follow Distil's collector exporter (distil_collector_last_run_start
...) with our own prefix. The sync workers are separate processes, so the
values go through prometheus_client's multiprocess mode: the directory in
PROMETHEUS_MULTIPROC_DIR must be set before this module is imported (the
worker does it, and the systemd unit points it at RuntimeDirectory).
Checkpoint lag is computed at scrape time from the checkpoints table, the one
source of truth.
"""

import logging

import prometheus_client as prom
import sqlalchemy as sa
from prometheus_client import core
from prometheus_client import multiprocess

from meter_export import checkpoint
from meter_export import utils

LOG = logging.getLogger(__name__)

LAST_RUN_START = prom.Gauge("meter_export_collector_last_run_start", "Unix time the last pass started.", multiprocess_mode="max")
LAST_RUN_END = prom.Gauge("meter_export_collector_last_run_end", "Unix time the last pass ended.", multiprocess_mode="max")
LAST_RUN_DURATION = prom.Gauge("meter_export_collector_last_run_duration", "Seconds the last pass took.", multiprocess_mode="livemax")
SAMPLES_WRITTEN = prom.Counter("meter_export_collector_samples_written", "Samples upserted.", ["meter"])
SAMPLES_QUARANTINED = prom.Counter("meter_export_collector_samples_quarantined", "Samples quarantined.", ["meter"])
STREAM_FAILURES = prom.Counter("meter_export_collector_stream_failures", "Stream syncs that failed.", ["stream"])


def record_pass(started, ended, results):
    LAST_RUN_START.set(started)
    LAST_RUN_END.set(ended)
    LAST_RUN_DURATION.set(ended - started)
    for result in results:
        SAMPLES_WRITTEN.labels(result.stream.meter.name).inc(result.written)
        SAMPLES_QUARANTINED.labels(result.stream.meter.name).inc(result.quarantined)
        if result.error:
            STREAM_FAILURES.labels(str(result.stream)).inc()


class CheckpointLagCollector:
    """meter_export_collector_checkpoint_lag_seconds, read at scrape time."""

    def __init__(self, sink):
        self.sink = sink

    def collect(self):
        family = core.GaugeMetricFamily(
            "meter_export_collector_checkpoint_lag_seconds",
            "Seconds between now and the bound up to which a stream is complete.",
            labels=["source", "filter", "meter"],
        )
        now = utils.utcnow()
        with self.sink.engine.connect() as conn:
            for row in checkpoint.all_rows(conn, self.sink.checkpoints, "live"):
                lag = (now - row["complete_until"]).total_seconds()
                family.add_metric([row["source"], row["filter_name"], row["meter"]], lag)
        yield family


class UnratedUsageCollector:
    """meter_export_rating_unrated_usage_rows: usage with no price in force, per service."""

    def __init__(self, sink):
        self.sink = sink

    def collect(self):
        from meter_export.storage import views

        family = core.GaugeMetricFamily(
            "meter_export_rating_unrated_usage_rows", "Usage rows with no price in force (the unrated_usage view).", labels=["service"]
        )
        unrated = views.unrated_usage(self.sink.metadata.tables).subquery()
        with self.sink.engine.connect() as conn:
            for service, count in conn.execute(sa.select(unrated.c.service, sa.func.count()).group_by(unrated.c.service)):
                family.add_metric([service], count)
        yield family


class MissingTelemetryCollector:
    """meter_export_missing_telemetry_hours, read at scrape time from the
    missing_telemetry view (storage/entity_views.py): hours of the last 31
    days an entity existed (running) without any sample of its meters."""

    def __init__(self, sink):
        self.sink = sink

    def collect(self):
        family = core.GaugeMetricFamily(
            "meter_export_missing_telemetry_hours",
            "Whole hours in the last 31 days an instance ran or a volume existed without one sample of its meters.",
            labels=["entity_type"],
        )
        counts = {"instance": 0, "volume": 0}
        with self.sink.engine.connect() as conn:
            query = sa.text("SELECT entity_type, COUNT(*) FROM missing_telemetry GROUP BY entity_type")
            counts.update({kind: n for kind, n in conn.execute(query)})
        for kind, n in sorted(counts.items()):
            family.add_metric([kind], n)
        yield family


def make_app(sink):
    """A WSGI app building a fresh registry per scrape (multiprocess mode)."""

    def app(environ, start_response):
        registry = prom.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(CheckpointLagCollector(sink))
        registry.register(UnratedUsageCollector(sink))
        registry.register(MissingTelemetryCollector(sink))
        return prom.make_wsgi_app(registry)(environ, start_response)

    return app
