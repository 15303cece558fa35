"""Entity histories from notifications: entities, entity_events, entity_heads,
volume_types, entity_meters and the missing_telemetry view.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from meter_export.storage import entity_views
from meter_export.storage import types

revision = "0005"
down_revision = "0004"


def upgrade():
    op.create_table(
        "entities",
        sa.Column("entity_id", sa.String(255), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("entity_type", sa.String(32), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255)),
        sa.Column("start", types.TimestampUTC(), nullable=False),
        sa.Column("end", types.TimestampUTC()),
        sa.Column("last_event", types.TimestampUTC(), nullable=False),
        sa.Column("flavor", sa.String(255)),
        sa.Column("image_meta", types.JSONDocument()),
        sa.Column("metadata", types.JSONDocument()),
        sa.Column("power_state", sa.String(32)),
        sa.Column("volume_type", sa.String(255)),
        sa.Column("size", sa.Integer()),
        sa.Column("attached_to", types.JSONDocument()),
        sa.Column("updated_at", types.TimestampUTC(), nullable=False),
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_entities_project_start", "entities", ["project_id", "start"])
    op.create_index("ix_entities_type_end", "entities", ["entity_type", "end"])
    op.create_table(
        "entity_events",
        sa.Column("message_id", sa.String(128), primary_key=True),
        sa.Column("entity_id", sa.String(255), nullable=False),
        sa.Column("entity_type", sa.String(32), nullable=False),
        sa.Column("event_type", sa.String(255), nullable=False),
        sa.Column("event_time", types.TimestampUTC(), nullable=False),
        sa.Column("received_at", types.TimestampUTC(), nullable=False),
        sa.Column("event", types.JSONDocument(), nullable=False),
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_entity_events_entity_time", "entity_events", ["entity_id", "event_time"])
    op.create_table(
        "entity_heads",
        sa.Column("entity_id", sa.String(255), primary_key=True),
        sa.Column("entity_type", sa.String(32), nullable=False),
        sa.Column("created_at", types.TimestampUTC(), nullable=False),
        mysql_charset="utf8mb4",
    )
    op.create_table(
        "volume_types",
        sa.Column("volume_type_id", sa.String(255), primary_key=True),
        sa.Column("volume_type_name", sa.String(255)),
        sa.Column("updated_at", types.TimestampUTC(), nullable=False),
        mysql_charset="utf8mb4",
    )
    op.create_table(
        "entity_meters",
        sa.Column("entity_type", sa.String(32), primary_key=True),
        sa.Column("meter", sa.String(255), primary_key=True),
        mysql_charset="utf8mb4",
    )
    entity_views.create(op.get_bind(), op.get_context().config.attributes["samples_table"])
