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
