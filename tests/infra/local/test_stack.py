"""The local stack end to end: `tfship demo`, predictions against the in-process model, errors,
the reconciler serving what the registry's rollout state names (a new export is registered but
not served until a rollout names it), `tfship down`.

Budget: ~90 s alone (the demo's `tfship up` and its bounded verify gate ~35 s, training one
more version ~15 s, two canary loads through the reconciler ~10 s, `tfship down` ~10 s).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import requests
import tensorflow as tf

from infra.local.demo import EXAMPLES
from model import pipeline
from model.training import TrainingConfig
from tests.conftest import free_port


def tfship(env, *args, timeout=240):
    return subprocess.run([sys.executable, "-m", "tfship.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def stack(trained_models, tmp_path_factory):
    """The demo's stack on free ports over a copy of the session's two trained versions."""
    base = tmp_path_factory.mktemp("stack")
    shutil.copytree(trained_models[0], base / "models")
    api_port = free_port()
    env = dict(os.environ, TFSHIP_STATE_DIR=str(base / "state"),
               TFSHIP_MODELS_DIR=str(base / "models"),
               TFSHIP_MODEL_SERVER_PORT=str(free_port()), TFSHIP_API_PORT=str(api_port),
               TFSHIP_PROMETHEUS_PORT=str(free_port()), TFSHIP_MODEL_SERVER_GRPC_PORT=str(free_port()),
               TFSHIP_FILE_SYSTEM_POLL_SECONDS="1", TFSHIP_MODEL_CONFIG_POLL_SECONDS="1",
               TFSHIP_RECONCILE_INTERVAL_SECONDS="0.5",
               # `tfship rollout` against this stack
               TFSHIP_REGISTRY_URL=f"http://127.0.0.1:{api_port}", TFSHIP_MODEL_NAME="penguins",
               TFSHIP_KEY_FILE=str(base / "state" / "admin.key"))
    demo = tfship(env, "demo", "--no-wait")
    url = f"http://127.0.0.1:{env['TFSHIP_MODEL_SERVER_PORT']}/v1/models/penguins"
    api = f"http://127.0.0.1:{env['TFSHIP_API_PORT']}"
    yield {"env": env, "url": url, "base": base, "demo": demo, "api": api,
           "state": base / "state"}
    tfship(env, "down", timeout=60)


def in_process(version_dir, columns):
    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    dtypes = {k: v.dtype for k, v in signature.structured_input_signature[1].items()}
    return signature(**{k: tf.constant(v, dtype=dtypes[k]) for k, v in columns.items()})


def columns_of(rows):
    return {name: [row[name] for row in rows] for name in rows[0]}


def test_demo_starts_the_stack_and_shows_predictions(stack):
    assert stack["demo"].returncode == 0, stack["demo"].stderr
    out = stack["demo"].stdout
    # Only the registry's stable version (the newest export) is served; 1 waits for a rollout.
    assert "[demo] model server: POST /v1/models/penguins/versions/2:predict" in out
    assert "/versions/1:predict" not in out
    assert "/labels/stable:predict" in out
    assert "exported but not served: versions [1]" in out
    assert "Adelie" in out and "Gentoo" in out
    assert "[up] registered penguins version 1" in out
    assert "[up] registered penguins version 2" in out
    assert "[up] reconciler: the model server serves the registry's rollout state (stable 2)" in out
    assert "[demo] gateway: POST /api/v1/models/penguins:predict -> served by version 2 (stable)" \
        in out
    status = tfship(stack["env"], "status")
    assert status.returncode == 0, status.stdout
    for name in ("model-server", "api", "reconciler"):
        assert re.search(rf"^{name} +pid \d+ +running", status.stdout, re.MULTILINE), status.stdout
    assert "DEAD" not in status.stdout


def test_bootstrap_keys_are_private_files_that_work(stack):
    for role in ("admin", "predictor", "reader"):
        path = stack["state"] / f"{role}.key"
        assert path.stat().st_mode & 0o777 == 0o600
    rollout_url = f"{stack['api']}/api/v1/models/penguins/rollout"
    for role in ("admin", "reader"):
        key = (stack["state"] / f"{role}.key").read_text().strip()
        rollout = requests.get(rollout_url, headers={"Authorization": f"Bearer {key}"},
                               timeout=10)
        assert rollout.status_code == 200 and rollout.json()["stable"] == 2
    assert requests.get(rollout_url, timeout=10).status_code == 401
    # The reconciler's key reads; it cannot change the rollout.
    reader = (stack["state"] / "reader.key").read_text().strip()
    assert requests.put(rollout_url, json={"stable": 1}, timeout=10,
                        headers={"Authorization": f"Bearer {reader}"}).status_code == 403


def test_gateway_predictions_equal_the_model_servers(stack):
    predictor = (stack["state"] / "predictor.key").read_text().strip()
    body = json.dumps({"instances": EXAMPLES})
    via_api = requests.post(f"{stack['api']}/api/v1/models/penguins:predict", data=body,
                            headers={"Authorization": f"Bearer {predictor}",
                                     "Content-Type": "application/json"}, timeout=10)
    assert via_api.status_code == 200, via_api.text
    assert via_api.headers["X-Model-Version"] == "2"
    direct = requests.post(f"{stack['url']}/versions/2:predict", data=body, timeout=10)
    assert via_api.json() == direct.json()


def served(stack, version):
    """The model server's state of version (None while it is not served at all)."""
    answer = requests.get(f"{stack['url']}/versions/{version}", timeout=5)
    if answer.status_code == 404:
        return None
    return answer.json()["model_version_status"][0]["state"]


