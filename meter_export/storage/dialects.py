"""Every difference between the three databases, in one table.

A dialect is known by its *family*: ``mariadb`` (what SQLAlchemy calls a
``mariadb+pymysql://`` engine) and ``mysql`` are one family, because MariaDB
is what this project runs its MySQL tests on and the two take the same DDL
and statements here. Code elsewhere asks ``rules(dialect)`` for a decision
instead of comparing ``dialect.name`` with a string: a comparison with
``"mysql"`` silently misses ``"mariadb"`` (it once gave the checkpoints table
a DATETIME without microseconds).
"""

import dataclasses
import typing

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite

# A plain postgresql:// URL goes to psycopg 3 and not psycopg2: its binary
# COPY upserts about twice as fast (shared/reference/db-write-throughput.md).
# postgresql+psycopg2:// still works everywhere.
DEFAULT_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}

_FAMILIES = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql", "sqlite": "sqlite"}

# NOTE(sink): only failures that can succeed later are retried: a lost or
# refused connection, a deadlock, a lock timeout. Any other database error
# is about the data; those rows are isolated and quarantined.
_MYSQL_TRANSIENT = frozenset({1205, 1213, 2002, 2003, 2006, 2013, 2055})
_PG_TRANSIENT = frozenset({"40001", "40P01", "57P01", "57P02", "57P03", "53300"})


def _pg_transient(exc):
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    # No SQLSTATE on an OperationalError means the connection itself failed.
    return (code is None and isinstance(exc, sa.exc.OperationalError)) or code in _PG_TRANSIENT or (code or "").startswith("08")


def _mysql_transient(exc):
    return bool(exc.orig.args) and exc.orig.args[0] in _MYSQL_TRANSIENT


def _sqlite_transient(exc):
    return isinstance(exc, sa.exc.OperationalError) and ("locked" in str(exc.orig) or "busy" in str(exc.orig))


def _pg_overlap(exc):
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return code == "23P01"  # exclusion_violation


# NOTE(billing): SQLite has one writer at a time, so a trigger's check cannot
# race another insert: the database itself refuses an overlapping order, even
# one written by hand. (MySQL's equivalent would need SUPER under binary
# logging, and its consistent reads would race: the lock row does it there.)
_SQLITE_NO_OVERLAP = [
    "CREATE TRIGGER sales_orders_no_overlap_%(event)s BEFORE %(event)s ON sales_orders "
    "WHEN EXISTS (SELECT 1 FROM sales_orders o WHERE o.project_id = NEW.project_id AND o.id IS NOT NEW.id "
    "AND o.period_start < NEW.period_end AND NEW.period_start < o.period_end) "
    "BEGIN SELECT RAISE(ABORT, 'sales_orders_no_overlap: the period overlaps another order of the project'); END" % {"event": event}
    for event in ("INSERT", "UPDATE")
]


def _sqlite_overlap(exc):
    return "sales_orders_no_overlap" in str(exc.orig)


def _lock_row(conn, locks, project_id, now):
    # NOTE(billing): an UPDATE takes the row's write lock (InnoDB) or the
    # database's RESERVED lock (SQLite, as the transaction's first statement),
    # so the check that follows and the insert run one project at a time.
    conn.execute(locks.update().where(locks.c.project_id == project_id).values(taken_at=now))


def _mysql_days_ago(days):
    return "UTC_TIMESTAMP(6) - INTERVAL %d DAY" % days


def _mysql_upsert(insert, keys, columns):
    del keys  # MySQL finds the conflicting key itself
    return insert.on_duplicate_key_update({c: insert.inserted[c] for c in columns})


def _excluded_upsert(insert, keys, columns):
    return insert.on_conflict_do_update(index_elements=keys, set_={c: insert.excluded[c] for c in columns})


def _mysql_insert_ignore(insert, keys):
    del keys
    return insert.prefix_with("IGNORE")


def _excluded_insert_ignore(insert, keys):
    return insert.on_conflict_do_nothing(index_elements=keys)


