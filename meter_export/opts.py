"""Every configuration option of meter-export, declared once.

``list_opts()`` feeds both the runtime registration (service.prepare_service)
and the ``oslo.config.opts`` entry point used by the sample generator, so the
sample can never drift from the code.  Nothing here registers anything.
"""

import copy
import itertools

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

from meter_export import sources
from meter_export.sources import ceilometer as ceilometer_source
from meter_export.sources import gnocchi as gnocchi_source

DEFAULT_OPTS = [
    cfg.BoolOpt("debug", default=False, help="Log at DEBUG level instead of INFO."),
    cfg.StrOpt(
        "log_file",
        help="Also write the log to this file. By default the log goes to stderr only, "
        "which journald collects when meter-export runs under systemd.",
    ),
]

DATABASE_OPTS = [
    cfg.StrOpt(
        "connection",
        default="sqlite:///meter-export.sqlite",
        secret=True,
        help="SQLAlchemy URL of the destination database. postgresql:// uses psycopg 3 "
        "(binary COPY), postgresql+psycopg2:// psycopg2, mysql:// pymysql, sqlite:/// a "
        "local file (relative to the working directory).",
    ),
    cfg.StrOpt(
        "samples_table",
        default="samples",
        regex=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$",
        help="Name of the table the samples are upserted into.",
    ),
    cfg.IntOpt(
        "batch_size",
        default=10000,
        min=1,
        max=1000000,
        help="Samples written per statement batch; one window may span several batches.",
    ),
    cfg.IntOpt(
        "retry_timeout",
        default=120,
        min=0,
        help="Seconds a write keeps retrying (with backoff) while the database is "
        "unreachable, before the stream is given up until the next pass.",
    ),
]

SOURCE_OPTS = [
    cfg.StrOpt(
        "driver",
        default="gnocchi",
        choices=["gnocchi", "ceilometer"],
        help="Telemetry API to read from.",
    ),
    cfg.StrOpt(
        "name",
        default="openstack",
        help="Value written in the samples' source column for Gnocchi samples (Ceilometer samples carry their own).",
    ),
    cfg.IntOpt("timeout", default=60, min=1, help="Seconds before an HTTP request to the API gives up."),
    cfg.IntOpt(
        "max_retries",
        default=5,
        min=0,
        help="Retries (exponential backoff) of one API request that failed in a way that "
        "can succeed later: connection error, timeout, 5xx, truncated body.",
    ),
]

SYNC_OPTS = [
    cfg.StrOpt(
        "filters_file",
        default="/etc/meter-export/filters.yaml",
        help="YAML file listing the filters and, under each, the meters to export.",
    ),
    cfg.IntOpt("delay", default=300, min=1, help="Seconds between the starts of two passes."),
    cfg.IntOpt(
        "lookback",
        default=3600,
        min=0,
        help="Seconds behind the checkpoint that every pass reads again, to catch samples stored late.",
    ),
    cfg.IntOpt(
        "settle",
        default=600,
        min=0,
        help="Seconds behind now that a pass stops, so that buckets still being filled are not read early.",
    ),
    cfg.IntOpt(
        "max_window",
        default=7 * 86400,
        min=1,
        help="Longest window, in seconds, read and committed with its checkpoint at once. "
        "Windows are sized by the work they hold: where the source can count its samples "
        "ahead (Gnocchi, and Ceilometer unless raw_query is beyond its simple query), a window ends at "
        "window_samples, and spans without data cost no request; this bounds them all, and "
        "is the window length where the source cannot count. A larger value makes a "
        "catch-up need fewer requests; a crash reads at most one window again.",
    ),
    cfg.IntOpt(
        "window_samples",
        default=500000,
        min=1,
        help="Samples a window holds at most, by the source's count taken at the start of "
        "the pass: what a crash reads again. Memory does not depend on it (a window is read "
        "and written page by page).",
    ),
    cfg.StrOpt(
        "initial_start",
        default="-P7D",
        help="Where a stream with no checkpoint starts: an ISO 8601 UTC timestamp, or a "
        "negative ISO 8601 duration relative to now such as -P7D.",
    ),
    cfg.IntOpt(
        "stream_threads",
        default=4,
        min=1,
        help="Streams a sync worker reads and writes at the same time, each with its own source "
        "session and database connection, so that a telemetry API and a database on other hosts "
        "work at once rather than in turn. Each stream's windows and checkpoint still advance in "
        "order. On SQLite (one writer per file) the streams read at once and take turns to write. "
        "Measured where meter-export, Gnocchi and PostgreSQL share 2 CPUs, 4 gains nothing over 1 "
        "(bench/e2e_gnocchi.py).",
    ),
    cfg.IntOpt("workers", default=1, min=1, help="Sync worker processes; streams are split among them."),
]

