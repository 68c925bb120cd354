"""The real local stack for the gate's tests: the model server and the API under gunicorn, on free ports.

Two trained penguin versions (the session's `trained_models`) are served with the labels
stable (v2) and canary (v1); the API registers both versions from their export metadata and
splits traffic 50/50 between them. Keys are made with `tfship keys create`, as an operator would.
"""
import json
import os
import shutil
import subprocess
import sys
import time

import requests

from tests.conftest import free_port

MODEL = "penguins"
START_TIMEOUT_S = 120


def tfship(env, *args, timeout=60):
    return subprocess.run([sys.executable, "-m", "tfship.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=True)


def wait_for(url, process, accept=lambda r: r.ok, timeout=START_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[:4]} exited with {process.returncode}")
        try:
            if accept(requests.get(url, timeout=2)):
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} not ready after {timeout} s")


class RealStack:
    """Start with start(); stop() ends both processes."""

    def __init__(self, models_dir, root):
        self.root, self.processes = root, []
        self.models = root / "models"
        shutil.copytree(models_dir, self.models)
        self.model_server_port, self.api_port = free_port(), free_port()
        self.env = dict(os.environ, TFSHIP_API_DATA_DIR=str(root / "api"),
                        TFSHIP_API_MODEL_SERVER_URL=f"http://127.0.0.1:{self.model_server_port}",
                        TFSHIP_API_WORKERS="2")

    def start(self, **api_settings):
        """Serve the models, make the keys, start the API, register both versions and the 50/50 rollout."""
        config = self.root / "models.config"
        config.write_text(
            f'model_config_list {{ config {{ name: "{MODEL}" base_path: "{self.models / MODEL}" '
            'model_platform: "tensorflow" model_version_policy { all {} } '
            'version_labels { key: "stable" value: 2 } version_labels { key: "canary" value: 1 } } }\n')
        server = self._spawn("model-server", [f"--rest_api_port={self.model_server_port}", f"--port={free_port()}",
                                              f"--model_config_file={config}"], self.env)
        tfship(self.env, "db", "upgrade")
        self.admin_key = tfship(self.env, "keys", "create", "--role", "admin", "--name", "gate").stdout.strip()
        self.predictor_key = tfship(self.env, "keys", "create", "--role", "predictor",
                                    "--name", "gate").stdout.strip()
        self.url = self.start_api(self.api_port, **api_settings)
        wait_for(f"http://127.0.0.1:{self.model_server_port}/v1/models/{MODEL}", server,
                 lambda r: r.ok and sum(v["state"] == "AVAILABLE" for v in r.json()["model_version_status"]) == 2)
        self._register()
        return self

    def start_api(self, port=None, **api_settings):
        """Start one more API process on the same registry and model server; return its URL."""
        port = port or free_port()
        settings = {f"TFSHIP_API_{name}": str(value) for name, value in api_settings.items()}
        api = self._spawn("api", ["--port", str(port)], dict(self.env, **settings), f"api-{port}")
        wait_for(f"http://127.0.0.1:{port}/healthz", api)
        return f"http://127.0.0.1:{port}"

    def _spawn(self, command, args, env, name=None):
        log = open(self.root / f"{name or command}.log", "w")
        process = subprocess.Popen([sys.executable, "-m", "tfship.cli", command, *args], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.processes.append(process)
        return process

    def _register(self):
        headers = {"Authorization": f"Bearer {self.admin_key}"}
        response = requests.post(f"{self.url}/api/v1/models", json={"name": MODEL}, headers=headers, timeout=10)
        assert response.status_code == 201, response.text
        for version in (1, 2):
            metadata = json.loads((self.models / MODEL / str(version) / "assets.extra" /
                                   "tfship_metadata.json").read_text())
            body = {"version": version, "artifact_uri": (self.models / MODEL / str(version)).as_uri(),
                    "metrics": metadata["metrics"], "input_schema": metadata["input_schema"],
                    "feature_statistics": metadata["feature_statistics"]}
            response = requests.post(f"{self.url}/api/v1/models/{MODEL}/versions", json=body, headers=headers,
                                     timeout=10)
            assert response.status_code == 201, response.text
        response = requests.put(f"{self.url}/api/v1/models/{MODEL}/rollout", headers=headers, timeout=10,
                                json={"stable": 2, "canary": 1, "canary_weight": 0.5})
        assert response.status_code == 200, response.text

    def stop(self):
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
