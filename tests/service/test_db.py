"""The database layer: SQLite created on first start in WAL mode, outages answered 503, pooled
PostgreSQL connections the server closed replaced at checkout. Budget: ~3 s."""
import time

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


def _backend_pid(engine):
    with engine.connect() as connection:
        return connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()


def _terminate(postgres_url, pids):
    """Terminate the server processes serving pids, and wait until they are gone."""
    admin = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool,
                             isolation_level="AUTOCOMMIT")  # each look at pg_stat_activity is new
    try:
        with admin.connect() as connection:
            for pid in pids:
                connection.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
            deadline = time.monotonic() + 10
            while connection.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%(pids)s)",
                    {"pids": list(pids)}).scalar_one():
                assert time.monotonic() < deadline, "the server processes did not end"
                time.sleep(0.02)
    finally:
        admin.dispose()


def test_a_live_pooled_postgres_connection_is_reused(postgres_url):
    engine = db.create_db_engine(postgres_url)
    try:
        assert _backend_pid(engine) == _backend_pid(engine) == _backend_pid(engine)
    finally:
        engine.dispose()


def test_a_pooled_postgres_connection_the_server_closed_is_replaced_at_checkout(postgres_url):
    engine = db.create_db_engine(postgres_url)
    try:
        first = _backend_pid(engine)
        _terminate(postgres_url, [first])
        replacement = _backend_pid(engine)  # no error: the closed connection never served it
        assert replacement != first
        assert _backend_pid(engine) == replacement
    finally:
        engine.dispose()


def test_a_request_after_the_servers_connections_were_closed_succeeds(
        postgres_url, app_factory, keys_for, bearer):
    app = app_factory(postgres_url)
    reader = bearer(keys_for(app)["reader"])
    client = app.test_client()
    assert client.get("/api/v1/models", headers=reader).status_code == 200
    pool = db.engine(app).pool
    assert pool.checkedin() >= 1
    with db.engine(app).connect() as connection:  # the pooled connection the request used
        pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    _terminate(postgres_url, [pid])
    answer = client.get("/api/v1/models", headers=reader)
    assert answer.status_code == 200, answer.json
