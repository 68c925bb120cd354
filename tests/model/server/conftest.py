"""Fixture SavedModels and one real model server process, built once per test session."""
import dataclasses
import os
import shutil
import time

import pytest
import requests

from .fixture_models import MODEL_NAME, export_versions, write_warmup
from loadtests.bench import servers
from tests.conftest import free_port

LIVE_MODEL = "live"
WARM_MODEL = "warm"
POLL_SECONDS = 1
METRICS_PATH = "/monitoring/prometheus/metrics"
# Small batches and a 30 ms window so that concurrent test calls share batches.
BATCHING = ("max_batch_size { value: 8 } batch_timeout_micros { value: 30000 } "
            "max_enqueued_batches { value: 100 } num_batch_threads { value: 2 }")
WARMUP_REQUESTS = 3


def model_config(models):
    """Return ModelServerConfig text for {name: (base_path, policy text, {label: version})}."""
    entries = []
    for name, (base_path, policy, labels) in models.items():
        label_text = " ".join(f'version_labels {{ key: "{k}" value: {v} }}'
                              for k, v in labels.items())
        entries.append(f'config {{ name: "{name}" base_path: "{base_path}" '
                       f'model_platform: "tensorflow" model_version_policy {{ {policy} }} '
                       f'{label_text} }}')
    return "model_config_list {\n  " + "\n  ".join(entries) + "\n}\n"


@dataclasses.dataclass
class RunningServer:
    """A model server process under test, started and stopped as the benchmark does."""

    url: str
    handle: servers.Server
    config_path: str = ""

    @property
    def process(self):
        return self.handle.process

    @property
    def log_path(self):
        return self.handle.log_path

    def get(self, path, **kwargs):
        return requests.get(self.url + path, timeout=30, **kwargs)

    def post(self, path, **kwargs):
        return requests.post(self.url + path, timeout=30, **kwargs)

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def wait_until(self, predicate, timeout=20, what="condition"):
        """Poll `predicate()` until true; fail with the server log after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            assert self.process.poll() is None, f"server exited:\n{self.log()[-3000:]}"
            time.sleep(0.2)
        pytest.fail(f"timed out waiting for {what}; server log:\n{self.log()[-3000:]}")


def start_server(flags, log_path, ready_model, timeout=90, ready_status=200):
    """Start `tfship model-server` with `flags`; return it once `ready_model` answers."""
    port = free_port()
    handle = servers.model_server([f"--rest_api_port={port}", *flags],
                                  dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), log_path)
    server = RunningServer(f"http://127.0.0.1:{port}", handle)

    def ready():
        try:
            return server.get(f"/v1/models/{ready_model}").status_code == ready_status
        except requests.ConnectionError:
            return False

    try:
        server.wait_until(ready, timeout=timeout, what="the server to start")
    except BaseException:
        stop_server(server)
        raise
    return server


def stop_server(server):
    """Stop the process (SIGTERM, then SIGKILL) and reap it."""
    server.handle.stop()


@pytest.fixture(scope="session")
def model_bases(tmp_path_factory):
    """Base paths of 'multi' (v1 factor 1, v2 factor 2) and 'live' (a copy the tests change)."""
    root = tmp_path_factory.mktemp("served")
    multi = export_versions(str(root / MODEL_NAME), {1: 1.0, 2: 2.0})
    live = str(root / LIVE_MODEL)
    shutil.copytree(multi, live)
    return {MODEL_NAME: multi, LIVE_MODEL: live}


@pytest.fixture(scope="session")
def loaded(model_bases):
    """The fixture versions loaded in this process: {(model, version): loaded SavedModel}."""
    import tensorflow as tf

    base = model_bases[MODEL_NAME]
    return {(MODEL_NAME, version): tf.saved_model.load(os.path.join(base, str(version)))
            for version in (1, 2)}


@pytest.fixture(scope="session")
def warm_base(model_bases, tmp_path_factory):
    """Base path of 'warm': a copy of multi's version 1 with warmup records."""
    import numpy as np

    base = str(tmp_path_factory.mktemp("warm") / WARM_MODEL)
    shutil.copytree(os.path.join(model_bases[MODEL_NAME], "1"), os.path.join(base, "1"))
    write_warmup(os.path.join(base, "1"), [
        ("rowcount", {"x": np.ones((2, 3), np.float32)}),
        ("scale", {"x": np.ones((1, 3), np.float32)}),
        ("", {"a": np.ones(1, np.float32), "b": np.ones((1, 2), np.float32),
              "c": np.array([b"warm"])}),
    ][:WARMUP_REQUESTS])
    return base


def live_config(model_bases, warm_base, live_labels):
    """Return the config of the session's server; tests move the labels of 'live'."""
    return model_config({
        MODEL_NAME: (model_bases[MODEL_NAME], "all {}", {"stable": 1, "canary": 2}),
        LIVE_MODEL: (model_bases[LIVE_MODEL], "all {}", live_labels),
        WARM_MODEL: (warm_base, "latest { num_versions: 1 }", {}),
    })


@pytest.fixture(scope="session")
def server(model_bases, warm_base, tmp_path_factory):
    """One server for every fixture model with monitoring, batching and warmup on, polling
    the disk and its config every second (a single TensorFlow process keeps the suite fast)."""
    root = tmp_path_factory.mktemp("server")
    config_path = root / "models.config"
    config_path.write_text(live_config(model_bases, warm_base, {"stable": 1}))
    monitoring_config = root / "monitoring.config"
    monitoring_config.write_text(f'prometheus_config {{ enable: true path: "{METRICS_PATH}" }}')
    batching_config = root / "batching.config"
    batching_config.write_text(BATCHING)
    running = start_server(
        [f"--model_config_file={config_path}",
         f"--model_config_file_poll_wait_seconds={POLL_SECONDS}",
         f"--file_system_poll_wait_seconds={POLL_SECONDS}",
         f"--monitoring_config_file={monitoring_config}",
         "--enable_batching", f"--batching_parameters_file={batching_config}",
         "--enable_model_warmup=true",
         "--tensorflow_intra_op_parallelism=1", "--tensorflow_inter_op_parallelism=2"],
        str(root / "server.log"), MODEL_NAME)
    running.config_path = str(config_path)
    yield running
    stop_server(running)
