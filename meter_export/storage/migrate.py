"""Create or upgrade the schema with alembic (meter-export dbsync)."""

import logging
import os

import sqlalchemy as sa
from alembic import command
from alembic import config as alembic_config
from alembic import migration
from alembic import script

LOG = logging.getLogger(__name__)

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")


def _config(conn, sink):
    cfg = alembic_config.Config()
    cfg.set_main_option("script_location", SCRIPTS)
    cfg.attributes.update(connection=conn, samples_table=sink.samples.name, target_metadata=sink.metadata)
    return cfg


def current_revision(conn):
    return migration.MigrationContext.configure(conn).get_current_revision()


def upgrade(sink):
    """Bring the schema to the newest revision; a no-op when it is there.

    An empty database gets create_all + stamp (one step, like gnocchi's
    indexer); anything else goes through the migrations.
    """
    with sink.engine.begin() as conn:
        cfg = _config(conn, sink)
        if current_revision(conn) is None and not sa.inspect(conn).has_table(sink.samples.name):
            LOG.info("Creating the schema in an empty database")
            sink.metadata.create_all(conn)
            command.stamp(cfg, "head")
        else:
            command.upgrade(cfg, "head")
        return current_revision(conn)


def head():
    cfg = alembic_config.Config()
    cfg.set_main_option("script_location", SCRIPTS)
    return script.ScriptDirectory.from_config(cfg).get_current_head()
