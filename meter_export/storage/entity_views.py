"""Views over the entities family, for BI tools and the gap gauge.

``missing_telemetry``: the whole hours of the last WINDOW_DAYS days during
which an entity existed (an instance: in a version whose power_state is
running) but not one sample of its mapped meters (table entity_meters)
arrived in the samples table. Hours after the sync's furthest checkpoint
are left out (their samples are not expected yet), and so are hours that a
version boundary splits (a resize at 10:30 leaves 10:00-11:00 out).

NOTE(listen): the hours come from a recursive CTE; MariaDB's
max_recursive_iterations and MySQL 8's cte_max_recursion_depth default to
1000, which is why the view covers a bounded window (31 days = 744 hours).
"""

import sqlalchemy as sa

from meter_export.storage import dialects

WINDOW_DAYS = 31
NAMES = ("missing_telemetry",)


def _missing_telemetry_sql(dialect, samples_table):
    rules = dialects.rules(dialect)
    q = dialect.identifier_preparer.quote
    next_hour = rules.sql_next_hour("h.hour_start")
    return f"""CREATE VIEW missing_telemetry AS
WITH RECURSIVE hours (hour_start) AS (
    SELECT {rules.sql_hour_days_ago(WINDOW_DAYS)}
    UNION ALL
    SELECT {rules.sql_next_hour("hour_start")} FROM hours WHERE {rules.sql_next_hour("hour_start")} < {rules.sql_now}
)
SELECT e.entity_id, e.entity_type, e.project_id, e.name, e.version, e.power_state,
       h.hour_start, {next_hour} AS hour_end
FROM entities e
JOIN hours h ON e.{q("start")} <= h.hour_start AND (e.{q("end")} IS NULL OR e.{q("end")} >= {next_hour})
WHERE (e.entity_type <> 'instance' OR e.power_state = 'running')
  AND {next_hour} <= COALESCE((SELECT MAX(c.complete_until) FROM checkpoints c WHERE c.scope = 'live'), {rules.sql_now})
  AND EXISTS (SELECT 1 FROM entity_meters em WHERE em.entity_type = e.entity_type)
  AND NOT EXISTS (
    SELECT 1 FROM {q(samples_table)} s
    JOIN entity_meters m ON m.meter = s.counter_name AND m.entity_type = e.entity_type
    WHERE s.project_id = e.project_id AND s.resource_id = e.entity_id
      AND s.{q("timestamp")} >= h.hour_start AND s.{q("timestamp")} < {next_hour}
  )"""


def create(conn, samples_table="samples"):
    conn.exec_driver_sql(_missing_telemetry_sql(conn.dialect, samples_table))


def drop(conn):
    for name in NAMES:
        conn.exec_driver_sql("DROP VIEW IF EXISTS %s" % name)


def set_meters(conn, table, meters):
    """Replace the entity type -> meter mapping the view reads.

    :param meters: {entity_type: [meter, ...]}
    """
    conn.execute(sa.delete(table))
    rows = [{"entity_type": kind, "meter": m} for kind, names in sorted(meters.items()) for m in sorted(set(names))]
    if rows:
        conn.execute(sa.insert(table), rows)
