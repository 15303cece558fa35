"""Column types that behave the same on every dialect.

Each asks storage/dialects.py which native type to use, so a new dialect
rule is written once, there.
"""

import datetime

import orjson
import sqlalchemy as sa

from meter_export.storage import dialects

UTC = datetime.UTC


class TimestampUTC(sa.types.TypeDecorator):
    """UTC with microseconds on every dialect; aware datetimes in and out.

    PostgreSQL keeps a timestamptz; MySQL a DATETIME(6) and SQLite text, both
    holding naive UTC.
    """

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect):
        return dialect.type_descriptor(dialects.rules(dialect).timestamp())

    def process_bind_param(self, value, dialect):
        if value is None or dialects.rules(dialect).keeps_timezone:
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


class JSONDocument(sa.types.TypeDecorator):
    """A JSON document: jsonb, MySQL JSON, or TEXT where there is no JSON type."""

    impl = sa.Text
    cache_ok = True

    def load_dialect_impl(self, dialect):
        native = dialects.rules(dialect).json
        return dialect.type_descriptor(native() if native else sa.Text())

    def process_bind_param(self, value, dialect):
        if value is None or dialects.rules(dialect).json:
            return value
        return orjson.dumps(value).decode()

    def process_result_value(self, value, dialect):
        if isinstance(value, str) and not dialects.rules(dialect).json:
            return orjson.loads(value)
        return value


class LongText(sa.types.TypeDecorator):
    """Text of any length (MySQL's TEXT stops at 64 KiB)."""

    impl = sa.Text
    cache_ok = True

    def load_dialect_impl(self, dialect):
        return dialect.type_descriptor(dialects.rules(dialect).long_text())
