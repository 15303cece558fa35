"""The destination schema, its column types, and engines that reach it.

Every dialect difference in *types* lives here; the differences in *upsert
statements* live in sink/upsert.py.
"""

import datetime

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.dialects import postgresql

UTC = datetime.UTC

# Column widths, shared with the validation in sink/rows.py.
MESSAGE_ID_LENGTH = 128
NAME_LENGTH = 255
TYPE_LENGTH = 32
SCOPE_LENGTH = 80
LIVE_SCOPE = "live"

# NOTE(sink): a plain postgresql:// URL goes to psycopg 3 and not psycopg2:
# its binary COPY upserts about twice as fast (shared/reference/
# db-write-throughput.md). postgresql+psycopg2:// still works everywhere.
_DEFAULT_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}


class TimestampUTC(sa.types.TypeDecorator):
    """UTC with microseconds on every dialect; aware datetimes in and out.

    PostgreSQL keeps a timestamptz; MySQL a DATETIME(6) and SQLite text, both
    holding naive UTC.
    """

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "mysql":
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.TIMESTAMP(timezone=True))
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(self, value, dialect):
        if value is None or dialect.name == "postgresql":
            return value
        if value.tzinfo is None:
            raise ValueError("naive datetime %s is ambiguous, give it a timezone" % value)
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class JSONText(sa.types.TypeDecorator):
    """JSON kept as TEXT (SQLite): a column declared JSON would get NUMERIC affinity there."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else orjson.dumps(value).decode()

    def process_result_value(self, value, dialect):
        return None if value is None else orjson.loads(value)


JSONDocument = JSONText().with_variant(postgresql.JSONB(), "postgresql").with_variant(sa.JSON(), "mysql", "mariadb")
LongText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql")


def make_metadata(samples_table="samples"):
    """The three tables; the samples table's name comes from configuration."""
    metadata = sa.MetaData()
    samples = sa.Table(
        samples_table,
        metadata,
        sa.Column("message_id", sa.String(MESSAGE_ID_LENGTH), primary_key=True),
        sa.Column("counter_name", sa.String(NAME_LENGTH), nullable=False),
        sa.Column("counter_type", sa.String(TYPE_LENGTH), nullable=False),
        sa.Column("counter_unit", sa.String(NAME_LENGTH)),
        sa.Column("counter_volume", sa.Double(), nullable=False),
        sa.Column("project_id", sa.String(NAME_LENGTH)),
        sa.Column("user_id", sa.String(NAME_LENGTH)),
        sa.Column("resource_id", sa.String(NAME_LENGTH)),
        sa.Column("source", sa.String(NAME_LENGTH)),
        sa.Column("timestamp", TimestampUTC(), nullable=False),
        sa.Column("recorded_at", TimestampUTC()),
        sa.Column("resource_metadata", JSONDocument),
        mysql_charset="utf8mb4",
    )
    sa.Index("ix_%s_timestamp" % samples_table, samples.c.timestamp)
    sa.Index("ix_%s_project_meter_ts" % samples_table, samples.c.project_id, samples.c.counter_name, samples.c.timestamp)
    sa.Table(
        "checkpoints",
        metadata,
        sa.Column("scope", sa.String(SCOPE_LENGTH), primary_key=True),
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("filter_name", sa.String(NAME_LENGTH), primary_key=True),
        sa.Column("meter", sa.String(NAME_LENGTH), primary_key=True),
        sa.Column("complete_until", TimestampUTC(), nullable=False),
        sa.Column("updated_at", TimestampUTC(), nullable=False),
        mysql_charset="utf8mb4",
    )
    sa.Table(
        "quarantine",
        metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("quarantined_at", TimestampUTC(), nullable=False),
        sa.Column("stream", sa.String(600)),
        sa.Column("message_id", sa.String(NAME_LENGTH)),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("payload", LongText, nullable=False),
        # NOTE(sink): a bad sample inside [sync] lookback is read again on
        # every pass; the fingerprint (sha1 of stream, reason and payload)
        # keeps one row for it instead of one per pass.
        sa.Column("fingerprint", sa.String(40), nullable=False, unique=True),
        mysql_charset="utf8mb4",
    )
    return metadata


def dress_url(url):
    """Pick our default driver for a bare dialect URL; returns a URL object.

    :raises sqlalchemy.exc.ArgumentError: not an SQLAlchemy URL.
    """
    url = sa.engine.make_url(url)
    if url.drivername in _DEFAULT_DRIVERS:
        url = url.set(drivername=_DEFAULT_DRIVERS[url.drivername])
    if url.get_backend_name() not in ("postgresql", "mysql", "mariadb", "sqlite"):
        raise sa.exc.ArgumentError("unsupported database %r" % url.get_backend_name())
    return url


def masked(url):
    """The URL as it may be printed: password hidden."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def _sqlite_pragmas(dbapi_conn, _record):
    # NOTE(sink): WAL lets readers (BI tools, the API) work during a sync, and
    # synchronous=NORMAL is crash-safe in WAL mode; busy_timeout waits for the
    # other writer instead of failing at once.
    # isolation_level=None stops pysqlite from opening and committing
    # transactions behind our back (a RELEASE SAVEPOINT would otherwise
    # commit the whole batch); _sqlite_begin emits BEGIN itself.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000"):
        cursor.execute("PRAGMA " + pragma)
    cursor.close()


def _sqlite_begin(conn):
    conn.exec_driver_sql("BEGIN")


def make_engine(url):
    url = dress_url(url)
    kwargs = {"pool_pre_ping": True}
    if url.get_backend_name() in ("mysql", "mariadb"):
        kwargs["connect_args"] = {"local_infile": True, "charset": "utf8mb4"}
    engine = sa.create_engine(url, **kwargs)
    if url.get_backend_name() == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", _sqlite_begin)
    return engine
