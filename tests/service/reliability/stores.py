"""Real stores for tests against real processes: a migrated SQLite registry with keys, Redis."""
import os
import shutil
import subprocess
import tempfile
import time

import pytest
import redis

from tests.conftest import free_port
from tests.service.conftest import KEY_SECRET, ROLES, make_app

ISSUED_KEYS = []  # every key made here, for the log scan in tests/service/test_secrets.py
REDIS_INSTALL = "apt-get install -y --no-install-recommends redis-server"


def registry_with_keys(folder, url=None):
    """Migrate a registry (default: a new SQLite file in folder); return (API settings, {role: key})."""
    from service import db, keys, migrate
    url = url or f"sqlite:///{folder / 'registry.sqlite3'}"
    migrate.upgrade(url)
    app = make_app(url, str(folder))
    with app.app_context():
        role_keys = {role: keys.create_key(f"test {role}", role)[0] for role in ROLES}
        db.session().close()
    ISSUED_KEYS.extend(role_keys.values())
    db.engine(app).dispose()
    return {"DATABASE_URL": url, "DATA_DIR": str(folder), "KEY_SECRET": KEY_SECRET}, role_keys


class RedisServer:
    """redis-server on a free port, without persistence; stop() always."""

    def __init__(self, log_path):
        if shutil.which("redis-server") is None:
            pytest.skip(f"redis-server is not installed: {REDIS_INSTALL}")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        with open(log_path, "a") as log:
            self.process = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--protected-mode", "yes"], stdout=log,
                stderr=subprocess.STDOUT)
        self.client = redis.Redis(port=self.port, socket_timeout=2)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    pytest.fail("redis-server did not start")
                time.sleep(0.05)

    def stop(self):
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


class PostgresServer:
    """A PostgreSQL 15 of its own (initdb on a temp folder, free port) that a test may stop."""

    def __init__(self):
        from tests.service.conftest import PG_BIN, PG_INSTALL, _as_postgres
        if not os.path.exists(os.path.join(PG_BIN, "initdb")):
            pytest.skip(f"PostgreSQL 15 is not installed: {PG_INSTALL}")
        self._bin, self._as_postgres = PG_BIN, _as_postgres
        self.folder = tempfile.mkdtemp(prefix="tfship-pg-")  # pytest's tmp is private to root
        os.chmod(self.folder, 0o755)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self.data, self.port = os.path.join(self.folder, "data"), free_port()
        subprocess.run(_as_postgres([f"{PG_BIN}/initdb", "-D", self.data, "-A", "trust", "-U",
                                     "postgres", "-E", "UTF8", "--locale=C", "--no-sync"]),
                       check=True, capture_output=True, timeout=120)
        self.start()
        subprocess.run(_as_postgres([f"{PG_BIN}/createdb", "-h", "127.0.0.1", "-p",
                                     str(self.port), "-U", "postgres", "tfship"]),
                       check=True, capture_output=True, timeout=30)
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/tfship"

    def _ctl(self, *args):
        subprocess.run(self._as_postgres([f"{self._bin}/pg_ctl", "-D", self.data, *args]),
                       check=True, capture_output=True, timeout=90)

    def start(self):
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        self._ctl("-o", options, "-l", os.path.join(self.folder, "server.log"), "-w", "-t", "60",
                  "start")

    def stop(self):
        self._ctl("-m", "immediate", "-w", "stop")

    def close(self):
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.folder, ignore_errors=True)
