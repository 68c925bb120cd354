"""The database layer: SQLite created on first start in WAL mode, outages answered 503. Budget: ~2 s."""
import sqlalchemy as sa

from service import db


def test_sqlite_file_is_created_on_first_connect_in_wal_mode(tmp_path):
    path = tmp_path / "deep" / "folder" / "registry.sqlite3"
    engine = db.create_db_engine(f"sqlite:///{path}")
    try:
        assert not path.exists()
        with engine.connect() as connection:
            assert connection.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(sa.text("PRAGMA foreign_keys")).scalar() == 1
        assert path.exists()
    finally:
        engine.dispose()


def test_create_app_touches_no_database(tmp_path, app_factory):
    path = tmp_path / "never" / "registry.sqlite3"
    app_factory(f"sqlite:///{path}")
    assert not path.exists()


def test_unmigrated_database_answers_503_not_500(tmp_path, app_factory, keys, bearer):
    app = app_factory(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    answer = app.test_client().get("/api/v1/models", headers=bearer(keys["reader"]))
    # The key is unknown to this empty database, and the lookup itself fails: 503, not 401/500.
    assert answer.status_code == 503
    assert answer.json["error"]["code"] == "database_unavailable"
    assert "tfship db upgrade" in answer.json["error"]["message"]
    assert answer.headers["Retry-After"] == "2"


def test_unreachable_postgres_answers_503_quickly(app_factory, keys, bearer, free_port_url):
    app = app_factory(f"postgresql+psycopg://postgres@{free_port_url}/tfship", DATABASE_TIMEOUT_S=1)
    answer = app.test_client().get("/api/v1/models", headers=bearer(keys["reader"]))
    assert answer.status_code == 503 and answer.json["error"]["code"] == "database_unavailable"
