"""The local Prometheus: scrapes the API and the model server and evaluates the generated rules.

It runs only where the `prometheus` binary is installed (`tfship doctor --install` adds it);
the stack works without it.
"""
import shutil

import yaml

from infra.local import processes
from monitoring import prometheus_config

BINARY = "prometheus"
PROFILE = "local"
SCRAPE_INTERVAL = "5s"


def installed():
    return shutil.which(BINARY) is not None


def write_config(settings):
    config = prometheus_config.config(
        api_target=f"127.0.0.1:{settings.api_port}",
        model_server_target=f"127.0.0.1:{settings.model_server_port}",
        profile=PROFILE, scrape_interval=SCRAPE_INTERVAL)
    path = settings.state_dir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def start(settings, timeout=30.0):
    config = write_config(settings)
    storage = settings.state_dir / "prometheus-data"
    storage.mkdir(parents=True, exist_ok=True)
    process = processes.start(settings, "prometheus", [
        shutil.which(BINARY), f"--config.file={config}", f"--storage.tsdb.path={storage}",
        f"--web.listen-address=127.0.0.1:{settings.prometheus_port}",
    ], settings.prometheus_url)
    processes.wait_until(process, lambda: _ready(settings), timeout)
    return process


def _ready(settings):
    import urllib.request

    with urllib.request.urlopen(f"{settings.prometheus_url}/-/ready", timeout=2) as response:
        return response.status == 200