RATING_OPTS = [
    cfg.StrOpt(
        "mappings_file",
        help="YAML file of meter mappings (Distil's meter_mappings format) turning samples into "
        "hourly usage. Unset: nothing is rated. Checked at start-up; an error names the entry and field.",
    ),
    cfg.IntOpt(
        "carry_in",
        default=3600,
        min=0,
        help="Seconds before an hour searched for the sample whose state (uptime) or counter "
        "value (delta) carries into the hour. At least the polling interval of those meters.",
    ),
    cfg.StrOpt(
        "region",
        default="",
        help="Region written on every usage row; prices with this region, or with none, apply to it.",
    ),
]

LISTEN_OPTS = [
    cfg.StrOpt(
        "transport_url",
        default="rabbit://guest:guest@127.0.0.1:5672/",
        secret=True,
        help="oslo.messaging URL of the broker the OpenStack services send their notifications to. "
        "The environment variable RABBITMQ_URL overrides it (an amqp:// URL is read as rabbit://), "
        "as in Almanach. Broker options such as SSL and heartbeats are oslo.messaging's own "
        "[oslo_messaging_rabbit] options, read from the same config file.",
    ),
    cfg.ListOpt(
        "topics",
        default=["notifications"],
        help="Notification topics to listen on (Nova's and Cinder's default is notifications; "
        "Almanach had its services add a topic of its own, e.g. almanach).",
    ),
    cfg.ListOpt(
        "exchanges",
        default=["nova", "cinder", "openstack"],
        help="Exchanges the topics are bound on: each service publishes on its control_exchange "
        "(nova for Nova; openstack, Cinder's default, or cinder).",
    ),
    cfg.StrOpt(
        "pool",
        default="meter-export",
        help="Listener pool: every pool gets its own copy of each notification, so meter-export "
        "does not take notifications away from Ceilometer or other consumers of the same topic. "
        "Empty: share the topic's default queue.",
    ),
    cfg.IntOpt("workers", default=1, min=1, help="Listener processes; they share the pool's queue."),
    cfg.IntOpt(
        "executor_threads",
        default=1,
        min=1,
        help="Threads per listener process writing batches at once. One is fastest here "
        "(bench/listen.py: the writer is CPU-bound Python, and batches touching the same "
        "entities wait for each other's locks); for more throughput raise [listen] workers.",
    ),
    cfg.IntOpt(
        "batch_size",
        default=100,
        min=1,
        max=10000,
        help="Notifications written in one transaction and acknowledged together after its commit.",
    ),
    cfg.FloatOpt(
        "batch_timeout",
        default=1.0,
        min=0.01,
        help="Seconds a partial batch waits for more notifications before it is written.",
    ),
    cfg.IntOpt(
        "volume_existence_threshold",
        default=60,
        min=0,
        help="Seconds (Almanach's rule): a volume attach/detach this soon after its version began "
        "updates that version in place, and a delete this soon drops it.",
    ),
    cfg.ListOpt(
        "image_meta_keys",
        default=["distro", "version", "os_type"],
        help="Image properties of an instance kept in entities.image_meta (a rebuild that changes them opens a new version).",
    ),
    cfg.ListOpt("metadata_keys", default=[], help="Instance metadata keys kept in entities.metadata."),
    cfg.ListOpt(
        "instance_meters",
        default=["cpu"],
        help="Meters a running instance is expected to send at least once an hour; an hour without "
        "any of them is listed in the missing_telemetry view. Written to the entity_meters table by "
        "dbsync and when listen starts. Empty: instances are not checked.",
    ),
    cfg.ListOpt(
        "volume_meters",
        default=["volume.size"],
        help="Meters an existing volume is expected to send at least once an hour (see instance_meters).",
    ),
]

