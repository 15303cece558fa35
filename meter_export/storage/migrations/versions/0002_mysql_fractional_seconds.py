"""MySQL family: microseconds and long payloads for schemas made through mariadb://.

Revision 0001 compared the dialect's name with "mysql" only, so a schema
created through a ``mariadb://`` URL got DATETIME without fractional seconds
and a TEXT quarantine payload. This brings such a schema to what ``mysql://``
always had; on a schema that is already right (and on other databases) it
changes nothing. Microseconds already cut off cannot be given back.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from meter_export.storage import dialects

revision = "0002"
down_revision = "0001"

_TIMESTAMPS = {
    "checkpoints": ("complete_until", "updated_at"),
    "quarantine": ("quarantined_at",),
}


def _columns(inspector, table):
    return {c["name"]: c for c in inspector.get_columns(table)}


def _fix_timestamps(inspector, table, names):
    columns = _columns(inspector, table)
    for name in names:
        column = columns[name]
        if not getattr(column["type"], "fsp", None):
            op.alter_column(table, name, type_=mysql.DATETIME(fsp=6), existing_nullable=column["nullable"])


def upgrade():
    if dialects.family(op.get_bind().dialect) != "mysql":
        return
    inspector = sa.inspect(op.get_bind())
    samples = op.get_context().config.attributes["samples_table"]
    tables = dict(_TIMESTAMPS, **{samples: ("timestamp", "recorded_at")})
    for table, names in tables.items():
        _fix_timestamps(inspector, table, names)
    payload = _columns(inspector, "quarantine")["payload"]
    if not isinstance(payload["type"], mysql.LONGTEXT):
        op.alter_column("quarantine", "payload", type_=mysql.LONGTEXT(), existing_nullable=False)
