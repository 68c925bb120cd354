"""Migration 0004 (model_statuses, its triggers, the list's indexes) up, down and up again, with
data in the tables, on SQLite and PostgreSQL. Budget: ~4 s."""
import pytest
import sqlalchemy as sa
from alembic import command

from service import migrate
from service.db import create_db_engine

STATUS_ROWS = "SELECT model_id, status, owner, name, versions FROM model_statuses ORDER BY 1, 2"


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database_url(request, tmp_path):
    """A database with no schema: a SQLite file, or a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.sqlite3'}"
        return
    server = sa.create_engine(request.getfixturevalue("postgres_url"), isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as connection:
            connection.execute(sa.text("DROP DATABASE IF EXISTS tfship_migration_0004"))
            connection.execute(sa.text("CREATE DATABASE tfship_migration_0004"))
        yield server.url.set(database="tfship_migration_0004").render_as_string(hide_password=False)
        with server.connect() as connection:
            connection.execute(sa.text("DROP DATABASE tfship_migration_0004 WITH (FORCE)"))
    finally:
        server.dispose()


def add_version(connection, model_id, version, status):
    connection.execute(sa.text(
        "INSERT INTO model_versions (model_id, version, status, artifact_uri, metrics, input_schema, "
        "feature_statistics, created_at, updated_at, revision) VALUES (:m, :v, :s, 'file:///m', '{}', "
        "'{}', '{}', '2026-01-01 00:00:00', '2026-01-01 00:00:00', 1)"), {"m": model_id, "v": version,
                                                                          "s": status})


def test_upgrade_fills_the_listing_and_downgrade_restores_0003(empty_database_url):
    url, config = empty_database_url, migrate.alembic_config(empty_database_url)
    migrate.upgrade(url, "0003")
    engine = create_db_engine(url)
    try:
        with engine.begin() as connection:
            for model_id, name, owner in ((1, "alpha", "ana"), (2, "beta", "ben")):
                connection.execute(sa.text(
                    "INSERT INTO models (id, name, description, owner, created_at, updated_at, revision) "
                    "VALUES (:i, :n, '', :o, '2026-01-01 00:00:00', '2026-01-01 00:00:00', 1)"),
                    {"i": model_id, "n": name, "o": owner})
            for version, status in ((1, "stable"), (2, "staged"), (3, "staged")):
                add_version(connection, 1, version, status)

        migrate.upgrade(url)
        with engine.begin() as connection:
            assert connection.execute(sa.text(STATUS_ROWS)).all() == [
                (1, "stable", "ana", "alpha", 1), (1, "staged", "ana", "alpha", 2)]
            add_version(connection, 2, 1, "canary")  # the triggers run from the upgrade on
            inspector = sa.inspect(connection)
            assert {i["name"] for i in inspector.get_indexes("models")} >= {"ix_models_owner_name",
                                                                            "ix_models_owner"}
            assert "ix_model_tags_tag" not in {i["name"] for i in inspector.get_indexes("model_tags")}
            assert "ix_model_tags_tag_model" in {i["name"] for i in inspector.get_indexes("model_tags")}
        with engine.connect() as connection:
            assert (2, "canary", "ben", "beta", 1) in connection.execute(sa.text(STATUS_ROWS)).all()

        command.downgrade(config, "0003")
        with engine.begin() as connection:
            inspector = sa.inspect(connection)
            assert "model_statuses" not in inspector.get_table_names()
            assert "ix_models_owner_name" not in {i["name"] for i in inspector.get_indexes("models")}
            assert "ix_model_tags_tag" in {i["name"] for i in inspector.get_indexes("model_tags")}
            add_version(connection, 2, 2, "retired")  # no trigger left to touch a missing table

        migrate.upgrade(url)
        with engine.connect() as connection:
            assert connection.execute(sa.text(STATUS_ROWS)).all() == [
                (1, "stable", "ana", "alpha", 1), (1, "staged", "ana", "alpha", 2),
                (2, "canary", "ben", "beta", 1), (2, "retired", "ben", "beta", 1)]
        command.downgrade(config, "base")
    finally:
        engine.dispose()
