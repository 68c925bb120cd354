"""Fixtures of the load-test suites: real target servers in subprocesses and gate runs against them."""
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import requests

TARGET = Path(__file__).with_name("target_server.py")
START_TIMEOUT_S = 20


class Target:
    """A running target server: its URL, key, and the process to stop."""

    def __init__(self, **settings):
        self.key = secrets.token_hex(16)
        environ = dict(os.environ, TARGET_KEY=self.key, **{k: str(v) for k, v in settings.items()})
        self.process = subprocess.Popen([sys.executable, str(TARGET)], env=environ, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True)
        port = self.process.stdout.readline().strip()  # the server prints its port once bound
        if not port.isdigit():
            self.stop()
            raise RuntimeError("the target server did not start")
        self.url = f"http://127.0.0.1:{port}"
        self.admin_key = self.predictor_key = self.key

    def get(self, path):
        return requests.get(self.url + path, headers={"Authorization": f"Bearer {self.key}"}, timeout=5).json()

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process.stdout.close()


@pytest.fixture(scope="session")
def start_target():
    """Start target servers on free ports; stop them all at the end of the session."""
    started = []

    def start(**settings):
        target = Target(**settings)
        started.append(target)
        return target

    yield start
    for target in started:
        target.stop()
