"""Table definitions of the destination database; every table name is here.

Types come from storage/types.py; schema changes are made only through
storage/migrations (a test checks the two agree).
"""

import sqlalchemy as sa

from meter_export.storage import entity_views
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
    _entity_tables(metadata, samples_table)
    return metadata


def _entity_tables(metadata, samples_table):
    """The push side's tables (listen/, storage/entities.py) and their views
    (storage/entity_views.py, created and dropped with the tables).

    entities: one row per version of an instance or volume (type 2 history);
    entity_events: every accepted notification, keyed by message_id (what
    makes a redelivery harmless, and what a history is rebuilt from);
    entity_heads: one row per entity, the lock that serialises its writers;
    volume_types: Cinder's volume type ids and names;
    entity_meters: which meters each entity type is expected to send (the
    missing_telemetry view reads it; [listen] *_meters fill it).
    """
    sa.Table(
        "entities",
        metadata,
        sa.Column("entity_id", sa.String(NAME_LENGTH), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("entity_type", sa.String(TYPE_LENGTH), nullable=False),
        sa.Column("project_id", sa.String(NAME_LENGTH), nullable=False),
        sa.Column("name", sa.String(NAME_LENGTH)),
        sa.Column("start", TimestampUTC(), nullable=False),
        sa.Column("end", TimestampUTC()),
        sa.Column("last_event", TimestampUTC(), nullable=False),
        sa.Column("flavor", sa.String(NAME_LENGTH)),
        sa.Column("image_meta", JSONDocument()),
        sa.Column("metadata", JSONDocument()),
        sa.Column("power_state", sa.String(TYPE_LENGTH)),
        sa.Column("volume_type", sa.String(NAME_LENGTH)),
        sa.Column("size", sa.Integer()),
        sa.Column("attached_to", JSONDocument()),
        sa.Column("updated_at", TimestampUTC(), nullable=False),
        sa.Index("ix_entities_project_start", "project_id", "start"),
        sa.Index("ix_entities_type_end", "entity_type", "end"),
        mysql_charset="utf8mb4",
    )
    sa.Table(
        "entity_events",
        metadata,
        sa.Column("message_id", sa.String(MESSAGE_ID_LENGTH), primary_key=True),
        sa.Column("entity_id", sa.String(NAME_LENGTH), nullable=False),
        sa.Column("entity_type", sa.String(TYPE_LENGTH), nullable=False),
        sa.Column("event_type", sa.String(NAME_LENGTH), nullable=False),
        sa.Column("event_time", TimestampUTC(), nullable=False),
        sa.Column("received_at", TimestampUTC(), nullable=False),
        sa.Column("event", JSONDocument(), nullable=False),
        sa.Index("ix_entity_events_entity_time", "entity_id", "event_time"),
        mysql_charset="utf8mb4",
    )
    sa.Table(
        "entity_heads",
        metadata,
        sa.Column("entity_id", sa.String(NAME_LENGTH), primary_key=True),
        sa.Column("entity_type", sa.String(TYPE_LENGTH), nullable=False),
        sa.Column("created_at", TimestampUTC(), nullable=False),
        mysql_charset="utf8mb4",
    )
    sa.Table(
        "volume_types",
        metadata,
        sa.Column("volume_type_id", sa.String(NAME_LENGTH), primary_key=True),
        sa.Column("volume_type_name", sa.String(NAME_LENGTH)),
        sa.Column("updated_at", TimestampUTC(), nullable=False),
        mysql_charset="utf8mb4",
    )
    sa.Table(
        "entity_meters",
        metadata,
        sa.Column("entity_type", sa.String(TYPE_LENGTH), primary_key=True),
        sa.Column("meter", sa.String(NAME_LENGTH), primary_key=True),
        mysql_charset="utf8mb4",
    )
    sa.event.listen(metadata, "after_create", lambda _target, connection, **_kw: entity_views.create(connection, samples_table))
    sa.event.listen(metadata, "before_drop", lambda _target, connection, **_kw: entity_views.drop(connection))
