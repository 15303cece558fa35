"""Table definitions of the destination database; every table name is here.

Types come from storage/types.py; schema changes are made only through
storage/migrations (a test checks the two agree).
"""

import sqlalchemy as sa

from meter_export.storage.types import JSONDocument
from meter_export.storage.types import LongText
from meter_export.storage.types import TimestampUTC

# Column widths, shared with the validation in storage/rows.py.
MESSAGE_ID_LENGTH = 128
NAME_LENGTH = 255
TYPE_LENGTH = 32
SCOPE_LENGTH = 80
LIVE_SCOPE = "live"


def make_metadata(samples_table="samples"):
    """Every table; the samples table's name comes from configuration."""
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
        sa.Column("resource_metadata", JSONDocument()),
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
        sa.Column("payload", LongText(), nullable=False),
        # NOTE(sink): a bad sample inside [sync] lookback is read again on
        # every pass; the fingerprint (sha1 of stream, reason and payload)
        # keeps one row for it instead of one per pass.
        sa.Column("fingerprint", sa.String(40), nullable=False, unique=True),
        mysql_charset="utf8mb4",
    )
    return metadata
