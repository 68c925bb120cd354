"""Fixtures for the monitoring tests: the generated files, and a real Prometheus loaded with the rules."""
import contextlib
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

from monitoring.generate import GENERATED
from tests.conftest import free_port

PROMETHEUS_DIR = GENERATED / "prometheus"


def tool(*names):
    """The path of a Prometheus tool (the first of its names found), or a skip saying how to install it."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(f"{names[0]} is not installed: apt-get install -y --no-install-recommends "
                "prometheus prometheus-alertmanager")


def run(*command, timeout=60):
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def wait_ready(url, process, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout} s")


@contextlib.contextmanager
def serving(command, log_path, port):
    """Run a Prometheus-family server on a loopback port until the block ends; yield its URL."""
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(f"{url}/-/ready", process)
            yield url
        finally:
            stop(process)


def stop(process):
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@pytest.fixture(scope="session")
def rule_files():
    return sorted(PROMETHEUS_DIR.glob("*.rules.yml"))


@pytest.fixture(scope="session")
def rule_groups(rule_files):
    return {path.name: yaml.safe_load(path.read_text()) for path in rule_files}


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory, rule_files):
    """A real Prometheus on a free port, scraping itself every second, with every generated rule file."""
    binary = tool("prometheus")
    root = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
              "rule_files": [str(path) for path in rule_files],
              "scrape_configs": [{"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}]}
    (root / "prometheus.yml").write_text(yaml.safe_dump(config))
    with serving([binary, f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'data'}",
                  f"--web.listen-address=127.0.0.1:{port}"], root / "prometheus.log", port) as url:
        yield url


def query(prometheus_url, expr):
    """Run an instant query; returns Prometheus's JSON answer (status success or error)."""
    return requests.get(f"{prometheus_url}/api/v1/query", params={"query": expr}, timeout=10).json()


@pytest.fixture(scope="session")
def generated():
    return GENERATED


def relative(path):
    return Path(path).relative_to(GENERATED.parent.parent)