METRICS_OPTS = [
    cfg.PortOpt("port", default=0, help="Port of the Prometheus metrics endpoint; 0 turns it off."),
    cfg.HostAddressOpt("host", default="127.0.0.1", help="Address the metrics endpoint listens on."),
]

BILLING_OPTS = [
    cfg.StrOpt(
        "default_currency",
        default="EUR",
        regex=r"^[A-Z]{3}$",
        help="ISO 4217 currency of an order whose period has no rated usage (otherwise the prices' currency).",
    ),
]

API_OPTS = [
    cfg.HostAddressOpt("host", default="127.0.0.1", help="Address meter-export api listens on."),
    cfg.PortOpt("port", default=8787, help="Port meter-export api listens on."),
    cfg.IntOpt("threads", default=16, min=1, help="Requests served at once (cheroot worker threads)."),
    cfg.StrOpt(
        "auth_strategy",
        default="keystone",
        choices=[
            ("keystone", "X-Auth-Token validated by keystonemiddleware, configured in [keystone_authtoken]"),
            ("static", "X-Auth-Token compared with admin_tokens and project_tokens, for sites without Keystone"),
        ],
        help="How a request's X-Auth-Token is checked.",
    ),
    cfg.ListOpt("admin_tokens", default=[], secret=True, help="auth_strategy = static: tokens that are admins of every project."),
    cfg.DictOpt(
        "project_tokens",
        default={},
        secret=True,
        help="auth_strategy = static: token:project_id pairs; each token is a member of that project only.",
    ),
    cfg.IntOpt(
        "health_max_age",
        default=86400,
        min=1,
        help="Seconds a live stream's checkpoint may lag behind now before /v1/health answers 503.",
    ),
    cfg.IntOpt(
        "wake_poll",
        default=5,
        min=1,
        help="Seconds between the worker's looks for a POST /collect_usage request while it sleeps between passes.",
    ),
]


def _service_credentials_opts():
    # NOTE(sink): the password plugin's options are listed for the sample, as
    # ceilometer does; the plugin actually chosen by auth_type registers its own
    # at load time.
    return list(
        itertools.chain(
            ks_loading.get_auth_common_conf_options(),
            ks_loading.get_session_conf_options(),
            ks_loading.get_auth_plugin_conf_options("password"),
            [
                cfg.StrOpt("region_name", help="Region of the telemetry endpoint in the catalog."),
                cfg.StrOpt(
                    "interface",
                    default="public",
                    choices=["public", "internal", "admin", "publicURL", "internalURL", "adminURL"],
                    help="Interface of the telemetry endpoint in the catalog.",
                ),
            ],
        )
    )


def list_opts():
    """(group, options) pairs; deep copies, so callers can register freely."""
    return [
        (group, copy.deepcopy(opts))
        for group, opts in (
            ("DEFAULT", DEFAULT_OPTS),
            ("database", DATABASE_OPTS),
            ("source", SOURCE_OPTS),
            (sources.CREDENTIALS_GROUP, _service_credentials_opts()),
            ("gnocchi", gnocchi_source.OPTS),
            ("ceilometer", ceilometer_source.OPTS),
            ("sync", SYNC_OPTS),
            ("rating", RATING_OPTS),
            ("listen", LISTEN_OPTS),
            ("metrics", METRICS_OPTS),
            ("billing", BILLING_OPTS),
            ("api", API_OPTS),
        )
    ]
