"""Run the API as a real gunicorn process (``tfship api``) for tests against real processes."""
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from tests.conftest import free_port


class ApiProcess:
    """``python -m tfship.cli api`` on a free port with TFSHIP_API_* settings; stop() always."""

    def __init__(self, settings, log_path, *, workers=2, scheme="http", verify=True,
                 extra_args=()):
        self.port = free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.log_path, self.verify = log_path, verify
        self.env = {**os.environ, "TFSHIP_API_LOG_LEVEL": "WARNING",
                    **{f"TFSHIP_API_{name}": str(value) for name, value in settings.items()}}
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.command = [sys.executable, "-m", "tfship.cli", "api", "--port", str(self.port),
                        "--workers", str(workers), *extra_args]
        self.workers = workers
        self.process = None

    def start(self, timeout=30):
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(self.command, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the API exited:\n{self.log()[-3000:]}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=1,
                                verify=self.verify).status_code == 200 and \
                        len(self.worker_pids()) >= self.workers:
                    return self
            except OSError:  # requests' errors, or a CA file that does not exist yet
                time.sleep(0.1)
        self.stop()
        pytest.fail(f"the API did not start:\n{self.log()[-3000:]}")

    def worker_pids(self):
        """Return the pids of the gunicorn workers (children of the master)."""
        with open(f"/proc/{self.process.pid}/task/{self.process.pid}/children") as handle:
            return [int(pid) for pid in handle.read().split()]

    def stop(self):
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # gunicorn's quick shutdown
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        try:  # a worker the master left behind (seen after the TLS test): its own session
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
