"""The destination database: every table family meter-export writes.

- ``dialects``: the one table of differences between PostgreSQL, MySQL/MariaDB
  and SQLite;
- ``types``, ``schema``: column types and table definitions (table names in
  one place); ``migrate`` and ``migrations/``: the one alembic history;
- ``engine``: engines and printable URLs;
- one writer module per table family: ``samples`` (with its hot-path helpers
  ``rows`` and ``upsert``), ...
"""
