"""Table definitions of the destination database; every table name is here.

Types come from storage/types.py; schema changes are made only through
storage/migrations (a test checks the two agree).
"""

import sqlalchemy as sa
import sqlalchemy.ext.compiler
from sqlalchemy.dialects import postgresql

from meter_export.storage import dialects
from meter_export.storage import entity_views
from meter_export.storage.types import ExactDecimal
from meter_export.storage.types import JSONDocument
from meter_export.storage.types import LongText
from meter_export.storage.types import TimestampUTC

# Column widths, shared with the validation in storage/rows.py.
MESSAGE_ID_LENGTH = 128
NAME_LENGTH = 255
TYPE_LENGTH = 32
SCOPE_LENGTH = 80
LIVE_SCOPE = "live"
# Exact numerics of the rating tables: quantities to 12 decimal places,
# prices to 18 (a price per byte-hour is tiny).
QUANTITY = (30, 12)
PRICE = (36, 18)
CURRENCY_LENGTH = 3
# Money of a bill is rounded to a minor unit (at most 4 decimals, CLF);
# quantities and unit prices of order lines are exact as rated.
MONEY = (24, 4)
ORDERS_NO_OVERLAP = "sales_orders_no_overlap"


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
    _rating_tables(metadata)
    _billing_tables(metadata)
    _entity_tables(metadata, samples_table)
    return metadata


def _rating_tables(metadata):
    """usage, prices and completeness: what rating writes (storage/views.py reads them)."""
    usage = sa.Table(
        "usage",
        metadata,
        sa.Column("service", sa.String(NAME_LENGTH), primary_key=True),
        sa.Column("resource_id", sa.String(NAME_LENGTH), primary_key=True),
        sa.Column("period_start", TimestampUTC(), primary_key=True),
        sa.Column("period_end", TimestampUTC(), nullable=False),
        sa.Column("project_id", sa.String(NAME_LENGTH)),
        sa.Column("user_id", sa.String(NAME_LENGTH)),
        sa.Column("meter", sa.String(NAME_LENGTH), nullable=False),
        sa.Column("unit", sa.String(NAME_LENGTH), nullable=False),
        sa.Column("region", sa.String(NAME_LENGTH), nullable=False),
        sa.Column("quantity", ExactDecimal(*QUANTITY), nullable=False),
        sa.Column("resource_metadata", JSONDocument()),
        sa.Column("computed_at", TimestampUTC(), nullable=False),
        mysql_charset="utf8mb4",
    )
    # NOTE(rating): re-rating deletes and refills whole hours; reports read by project.
    sa.Index("ix_usage_period_start", usage.c.period_start)
    sa.Index("ix_usage_project_period", usage.c.project_id, usage.c.period_start)
    sa.Table(
        "prices",
        metadata,
        sa.Column("service", sa.String(NAME_LENGTH), primary_key=True),
        # NOTE(rating): "" is "every region": a primary key column cannot be NULL.
        sa.Column("region", sa.String(NAME_LENGTH), primary_key=True),
        sa.Column("valid_from", TimestampUTC(), primary_key=True),
        sa.Column("valid_to", TimestampUTC()),
        sa.Column("unit", sa.String(NAME_LENGTH), nullable=False),
        sa.Column("per", sa.String(8), nullable=False),
        sa.Column("price", ExactDecimal(*PRICE), nullable=False),
        sa.Column("currency", sa.String(CURRENCY_LENGTH), nullable=False),
        sa.Column("loaded_at", TimestampUTC(), nullable=False),
        mysql_charset="utf8mb4",
    )
    sa.Table(
        "completeness",
        metadata,
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("filter_name", sa.String(NAME_LENGTH), primary_key=True),
        sa.Column("meter", sa.String(NAME_LENGTH), primary_key=True),
        # the stream's checkpoint when rating last caught up with it
        sa.Column("rated_checkpoint", TimestampUTC(), nullable=False),
        # checkpoint - lookback: samples before it are never read again
        sa.Column("final_until", TimestampUTC(), nullable=False),
        sa.Column("updated_at", TimestampUTC(), nullable=False),
        mysql_charset="utf8mb4",
    )


def _if_rule(name):
    """DDL emitted only where storage/dialects.py says so."""
    return lambda ddl, target, bind, dialect=None, **kw: getattr(dialects.rules(dialect or bind.dialect), name)


