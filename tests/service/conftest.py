"""Fixtures for the API's tests: migrated SQLite and PostgreSQL databases, apps, clients, keys.

``app``/``client`` use SQLite; ``any_app``/``any_client`` run a test once on SQLite and once
on a real PostgreSQL 15 started for the session (initdb as the ``postgres`` user on a temp
folder and a free port). Each key fixture holds one real key per role.
"""
import os
import shutil
import socket
import subprocess
import tempfile

import pytest
import sqlalchemy as sa
from tests.conftest import free_port

PG_BIN = "/usr/lib/postgresql/15/bin"
PG_INSTALL = "apt-get install -y --no-install-recommends postgresql-15"
KEY_SECRET = "test-secret-for-hmac-of-api-keys-0123456789"
ROLES = ("reader", "predictor", "deployer", "admin")


def _closed_url():
    with socket.socket() as sock:  # bound, never listening: connections are refused at once
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


CLOSED_URL = _closed_url()


def make_app(database_url, data_dir, **overrides):
    """Build the API for a migrated database."""
    from service import create_app
    return create_app({"DATABASE_URL": database_url, "DATA_DIR": data_dir,
                       "KEY_SECRET": KEY_SECRET, "MODEL_SERVER_URL": CLOSED_URL, **overrides})


def delete_all_models(app):
    """Empty the registry (versions, tags and rollouts go with their model)."""
    from service import db
    with db.engine(app).begin() as connection:
        connection.execute(sa.text("DELETE FROM models"))


def close_app(app):
    """Empty the registry and close the app's database connections."""
    from service import db
    delete_all_models(app)
    db.engine(app).dispose()


def _as_postgres(command):
    return (["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []) + command


@pytest.fixture(scope="session")
def postgres_url():
    """Start PostgreSQL 15 for the session, create a database, migrate it; yield its URL."""
    if not os.path.exists(os.path.join(PG_BIN, "initdb")):
        pytest.skip(f"PostgreSQL 15 is not installed: {PG_INSTALL}")
    folder = tempfile.mkdtemp(prefix="tfship-pg-")
    os.chmod(folder, 0o755)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data, port = os.path.join(folder, "data"), free_port()
    subprocess.run(_as_postgres([f"{PG_BIN}/initdb", "-D", data, "-A", "trust", "-U", "postgres",
                                 "-E", "UTF8", "--locale=C", "--no-sync"]),
                   check=True, capture_output=True, timeout=120)
    options = (f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off "
               "-c synchronous_commit=off -c full_page_writes=off")
    subprocess.run(_as_postgres([f"{PG_BIN}/pg_ctl", "-D", data, "-o", options, "-l",
                                 os.path.join(folder, "server.log"), "-w", "-t", "60", "start"]),
                   check=True, capture_output=True, timeout=90)
    try:
        subprocess.run(_as_postgres([f"{PG_BIN}/createdb", "-h", "127.0.0.1", "-p", str(port),
                                     "-U", "postgres", "tfship"]),
                       check=True, capture_output=True, timeout=30)
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/tfship"
        from service import migrate
        migrate.upgrade(url)
        yield url
    finally:
        subprocess.run(_as_postgres([f"{PG_BIN}/pg_ctl", "-D", data, "-m", "immediate", "stop"]),
                       capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory):
    """A migrated SQLite database for the session."""
    from service import migrate
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'registry.sqlite3'}"
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def any_database_url(request):
    """Each migrated database in turn: SQLite, then PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("api-data"))


_KEYS = {}


def role_keys_for(app):
    """Return {role: key}, created once per database."""
    url = app.config["DATABASE_URL"]
    if url not in _KEYS:
        from service import keys
        with app.app_context():
            _KEYS[url] = {role: keys.create_key(f"test {role}", role)[0] for role in ROLES}
    return _KEYS[url]


@pytest.fixture
def app(sqlite_url, data_dir):
    """The API on the session's SQLite database, emptied after the test."""
    application = make_app(sqlite_url, data_dir)
    yield application
    close_app(application)


@pytest.fixture
def any_app(any_database_url, data_dir):
    """The API on SQLite, then on PostgreSQL, emptied after the test."""
    application = make_app(any_database_url, data_dir)
    yield application
    close_app(application)


@pytest.fixture(scope="session")
def build_app(data_dir):
    """build_app(database_url, **settings) -> a new app; the caller closes it (close_app)."""
    return lambda database_url, **overrides: make_app(database_url, data_dir, **overrides)


@pytest.fixture(scope="session")
def keys_for():
    """keys_for(app) -> {role: key} valid on the app's database."""
    return role_keys_for


@pytest.fixture(scope="session")
def empty_and_close():
    """empty_and_close(app): delete every model and close the app's connections."""
    return close_app


@pytest.fixture
def app_factory(data_dir):
    """app_factory(database_url, **settings) -> an app, closed after the test."""
    built = []

    def build(database_url, **overrides):
        built.append(make_app(database_url, data_dir, **overrides))
        return built[-1]

    yield build
    from service import db
    for application in built:
        db.engine(application).dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def any_client(any_app):
    return any_app.test_client()


@pytest.fixture
def keys(app):
    """{role: key} valid on the SQLite database."""
    return role_keys_for(app)


@pytest.fixture
def any_keys(any_app):
    """{role: key} valid on the current database."""
    return role_keys_for(any_app)


def auth_header(key):
    """Return the Authorization header for key."""
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def bearer():
    """bearer(key) -> the Authorization header carrying key."""
    return auth_header


PENGUIN_INPUT_SCHEMA = {
    "signature_name": "serving_default",
    "inputs": {
        "island": {"dtype": "string", "shape": [-1], "kind": "categorical",
                   "categories": ["Biscoe", "Dream", "Torgersen"], "missing": ""},
        "sex": {"dtype": "string", "shape": [-1], "kind": "categorical",
                "categories": ["female", "male"], "missing": ""},
        **{name: {"dtype": "float32", "shape": [-1], "kind": "numeric", "missing": "NaN"}
           for name in ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")},
    },
    "outputs": {"probabilities": {"dtype": "float32", "shape": [-1, 3]},
                "class_id": {"dtype": "int64", "shape": [-1]},
                "class_name": {"dtype": "string", "shape": [-1]}},
    "classes": ["Adelie", "Chinstrap", "Gentoo"],
}
PENGUIN_STATISTICS = {
    "bill_length_mm": {"min": 32.1, "max": 59.6, "mean": 43.9, "std": 5.4, "missing_rate": 0.006},
    "island": {"categories": {"Biscoe": 0.49, "Dream": 0.36, "Torgersen": 0.15},
               "missing_rate": 0.0},
}


def make_version_body(version, **overrides):
    """Return a valid POST /versions body for the penguin contract."""
    return {"version": version, "artifact_uri": f"file:///models/penguins/{version}",
            "metrics": {"accuracy": 0.98, "log_loss": 0.07},
            "input_schema": PENGUIN_INPUT_SCHEMA, "feature_statistics": PENGUIN_STATISTICS,
            "training_data_sha256": "ab" * 32, "exported_at": "2026-11-25T03:30:00Z", **overrides}


@pytest.fixture
def version_body():
    """version_body(version, **overrides) -> a valid POST /versions body."""
    return make_version_body


@pytest.fixture
def free_port_url():
    """host:port where nothing listens."""
    return f"127.0.0.1:{free_port()}"
