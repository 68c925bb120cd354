"""A throwaway PostgreSQL 15 on a free port: initdb as the `postgres` user in a temp folder."""
import os
import shutil
import subprocess
import tempfile

from loadtests.bench import servers

PG_BIN = "/usr/lib/postgresql/15/bin"


def installed():
    return os.path.exists(os.path.join(PG_BIN, "initdb"))


def _as_postgres(command):
    return (["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []) + command


class TempPostgres:
    """start() returns a SQLAlchemy URL of an empty database; stop() removes everything."""

    def start(self):
        self.folder = tempfile.mkdtemp(prefix="tfship-bench-pg-")
        os.chmod(self.folder, 0o755)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self.data, port = os.path.join(self.folder, "data"), servers.free_port()
        subprocess.run(_as_postgres([f"{PG_BIN}/initdb", "-D", self.data, "-A", "trust", "-U", "postgres",
                                     "-E", "UTF8", "--locale=C", "--no-sync"]),
                       check=True, capture_output=True, timeout=120)
        options = (f"-p {port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        subprocess.run(_as_postgres([f"{PG_BIN}/pg_ctl", "-D", self.data, "-o", options, "-l",
                                     os.path.join(self.folder, "server.log"), "-w", "-t", "60", "start"]),
                       check=True, capture_output=True, timeout=90)
        subprocess.run(_as_postgres([f"{PG_BIN}/createdb", "-h", "127.0.0.1", "-p", str(port),
                                     "-U", "postgres", "tfship"]),
                       check=True, capture_output=True, timeout=30)
        return f"postgresql+psycopg://postgres@127.0.0.1:{port}/tfship"

    @property
    def pid(self):
        """The postmaster's pid: its children are the backends serving each connection."""
        with open(os.path.join(self.data, "postmaster.pid")) as handle:
            return int(handle.readline())

    def stop(self):
        subprocess.run(_as_postgres([f"{PG_BIN}/pg_ctl", "-D", self.data, "-m", "immediate", "stop"]),
                       capture_output=True, timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)
