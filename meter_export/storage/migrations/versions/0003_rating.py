"""Rated usage: the usage, prices and completeness tables and the BI views.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from meter_export.storage import schema
from meter_export.storage import types
from meter_export.storage import views

revision = "0003"
down_revision = "0002"


def upgrade():
    op.create_table(
        "usage",
        sa.Column("service", sa.String(255), primary_key=True),
        sa.Column("resource_id", sa.String(255), primary_key=True),
        sa.Column("period_start", types.TimestampUTC(), primary_key=True),
        sa.Column("period_end", types.TimestampUTC(), nullable=False),
        sa.Column("project_id", sa.String(255)),
        sa.Column("user_id", sa.String(255)),
        sa.Column("meter", sa.String(255), nullable=False),
        sa.Column("unit", sa.String(255), nullable=False),
        sa.Column("region", sa.String(255), nullable=False),
        sa.Column("quantity", types.ExactDecimal(30, 12), nullable=False),
        sa.Column("resource_metadata", types.JSONDocument()),
        sa.Column("computed_at", types.TimestampUTC(), nullable=False),
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_usage_period_start", "usage", ["period_start"])
    op.create_index("ix_usage_project_period", "usage", ["project_id", "period_start"])
    op.create_table(
        "prices",
        sa.Column("service", sa.String(255), primary_key=True),
        sa.Column("region", sa.String(255), primary_key=True),
        sa.Column("valid_from", types.TimestampUTC(), primary_key=True),
        sa.Column("valid_to", types.TimestampUTC()),
        sa.Column("unit", sa.String(255), nullable=False),
        sa.Column("per", sa.String(8), nullable=False),
        sa.Column("price", types.ExactDecimal(36, 18), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("loaded_at", types.TimestampUTC(), nullable=False),
        mysql_charset="utf8mb4",
    )
    op.create_table(
        "completeness",
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("filter_name", sa.String(255), primary_key=True),
        sa.Column("meter", sa.String(255), primary_key=True),
        sa.Column("rated_checkpoint", types.TimestampUTC(), nullable=False),
        sa.Column("final_until", types.TimestampUTC(), nullable=False),
        sa.Column("updated_at", types.TimestampUTC(), nullable=False),
        mysql_charset="utf8mb4",
    )
    # NOTE(rating): the views only read the tables above and checkpoints; a
    # later migration that changes a view calls views.create for it again.
    views.create(op.get_bind(), schema.make_metadata(), names=("stream_completeness", "rated_usage", "unrated_usage"))
