"""Upsert prepared rows into the samples table, the fastest way per driver.

Each writer takes an SQLAlchemy Connection inside an open transaction, the
samples Table, and a storage.rows.Rows (unique message_ids, metadata as JSON
text, aware datetimes): most iterate it as tuples in COLUMNS order, the
SQLite writer reads its two lists. The incoming row always wins, because a
re-read Gnocchi bucket whose value changed must update its row.

An inserter (INSERTERS) writes rows expected to be new and fails on any
message_id already stored; the sink then rolls back and upserts.
"""

import datetime
import os
import tempfile

from meter_export.storage import dialects

UTC = datetime.UTC
COLUMNS = (
    "message_id",
    "counter_name",
    "counter_type",
    "counter_unit",
    "counter_volume",
    "project_id",
    "user_id",
    "resource_id",
    "source",
    "timestamp",
    "recorded_at",
    "resource_metadata",
)
_COLUMN_LIST = ", ".join('"%s"' % c for c in COLUMNS)
_UPDATES = [c for c in COLUMNS if c != "message_id"]
_PG_STAGING_TYPES = ["text"] * 4 + ["float8"] + ["text"] * 4 + ["timestamptz", "timestamptz", "text"]
_PG_NEW_TYPES = _PG_STAGING_TYPES[:-1] + ["bytea"]  # bytea: sent as they are (pg_copy_new)
_JSONB_VERSION = b"\x01"


def _naive_text(value):
    """Naive UTC as 'YYYY-MM-DD HH:MM:SS.ffffff' (what SQLAlchemy stores on SQLite)."""
    if value is None:
        return None
    if value.tzinfo is not UTC and value.tzinfo is not None:
        value = value.astimezone(UTC)
    # NOTE(sink): in UTC the naive text is the first 26 characters of the ISO
    # form (the "+00:00" is cut), which saves a datetime copy per value.
    return value.isoformat(" ", "microseconds")[:26]


# -- PostgreSQL ---------------------------------------------------------------


def _pg_staging_ddl():
    cols = ", ".join('"%s" %s' % (c, t.replace("float8", "double precision")) for c, t in zip(COLUMNS, _PG_STAGING_TYPES, strict=True))
    return "CREATE TEMP TABLE IF NOT EXISTS mx_staging (%s)" % cols


def _pg_merge_sql(table):
    select = _COLUMN_LIST.replace('"resource_metadata"', '"resource_metadata"::jsonb')
    updates = ", ".join('"%s" = EXCLUDED."%s"' % (c, c) for c in _UPDATES)
    return 'INSERT INTO "%s" (%s) SELECT %s FROM mx_staging ON CONFLICT (message_id) DO UPDATE SET %s' % (
        table.name,
        _COLUMN_LIST,
        select,
        updates,
    )


def pg_copy(conn, table, rows):
    """psycopg 3: binary COPY into a temp staging table, then one merge."""
    raw = conn.connection.driver_connection
    with raw.cursor() as cur:
        cur.execute(_pg_staging_ddl())
        with cur.copy("COPY mx_staging (%s) FROM STDIN (FORMAT BINARY)" % _COLUMN_LIST) as copy:
            copy.set_types(_PG_STAGING_TYPES)
            for row in rows:
                copy.write_row(row)
        cur.execute(_pg_merge_sql(table))
        cur.execute("TRUNCATE mx_staging")


def pg_execute_values(conn, table, rows):
    """psycopg2: multi-row INSERT ... ON CONFLICT through execute_values."""
    from psycopg2 import extras

    updates = ", ".join('"%s" = EXCLUDED."%s"' % (c, c) for c in _UPDATES)
    sql = 'INSERT INTO "%s" (%s) VALUES %%s ON CONFLICT (message_id) DO UPDATE SET %s' % (table.name, _COLUMN_LIST, updates)
    template = "(" + ", ".join(["%s"] * 11) + ", %s::jsonb)"
    with conn.connection.driver_connection.cursor() as cur:
        extras.execute_values(cur, sql, rows, template=template, page_size=1000)


def pg_copy_new(conn, table, rows):
    """psycopg 3: binary COPY straight into the table; a stored message_id fails it.

    NOTE(sink): no staging table and no ON CONFLICT probe: the backend spent
    1.05 CPU-seconds on 83,000 new rows against 1.54 for pg_copy (rows of
    bench/sink_throughput.py's generator, a fresh database each, 3 rounds,
    2026-12-03). jsonb's binary input is a version byte (1) and the JSON
    text, so the text goes as bytes, one per metadata document, with no
    re-encoding per row.
    """
    encoded = {None: None}
    raw = conn.connection.driver_connection
    # NOTE(sink): the server reads the text in the client encoding, as it
    # would a text parameter; a character it cannot take fails the batch.
    encoding = raw.info.encoding
    with raw.cursor() as cur:
        with cur.copy('COPY "%s" (%s) FROM STDIN (FORMAT BINARY)' % (table.name, _COLUMN_LIST)) as copy:
            copy.set_types(_PG_NEW_TYPES)
            for sample, text in zip(rows.samples, rows.metadata, strict=True):
                document = encoded.get(text)
                if document is None and text is not None:
                    document = encoded[text] = _JSONB_VERSION + text.encode(encoding)
                copy.write_row(sample[:11] + (document,))


