"""Sales orders, their lines, the per-project lock rows, and pass requests.

On PostgreSQL an exclusion constraint (btree_gist) refuses two overlapping
periods of a project; elsewhere storage/orders.py serialises on the lock row.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from meter_export.storage import dialects
from meter_export.storage import types

revision = "0004"
down_revision = "0003"

_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _orders(exclusion):
    constraints = [sa.CheckConstraint("period_end > period_start", name="sales_orders_period_not_empty")]
    if exclusion:
        constraints.append(
            postgresql.ExcludeConstraint(
                (sa.column("project_id"), "="),
                (sa.func.tstzrange(sa.column("period_start"), sa.column("period_end"), "[)"), "&&"),
                using="gist",
                name="sales_orders_no_overlap",
            )
        )
    op.create_table(
        "sales_orders",
        sa.Column("id", _BIGINT, primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("period_start", types.TimestampUTC(), nullable=False),
        sa.Column("period_end", types.TimestampUTC(), nullable=False),
        sa.Column("issued_at", types.TimestampUTC(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("total", types.ExactDecimal(24, 4), nullable=False),
        *constraints,
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_sales_orders_project_end", "sales_orders", ["project_id", "period_end"])


def _lines():
    op.create_table(
        "sales_order_lines",
        sa.Column("id", _BIGINT, primary_key=True, autoincrement=True),
        sa.Column("order_id", _BIGINT, sa.ForeignKey("sales_orders.id"), nullable=False),
        sa.Column("resource_id", sa.String(255), nullable=False),
        sa.Column("service", sa.String(255), nullable=False),
        sa.Column("unit", sa.String(255), nullable=False),
        sa.Column("quantity", types.ExactDecimal(30, 12), nullable=False),
        sa.Column("unit_price", types.ExactDecimal(36, 18), nullable=False),
        sa.Column("cost", types.ExactDecimal(24, 4), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("adjusts", _BIGINT, sa.ForeignKey("sales_orders.id")),
        sa.CheckConstraint(
            "(kind = 'usage' AND adjusts IS NULL) OR (kind = 'adjustment' AND adjusts IS NOT NULL)", name="sales_order_lines_kind"
        ),
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_sales_order_lines_order", "sales_order_lines", ["order_id"])
    op.create_index("ix_sales_order_lines_adjusts", "sales_order_lines", ["adjusts"])


def upgrade():
    exclusion = dialects.rules(op.get_bind().dialect).orders_exclusion
    if exclusion:
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    _orders(exclusion)
    for trigger in dialects.rules(op.get_bind().dialect).orders_triggers:
        op.execute(trigger)
    _lines()
    op.create_table(
        "sales_order_locks",
        sa.Column("project_id", sa.String(255), primary_key=True),
        sa.Column("taken_at", types.TimestampUTC()),
        mysql_charset="utf8mb4",
    )
    op.create_table(
        "pass_requests",
        sa.Column("name", sa.String(80), primary_key=True),
        sa.Column("requested_at", types.TimestampUTC(), nullable=False),
        mysql_charset="utf8mb4",
    )