@dataclasses.dataclass(frozen=True)
class Rules:
    """What one family of databases needs done its own way."""

    family: str
    #: the INSERT construct that knows this dialect's conflict clauses
    insert: typing.Callable
    #: (insert, key columns, columns to overwrite) -> upsert statement
    upsert: typing.Callable
    #: (insert, key columns) -> INSERT that skips an existing key
    insert_ignore: typing.Callable
    #: UTC timestamp with microseconds
    timestamp: typing.Callable
    #: a JSON document; None: kept as text by the JSON type itself
    json: typing.Optional[typing.Callable]
    #: text of any length (payloads, metadata)
    long_text: typing.Callable
    #: does the driver hand timezone-aware datetimes through as they are?
    keeps_timezone: bool
    #: connect_args every engine of this family gets
    connect_args: dict
    #: is this DBAPIError worth retrying (connection lost, deadlock, busy)?
    transient: typing.Callable
    #: most connections that write at the same time; None: no limit
    writers: typing.Optional[int]
    #: (precision, scale) -> exact numeric column type; None: kept as TEXT
    exact_numeric: typing.Optional[typing.Callable]
    #: (expression) -> the expression as an exact number, before aggregating
    exact_value: typing.Callable
    #: (expression, scale) -> the expression rounded to the usage scale
    rounded: typing.Callable
    #: does arithmetic in SQL keep decimals exact (views' cost, sums)?
    exact_arithmetic: bool
    #: (json column, key) -> the top-level key's value as text, or NULL
    json_text: typing.Callable
    #: name of the function building a JSON object from key, value pairs
    json_object: str
    #: (role, password, database) -> statements creating a read-only role
    read_only_role: typing.Optional[typing.Callable]

    #: SQL text of now, in UTC, comparable with a timestamp column (views)
    sql_now: str
    #: (days) -> SQL text of the start of the hour, ``days`` before now
    sql_hour_days_ago: typing.Callable
    #: (SQL expression of a whole hour) -> SQL text of the next hour
    sql_next_hour: typing.Callable
    #: sales orders: an exclusion constraint keeps periods apart (btree_gist)
    orders_exclusion: bool
    #: sales orders: (conn, locks table, project_id, now) serialising the
    #: overlap check and the insert per project; None where the constraint does it
    orders_lock: typing.Optional[typing.Callable]
    #: is this IntegrityError the database refusing an overlapping order?
    orders_overlap: typing.Callable
    #: sales orders: trigger DDL refusing an overlap, where it cannot race
    orders_triggers: tuple = ()
    #: SQL that lets a samples transaction commit without waiting for the
    #: disk; None: every commit waits (see storage.samples.Sink._transaction)
    lazy_commit: typing.Optional[str] = None


def _pg_read_only_role(role, password, database):
    q = '"%s"' % role
    return [
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '%s') THEN CREATE ROLE %s LOGIN; END IF; END $$" % (role, q),
        "ALTER ROLE %s WITH LOGIN PASSWORD '%s'" % (q, password.replace("'", "''")),
        'GRANT CONNECT ON DATABASE "%s" TO %s' % (database, q),
        "GRANT USAGE ON SCHEMA public TO %s" % q,
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO %s" % q,
        # NOTE(rating): tables and views a later dbsync adds are readable too.
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO %s" % q,
    ]


def _mysql_read_only_role(role, password, database):
    user = "'%s'@'%%'" % role
    return [
        "CREATE USER IF NOT EXISTS %s IDENTIFIED BY %s" % (user, _quoted(password)),
        "ALTER USER %s IDENTIFIED BY %s" % (user, _quoted(password)),
        "GRANT SELECT, SHOW VIEW ON `%s`.* TO %s" % (database, user),
    ]


def _quoted(text):
    # NOTE(rating): MySQL reads backslashes in string literals as escapes.
    return "'%s'" % text.replace("\\", "\\\\").replace("'", "''")


def _json_path(key):
    return '$."%s"' % key.replace('"', '\\"')