# -- MySQL / MariaDB ----------------------------------------------------------

_MYSQL_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": "\\0"})


def _mysql_field(value):
    if value is None:
        return "\\N"
    if type(value) is str:
        return value.translate(_MYSQL_ESCAPES)
    if type(value) is datetime.datetime:
        return _naive_text(value)
    return repr(value)


def _write_tsv(rows, fileobj):
    field = _mysql_field
    # NOTE(sink): one write per batch; the text of 10k rows is a few MB.
    lines = ["\t".join([field(v) for v in row]) for row in rows]
    lines.append("")
    fileobj.write("\n".join(lines).encode("utf-8"))


def mysql_load_data(conn, table, rows):
    """pymysql: LOAD DATA LOCAL INFILE into a temp staging table, then one merge.

    NOTE(sink): 1.4x the multi-row INSERT ... ON DUPLICATE KEY UPDATE here;
    it needs local_infile on the server (MariaDB's default) and the client.
    """
    with tempfile.NamedTemporaryFile(prefix="meter-export-", suffix=".tsv") as tsv:
        _write_tsv(rows, tsv)
        tsv.flush()
        cur = conn.connection.driver_connection.cursor()
        try:
            cur.execute("DROP TEMPORARY TABLE IF EXISTS mx_staging")
            cur.execute("CREATE TEMPORARY TABLE mx_staging ENGINE=InnoDB AS SELECT * FROM `%s` LIMIT 0" % table.name)
            cur.execute(
                "LOAD DATA LOCAL INFILE %s INTO TABLE mx_staging CHARACTER SET utf8mb4 (%s)"
                % (_quote(tsv.name), _COLUMN_LIST.replace('"', "`"))
            )
            updates = ", ".join("`%s` = VALUES(`%s`)" % (c, c) for c in _UPDATES)
            cur.execute("INSERT INTO `%s` SELECT * FROM mx_staging ON DUPLICATE KEY UPDATE %s" % (table.name, updates))
            cur.execute("DROP TEMPORARY TABLE mx_staging")
        finally:
            cur.close()


def _quote(path):
    if "'" in path or "\\" in path:
        raise ValueError("unsafe temporary path %r" % path)
    return "'%s'" % path.replace(os.sep, "/")


# -- SQLite and the portable fallback -------------------------------------------


def sqlite_executemany(conn, table, rows):
    """sqlite3: one executemany of INSERT ... ON CONFLICT DO UPDATE."""
    updates = ", ".join('"%s" = excluded."%s"' % (c, c) for c in _UPDATES)
    sql = 'INSERT INTO "%s" (%s) VALUES (%s) ON CONFLICT (message_id) DO UPDATE SET %s' % (
        table.name,
        _COLUMN_LIST,
        ", ".join("?" * 12),
        updates,
    )
    text = _naive_text
    params = [s[:9] + (text(s[9]), text(s[10]), m) for s, m in zip(rows.samples, rows.metadata, strict=True)]
    cur = conn.connection.driver_connection.cursor()
    try:
        cur.executemany(sql, params)
    finally:
        cur.close()


def core_upsert(conn, table, rows):
    """Any other driver: SQLAlchemy Core with the dialect's upsert clause."""
    rules = dialects.rules(conn.dialect)
    stmt = rules.upsert(rules.insert(table), ["message_id"], _UPDATES)
    conn.execute(stmt, [dict(zip(COLUMNS, row[:11] + (_json(row[11]),), strict=True)) for row in rows])


def _json(text):
    import orjson

    return None if text is None else orjson.loads(text)


WRITERS = {
    ("postgresql", "psycopg"): pg_copy,
    ("postgresql", "psycopg2"): pg_execute_values,
    ("mysql", "pymysql"): mysql_load_data,
    ("sqlite", "pysqlite"): sqlite_executemany,
}


INSERTERS = {
    ("postgresql", "psycopg"): pg_copy_new,
}


def writer_for(dialect):
    """The upsert function for an engine's dialect and driver."""
    return WRITERS.get((dialects.family(dialect), dialect.driver), core_upsert)


def inserter_for(dialect):
    """The insert-only function for the dialect and driver, or None: upsert all."""
    return INSERTERS.get((dialects.family(dialect), dialect.driver))