def test_a_registered_version_is_served_once_a_rollout_names_it(stack):
    assert served(stack, 1) is None  # exported and registered, named by no rollout state
    started = tfship(stack["env"], "rollout", "start", "--version", "1", "--steps", "50",
                     "--no-promote", "--step-wait", "0", "--model-server",
                     stack["url"].rsplit("/v1/", 1)[0], "--load-timeout", "60", timeout=90)
    assert started.returncode == 0, started.stdout + started.stderr
    assert "version 1 is AVAILABLE and labelled canary" in started.stdout
    assert served(stack, 1) == "AVAILABLE"
    log = (stack["state"] / "logs" / "reconciler.log").read_text()
    assert "serving versions [1, 2], labels {'stable': 2, 'canary': 1}" in log


@pytest.mark.parametrize("target, version", [("/versions/1", 1), ("/labels/stable", 2)])
def test_row_format_equals_the_in_process_model(stack, trained_models, target, version):
    answer = requests.post(f"{stack['url']}{target}:predict",
                           data=json.dumps({"instances": EXAMPLES}), timeout=10)
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    expected = in_process(trained_models[1][version - 1].path, columns_of(EXAMPLES))
    assert np.allclose([p["probabilities"] for p in predictions],
                       expected["probabilities"].numpy(), atol=1e-6)
    assert [p["class_id"] for p in predictions] == expected["class_id"].numpy().tolist()
    assert [p["class_name"] for p in predictions] == [
        n.decode() for n in expected["class_name"].numpy()]


def test_columnar_format_equals_the_in_process_model(stack, trained_models):
    columns = columns_of(EXAMPLES)
    answer = requests.post(f"{stack['url']}/versions/2:predict",
                           data=json.dumps({"inputs": columns}), timeout=10)
    assert answer.status_code == 200, answer.text
    outputs = answer.json()["outputs"]
    expected = in_process(trained_models[1][1].path, columns)
    assert np.allclose(outputs["probabilities"], expected["probabilities"].numpy(), atol=1e-6)
    assert outputs["class_id"] == expected["class_id"].numpy().tolist()


@pytest.mark.parametrize("path, method, code, message", [
    # TF Serving's status handler and its predict handler word "not found" differently.
    ("/v1/models/nonexistent", "get", 404, "Could not find any versions of model nonexistent"),
    ("/v1/models/nonexistent:predict", "post", 404,
     "Servable not found for request: Latest(nonexistent)"),
    ("/v1/models/penguins/versions/99:predict", "post", 404,
     "Servable not found for request: Specific(penguins, 99)"),
    ("/v1/models/penguins/labels/nonexistent:predict", "post", 400,
     "Unrecognized servable version label: nonexistent"),
])
def test_unknown_model_version_and_label_get_json_errors(stack, path, method, code, message):
    base = stack["url"].rsplit("/v1/", 1)[0]
    body = {"data": json.dumps({"instances": EXAMPLES})} if method == "post" else {}
    answer = getattr(requests, method)(f"{base}{path}", timeout=10, **body)
    assert answer.status_code == code, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    assert message in answer.json()["error"]


def test_a_version_exported_while_serving_waits_for_a_rollout(stack):
    pipeline.run(stack["base"] / "models", config=TrainingConfig(seed=3, epochs=40),
                 progress=lambda _: None, gate_config=pipeline.gate.GateConfig(
                     min_accuracy=0.8, max_regression=0.1))
    again = tfship(stack["env"], "up")  # registers the new export; starts nothing new
    assert again.returncode == 0, again.stderr
    assert "[up] registered penguins version 3" in again.stdout
    assert "starting" not in again.stdout
    time.sleep(3)  # several file-system and config polls, and reconciler passes
    assert served(stack, 3) is None
    assert tfship(stack["env"], "rollout", "abort").returncode == 0  # canary 1 makes way
    started = tfship(stack["env"], "rollout", "start", "--version", "3", "--steps", "25",
                     "--no-promote", "--step-wait", "0", "--model-server",
                     stack["url"].rsplit("/v1/", 1)[0], "--load-timeout", "60", timeout=90)
    assert started.returncode == 0, started.stdout + started.stderr
    answer = requests.post(f"{stack['url']}/labels/canary:predict",
                           data=json.dumps({"instances": EXAMPLES}), timeout=10)
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == len(EXAMPLES)
    assert served(stack, 3) == "AVAILABLE"


def test_down_stops_every_process(stack):
    result = tfship(stack["env"], "down", timeout=60)
    assert result.returncode == 0 and "model-server" in result.stdout
    with pytest.raises(requests.ConnectionError):
        requests.get(stack["url"], timeout=2)
    assert tfship(stack["env"], "status").returncode == 1