class _Trigger(sa.schema.ExecutableDDLElement):
    """The dialect's n-th sales-order trigger (storage/dialects.py), if it has one."""

    inherit_cache = False

    def __init__(self, index):
        self.index = index


@sa.ext.compiler.compiles(_Trigger)
def _compile_trigger(element, compiler, **kw):
    return dialects.rules(compiler.dialect).orders_triggers[element.index]


def _trigger(index):
    return _Trigger(index).execute_if(
        callable_=lambda ddl, target, bind, dialect=None, **kw: len(dialects.rules(dialect or bind.dialect).orders_triggers) > index
    )


def _billing_tables(metadata):
    """sales_orders, their lines, and the per-project lock rows."""
    bigint = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    orders = sa.Table(
        "sales_orders",
        metadata,
        sa.Column("id", bigint, primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.String(NAME_LENGTH), nullable=False),
        sa.Column("period_start", TimestampUTC(), nullable=False),
        sa.Column("period_end", TimestampUTC(), nullable=False),
        sa.Column("issued_at", TimestampUTC(), nullable=False),
        sa.Column("currency", sa.String(CURRENCY_LENGTH), nullable=False),
        sa.Column("total", ExactDecimal(*MONEY), nullable=False),
        sa.CheckConstraint("period_end > period_start", name="sales_orders_period_not_empty"),
        mysql_charset="utf8mb4",
    )
    sa.Index("ix_sales_orders_project_end", orders.c.project_id, orders.c.period_end)
    # NOTE(billing): the database itself refuses two overlapping periods of a
    # project (half-open ranges: back-to-back orders share an edge). Where
    # there is no such constraint, storage/orders.py serialises per project.
    exclusion = postgresql.ExcludeConstraint(
        (orders.c.project_id, "="),
        (sa.func.tstzrange(orders.c.period_start, orders.c.period_end, "[)"), "&&"),
        using="gist",
        name=ORDERS_NO_OVERLAP,
    )
    orders.append_constraint(exclusion.ddl_if(callable_=_if_rule("orders_exclusion")))
    sa.event.listen(
        orders, "before_create", sa.DDL("CREATE EXTENSION IF NOT EXISTS btree_gist").execute_if(callable_=_if_rule("orders_exclusion"))
    )
    for index in range(2):
        sa.event.listen(orders, "after_create", _trigger(index))
    lines = sa.Table(
        "sales_order_lines",
        metadata,
        sa.Column("id", bigint, primary_key=True, autoincrement=True),
        sa.Column("order_id", bigint, sa.ForeignKey("sales_orders.id"), nullable=False),
        sa.Column("resource_id", sa.String(NAME_LENGTH), nullable=False),
        sa.Column("service", sa.String(NAME_LENGTH), nullable=False),
        sa.Column("unit", sa.String(NAME_LENGTH), nullable=False),
        sa.Column("quantity", ExactDecimal(*QUANTITY), nullable=False),
        sa.Column("unit_price", ExactDecimal(*PRICE), nullable=False),
        sa.Column("cost", ExactDecimal(*MONEY), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("adjusts", bigint, sa.ForeignKey("sales_orders.id")),
        sa.CheckConstraint(
            "(kind = 'usage' AND adjusts IS NULL) OR (kind = 'adjustment' AND adjusts IS NOT NULL)", name="sales_order_lines_kind"
        ),
        mysql_charset="utf8mb4",
    )
    sa.Index("ix_sales_order_lines_order", lines.c.order_id)
    sa.Index("ix_sales_order_lines_adjusts", lines.c.adjusts)
    sa.Table(
        "sales_order_locks",
        metadata,
        sa.Column("project_id", sa.String(NAME_LENGTH), primary_key=True),
        sa.Column("taken_at", TimestampUTC()),
        mysql_charset="utf8mb4",
    )
    # NOTE(api): POST /collect_usage writes here; the worker reads it while it
    # sleeps between passes (storage/wakeups.py).
    sa.Table(
        "pass_requests",
        metadata,
        sa.Column("name", sa.String(SCOPE_LENGTH), primary_key=True),
        sa.Column("requested_at", TimestampUTC(), nullable=False),
        mysql_charset="utf8mb4",
    )


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
