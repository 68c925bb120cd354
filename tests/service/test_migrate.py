"""Alembic migrations: the only source of the schema, matching the ORM, on SQLite and PostgreSQL.
Budget: ~3 s."""
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from service import migrate
from service.db import Base, create_db_engine

TABLES = {"models", "model_tags", "model_versions", "rollouts", "api_keys", "alembic_version"}


def test_the_migrations_build_exactly_the_orm_schema(any_database_url):
    engine = create_db_engine(any_database_url)
    try:
        with engine.connect() as connection:
            assert TABLES <= set(sa.inspect(connection).get_table_names())
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            assert context.get_current_revision() == migrate.current_head()
    finally:
        engine.dispose()


def test_upgrade_is_idempotent_and_downgrade_reverses_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'nested' / 'registry.sqlite3'}"
    migrate.upgrade(url)
    migrate.upgrade(url)
    from alembic import command
    command.downgrade(migrate.alembic_config(url), "base")
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            assert set(sa.inspect(connection).get_table_names()) == {"alembic_version"}
        migrate.upgrade(url)
        with engine.connect() as connection:
            assert TABLES <= set(sa.inspect(connection).get_table_names())
    finally:
        engine.dispose()
