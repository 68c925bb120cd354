"""Migrate the registry database with Alembic: the only code that changes its schema.

Run it as ``tfship db upgrade`` (once per deploy, e.g. a Kubernetes Job or init step);
API workers never migrate at start.
"""
import os

from alembic import command
from alembic.config import Config

MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations")


def alembic_config(database_url):
    """Return the Alembic config for database_url."""
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url, revision="head"):
    """Migrate the database at database_url to revision."""
    command.upgrade(alembic_config(database_url), revision)


def current_head():
    """Return the newest migration's revision id."""
    from alembic.script import ScriptDirectory
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