RULES = {
    "postgresql": Rules(
        family="postgresql",
        insert=postgresql.insert,
        upsert=_excluded_upsert,
        insert_ignore=_excluded_insert_ignore,
        timestamp=lambda: postgresql.TIMESTAMP(timezone=True),
        json=postgresql.JSONB,
        long_text=sa.Text,
        keeps_timezone=True,
        connect_args={},
        transient=_pg_transient,
        writers=None,
        lazy_commit="SET LOCAL synchronous_commit = off",
        exact_numeric=postgresql.NUMERIC,
        exact_value=lambda e: sa.cast(e, postgresql.NUMERIC()),
        rounded=lambda e, scale: sa.cast(e, postgresql.NUMERIC(30, scale)),
        exact_arithmetic=True,
        json_text=lambda col, key: sa.func.jsonb_extract_path_text(col, sa.literal(key)),
        json_object="jsonb_build_object",
        read_only_role=_pg_read_only_role,
        orders_exclusion=True,
        orders_lock=None,
        orders_overlap=_pg_overlap,
        sql_now="now()",
        # NOTE(listen): truncated in UTC, whatever the session's TimeZone
        # (an offset of +05:30 would shift every hour).
        sql_hour_days_ago=lambda days: "(date_trunc('hour', now() AT TIME ZONE 'UTC' - interval '%d days') AT TIME ZONE 'UTC')" % days,
        sql_next_hour=lambda expr: "(%s + interval '1 hour')" % expr,
    ),
    "mysql": Rules(
        family="mysql",
        insert=mysql.insert,
        upsert=_mysql_upsert,
        insert_ignore=_mysql_insert_ignore,
        timestamp=lambda: mysql.DATETIME(fsp=6),
        json=sa.JSON,
        long_text=mysql.LONGTEXT,
        keeps_timezone=False,
        # NOTE(sink): local_infile for the LOAD DATA writer (storage/upsert.py).
        connect_args={"local_infile": True, "charset": "utf8mb4"},
        transient=_mysql_transient,
        writers=None,
        exact_numeric=mysql.DECIMAL,
        # NOTE(rating): a double becomes its shortest decimal text, then is
        # cut to 12 places: values of up to 15 significant digits stay exact.
        exact_value=lambda e: sa.cast(e, mysql.DECIMAL(38, 12)),
        rounded=lambda e, scale: sa.cast(e, mysql.DECIMAL(30, scale)),
        exact_arithmetic=True,
        json_text=lambda col, key: sa.func.json_value(col, sa.literal(_json_path(key))),
        json_object="json_object",
        read_only_role=_mysql_read_only_role,
        orders_exclusion=False,
        orders_lock=_lock_row,
        orders_overlap=lambda exc: False,
        sql_now="UTC_TIMESTAMP(6)",
        # NOTE(listen): no DATE_FORMAT: a '%' in DDL text trips pymysql's
        # parameter formatting.
        sql_hour_days_ago=lambda days: (
            "CAST(TIMESTAMP(DATE(%s), MAKETIME(HOUR(%s), 0, 0)) AS DATETIME(6))" % ((_mysql_days_ago(days),) * 2)
        ),
        sql_next_hour=lambda expr: "(%s + INTERVAL 1 HOUR)" % expr,
    ),
    "sqlite": Rules(
        family="sqlite",
        insert=sqlite.insert,
        upsert=_excluded_upsert,
        insert_ignore=_excluded_insert_ignore,
        timestamp=sa.DateTime,
        # NOTE(sink): a column declared JSON gets NUMERIC affinity on SQLite;
        # the document is kept as TEXT instead (storage/types.py).
        json=None,
        long_text=sa.Text,
        keeps_timezone=False,
        connect_args={},
        transient=_sqlite_transient,
        # NOTE(sync): one writer at a time in an SQLite file: the streams of a
        # pass read at once and take turns to write (storage/samples.py).
        writers=1,
        # NOTE(rating): SQLite has no exact numeric type (NUMERIC affinity
        # turns "0.1" into a double); decimals are kept as TEXT, computed in
        # doubles rounded to 12 places, and the exact cost is computed in
        # Python by storage/usage.py.
        exact_numeric=None,
        exact_value=lambda e: e,
        rounded=lambda e, scale: sa.func.round(e, scale),
        exact_arithmetic=False,
        json_text=lambda col, key: sa.cast(sa.func.json_extract(col, sa.literal(_json_path(key))), sa.Text),
        json_object="json_object",
        read_only_role=None,
        orders_exclusion=False,
        orders_lock=_lock_row,
        orders_overlap=_sqlite_overlap,
        orders_triggers=tuple(_SQLITE_NO_OVERLAP),
        # NOTE(listen): timestamps are text 'YYYY-MM-DD HH:MM:SS.ffffff' here
        # (storage/upsert.py), compared as text: every value a view builds
        # has that shape too.
        sql_now="strftime('%Y-%m-%d %H:%M:%f000', 'now')",
        sql_hour_days_ago=lambda days: "strftime('%%Y-%%m-%%d %%H:00:00.000000', 'now', '-%d days')" % days,
        sql_next_hour=lambda expr: "strftime('%%Y-%%m-%%d %%H:00:00.000000', %s, '+1 hour')" % expr,
    ),
}


def family(dialect):
    """``postgresql``, ``mysql`` or ``sqlite`` of a Dialect or a backend name.

    :raises KeyError: a database this project does not support.
    """
    name = dialect if isinstance(dialect, str) else dialect.name
    return _FAMILIES[name]


def rules(dialect):
    """The Rules of a Dialect (or backend name)."""
    return RULES[family(dialect)]


def supported(backend_name):
    return backend_name in _FAMILIES
