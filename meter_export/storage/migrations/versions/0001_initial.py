"""Samples, checkpoints and quarantine tables.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from meter_export.storage import types

revision = "0001"
down_revision = None


def upgrade():
    # NOTE(sink): the samples table's name is configurable, so it comes from
    # the migration context (storage/migrate.py) and not from a constant.
    samples = op.get_context().config.attributes["samples_table"]
    op.create_table(
        samples,
        sa.Column("message_id", sa.String(128), primary_key=True),
        sa.Column("counter_name", sa.String(255), nullable=False),
        sa.Column("counter_type", sa.String(32), nullable=False),
        sa.Column("counter_unit", sa.String(255)),
        sa.Column("counter_volume", sa.Double(), nullable=False),
        sa.Column("project_id", sa.String(255)),
        sa.Column("user_id", sa.String(255)),
        sa.Column("resource_id", sa.String(255)),
        sa.Column("source", sa.String(255)),
        sa.Column("timestamp", types.TimestampUTC(), nullable=False),
        sa.Column("recorded_at", types.TimestampUTC()),
        sa.Column("resource_metadata", types.JSONDocument()),
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_%s_timestamp" % samples, samples, ["timestamp"])
    op.create_index("ix_%s_project_meter_ts" % samples, samples, ["project_id", "counter_name", "timestamp"])
    op.create_table(
        "checkpoints",
        sa.Column("scope", sa.String(80), primary_key=True),
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("filter_name", sa.String(255), primary_key=True),
        sa.Column("meter", sa.String(255), primary_key=True),
        sa.Column("complete_until", types.TimestampUTC(), nullable=False),
        sa.Column("updated_at", types.TimestampUTC(), nullable=False),
        mysql_charset="utf8mb4",
    )
    op.create_table(
        "quarantine",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("quarantined_at", types.TimestampUTC(), nullable=False),
        sa.Column("stream", sa.String(600)),
        sa.Column("message_id", sa.String(255)),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("payload", types.LongText(), nullable=False),
        sa.Column("fingerprint", sa.String(40), nullable=False, unique=True),
        mysql_charset="utf8mb4",
    )
