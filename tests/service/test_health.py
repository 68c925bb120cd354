"""/healthz and /readyz: open, and ready through a database or model-server outage. Budget: ~2 s."""
import shutil

from service import migrate


def test_healthz_is_open(client):
    answer = client.get("/healthz")
    assert answer.status_code == 200 and answer.json == {"status": "ok"}


def test_readyz_reports_dependencies(client):
    answer = client.get("/readyz")
    assert answer.status_code == 200
    database = answer.json["dependencies"]["database"]
    assert database["status"] == "ok" and database["revision"] == migrate.current_head()
    model_server = answer.json["dependencies"]["model_server"]
    assert model_server["status"] == "down"  # nothing listens at the configured URL
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'tfship_dependency_up{dependency="database"} 1.0' in metrics
    assert 'tfship_dependency_up{dependency="model_server"} 0.0' in metrics


def test_readyz_stays_ready_when_the_database_is_gone(tmp_path, app_factory):
    from service import migrate
    path = tmp_path / "registry.sqlite3"
    migrate.upgrade(f"sqlite:///{path}")
    app = app_factory(f"sqlite:///{path}")
    client = app.test_client()
    assert client.get("/readyz").json["dependencies"]["database"]["status"] == "ok"
    shutil.rmtree(tmp_path)
    tmp_path.mkdir()
    (tmp_path / "registry.sqlite3").mkdir()  # cannot be opened as a database
    from service import db
    db.engine(app).dispose()
    answer = client.get("/readyz")
    assert answer.status_code == 200
    assert answer.json["dependencies"]["database"]["status"] == "down"
    assert 'tfship_dependency_up{dependency="database"} 0.0' in client.get("/metrics").get_data(
        as_text=True)


def test_readyz_on_a_database_before_migration(tmp_path, app_factory):
    app = app_factory(f"sqlite:///{tmp_path / 'new.sqlite3'}")
    database = app.test_client().get("/readyz").json["dependencies"]["database"]
    assert database["status"] == "not_migrated" and database["revision"] is None
