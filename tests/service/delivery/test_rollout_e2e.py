"""Real rollouts on a real local stack (`tfship up`: model server, API under gunicorn) with the
reconciler running beside it and a client sending predictions throughout.

- the reconciler takes over the config `tfship up` wrote (policy all) and unloads the unnamed
  version after the grace period;
- a good canary goes 50% -> 100% -> promoted, the client sees zero failures, both labels serve;
- rollback to previous reaches the model server and every gateway answer within 3 s;
- a canary that fails to load: every canary call falls back to stable (zero client failures,
  counted in tfship_canary_fallbacks_total); `rollout start` waiting for it aborts by itself;
- a canary answering 200 with wrong predictions is rolled back automatically (class PSI);
- a breaking input schema is refused; a crashed driver resumes from the registry's progress;
  the history holds every transition.

Budget: ~100 s alone on the shared 2 cores (training the two versions, shared with the other
suites, ~30 s; `tfship up` ~20 s; the scenarios ~35 s of real polls and bakes; `tfship down`
~10 s).
"""
import re
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time

import pytest
import requests

from infra.local.demo import EXAMPLES
from service.delivery import model_config
from tests.conftest import free_port

MODEL = "penguins"
GRACE_S = 3.0


def ANALYSIS(stack):  # noqa: N802 (reads as a constant)
    """Judge each step on the gateway's metrics; p95 loose, as the shared 2 cores are noisy."""
    return ["--metrics-url", f"{stack['api']}/metrics", "--max-p95-seconds", "2.5",
            "--min-calls", "15"]


def tfship(env, *args, timeout=240):
    return subprocess.run([sys.executable, "-m", "tfship.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def rollout(stack, *args, timeout=90):
    return subprocess.run([sys.executable, "-m", "service.delivery.rollout_cli", *args],
                          env=stack["env"], capture_output=True, text=True, timeout=timeout)


def wait_for(check, timeout, message):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout} s: {message}")


@pytest.fixture(scope="module")
def stack(trained_models, tmp_path_factory):
    """`tfship up` on free ports, then `tfship reconcile` (--once, then looping) beside it."""
    base = tmp_path_factory.mktemp("rollout-stack")
    shutil.copytree(trained_models[0], base / "models")
    state = base / "state"
    api_port, server_port = free_port(), free_port()
    env = dict(os.environ, TFSHIP_STATE_DIR=str(state), TFSHIP_MODELS_DIR=str(base / "models"),
               TFSHIP_MODEL_SERVER_PORT=str(server_port), TFSHIP_API_PORT=str(api_port),
               TFSHIP_MODEL_SERVER_GRPC_PORT=str(free_port()),
               TFSHIP_PROMETHEUS_PORT=str(free_port()), TFSHIP_FILE_SYSTEM_POLL_SECONDS="1",
               TFSHIP_MODEL_CONFIG_POLL_SECONDS="1", TFSHIP_API_ROLLOUT_CACHE_TTL_S="1",
               TFSHIP_REGISTRY_URL=f"http://127.0.0.1:{api_port}",
               TFSHIP_KEY_FILE=str(state / "admin.key"), TFSHIP_MODEL_NAME=MODEL)
    up = tfship(env, "up")
    reconciler = None
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        server = f"http://127.0.0.1:{server_port}"
        command = [sys.executable, "-m", "service.delivery.reconciler",
                   "--registry", env["TFSHIP_REGISTRY_URL"], "--key-file", env["TFSHIP_KEY_FILE"],
                   "--model-config-file", str(state / "models.config"), "--model-server", server,
                   "--interval", "0.3", "--unload-grace-seconds", str(GRACE_S)]
        once = subprocess.run(command + ["--once", "--timeout", "60"], env=env,
                              capture_output=True, text=True, timeout=90)
        with open(base / "reconciler.log", "w") as log:
            reconciler = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        yield {"env": env, "api": env["TFSHIP_REGISTRY_URL"], "server": server, "once": once,
               "state": state, "models": base / "models" / MODEL, "log": base / "reconciler.log",
               "admin": (state / "admin.key").read_text().strip(),
               "predictor": (state / "predictor.key").read_text().strip()}
    finally:
        if reconciler is not None:
            reconciler.terminate()
            reconciler.wait(timeout=10)
        tfship(env, "down", timeout=60)


def registry(stack, method, path, headers=(), **kwargs):
    return requests.request(method, f"{stack['api']}/api/v1/models/{MODEL}{path}", timeout=10,
                            headers={"Authorization": f"Bearer {stack['admin']}", **dict(headers)},
                            **kwargs)


def label(stack, name):
    answer = requests.get(f"{stack['server']}/v1/models/{MODEL}/labels/{name}", timeout=5)
    return int(answer.json()["model_version_status"][0]["version"]) if answer.ok else None


def states(stack):
    answer = requests.get(f"{stack['server']}/v1/models/{MODEL}", timeout=5).json()
    return {int(v["version"]): v["state"] for v in answer["model_version_status"]}


class Traffic:
    """A client predicting through the gateway, one request at a time, with random routing keys."""

    def __init__(self, stack):
        self.url = f"{stack['api']}/api/v1/models/{MODEL}:predict"
        self.headers = {"Authorization": f"Bearer {stack['predictor']}",
                        "Content-Type": "application/json"}
        self.answers, self.stop = [], threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(2)]

    def _run(self):
        session = requests.Session()
        while not self.stop.is_set():
            key = f"client-{random.randrange(10 ** 9)}"
            body = json.dumps({"instances": [random.choice(EXAMPLES)]})
            try:
                answer = session.post(self.url, data=body, timeout=10,
                                      headers={**self.headers, "X-Routing-Key": key})
                self.answers.append((time.monotonic(), answer.status_code,
                                     answer.headers.get("X-Model-Version"),
                                     answer.headers.get("X-Model-Label"), answer.text[:200]))
            except requests.RequestException as error:
                self.answers.append((time.monotonic(), 0, None, None, repr(error)))

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=15)

    def failures(self):
        return [a for a in self.answers if a[1] != 200]

    def served(self):
        return {(a[2], a[3]) for a in self.answers if a[1] == 200}


def test_the_reconciler_takes_over_and_unloads_the_unnamed_version(stack):
    assert stack["once"].returncode == 0, stack["once"].stderr
    [entry] = model_config.read(stack["state"] / "models.config")
    assert entry.versions == (2,) and entry.labels == {"stable": 2}
    assert label(stack, "stable") == 2
    # `tfship up` loaded every version on disk; version 1 is named by nothing, so it goes.
    wait_for(lambda: states(stack)[1] == "END", 10, "version 1 is unloaded")


def test_a_good_canary_is_promoted_with_zero_failed_requests(stack):
    with Traffic(stack) as traffic:
        result = rollout(stack, "start", "--version", "1", "--steps", "50,100",
                         "--step-wait", "2", "--model-server", stack["server"],
                         "--load-timeout", "60", *ANALYSIS(stack))
        assert result.returncode == 0, result.stdout + result.stderr + stack["log"].read_text()
        wait_for(lambda: (label(stack, "stable"), label(stack, "previous")) == (1, 2), 10,
                 "the model server's labels follow the promotion")
        time.sleep(0.5)
    state = registry(stack, "GET", "/rollout").json()
    assert (state["stable"], state["canary"], state["previous"]) == (1, None, 2)
    assert traffic.failures() == []
    assert len(traffic.answers) > 50
    assert {("1", "canary"), ("2", "stable"), ("1", "stable")} <= traffic.served()
    history = registry(stack, "GET", "/rollout/history").json()["items"]
    assert [e["step"] for e in history[:4]] == ["promote", "100%", "50%", "load"]
    assert all(e["actor"].startswith("bootstrap-admin (") for e in history[:4])
    assert history[3]["measurements"] == {"breaking_changes": []}
    judged = history[0]["measurements"]  # the 100% step's, kept with the promotion
    assert judged["canary"]["version"] == 1 and judged["canary"]["calls"] > 0
    assert judged["canary"]["error_ratio"] == 0.0
    assert history[1]["measurements"]["psi"] < 0.25  # the 50% step's, kept with the next


def test_rollback_reaches_every_answer_within_3_seconds(stack):
    assert label(stack, "stable") == 1
    started = time.monotonic()
    result = rollout(stack, "rollback", "--reason", "test rollback")
    assert result.returncode == 0, result.stderr
    headers = {"Authorization": f"Bearer {stack['predictor']}"}

    def rolled_back():
        answer = requests.post(f"{stack['api']}/api/v1/models/{MODEL}:predict", timeout=5,
                               json={"instances": EXAMPLES[:1]}, headers=headers)
        return answer.headers.get("X-Model-Version") == "2" and label(stack, "stable") == 2

    wait_for(rolled_back, 10, "the rollback reaches the gateway and the model server")
    elapsed = time.monotonic() - started
    assert elapsed < 3.0, f"rollback took {elapsed:.2f} s"
    assert states(stack)[1] == "AVAILABLE"  # nothing was redeployed: 1 stays as previous
    history = registry(stack, "GET", "/rollout/history").json()["items"]
    assert (history[0]["step"], history[0]["reason"], history[0]["stable"]) == (
        "rollback", "test rollback", 2)


def register_copy(stack, version, change=None):
    """Register version with version 2's registry record (its schema changed by change)."""
    body = registry(stack, "GET", "/versions/2").json()
    schema = body["input_schema"]
    if change:
        change(schema)
    answer = registry(stack, "POST", "/versions", json={
        "version": version, "artifact_uri": f"file://{stack['models']}/{version}",
        "input_schema": schema, "feature_statistics": body["feature_statistics"]})
    assert answer.status_code == 201, answer.text


def fallbacks(stack, version):
    metrics = requests.get(f"{stack['api']}/metrics", timeout=5).text
    return sum(float(line.split()[-1]) for line in metrics.splitlines()
               if line.startswith("tfship_canary_fallbacks_total{")
               and f'version="{version}"' in line)


def test_a_failing_canary_costs_callers_nothing_and_is_rolled_back_automatically(stack):
    broken = stack["models"] / "3"
    shutil.copytree(stack["models"] / "2", broken)
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    register_copy(stack, 3)
    with Traffic(stack) as traffic:
        # Not waiting for the load: the canary label never appears, every canary call fails.
        result = rollout(stack, "start", "--version", "3", "--steps", "50,100",
                         "--step-wait", "1.5", *ANALYSIS(stack))
    assert result.returncode == 1
    # The measured canary error ratio varies between runs (0.4-1.0 seen; see the note on issue 9):
    # what must hold is that it breached the SLO's limit and triggered the rollback.
    ratio = re.search(r"automatic rollback at 50%: canary error ratio ([0-9.]+) > 0\.01", result.stderr)
    assert ratio and float(ratio.group(1)) > 0.01, result.stderr
    assert traffic.failures() == []
    assert traffic.served() == {("2", "stable")}
    assert fallbacks(stack, 3) > 0
    state = registry(stack, "GET", "/rollout").json()
    assert (state["stable"], state["canary"], state["canary_weight"]) == (2, None, 0.0)
    history = registry(stack, "GET", "/rollout/history").json()["items"]
    assert history[0]["step"] == "abort" and history[0]["measurements"]["canary"]["calls"] > 0

    # Waiting for the load, `rollout start` aborts a canary that never becomes AVAILABLE.
    result = rollout(stack, "start", "--version", "3", "--steps", "100", "--step-wait", "0",
                     "--model-server", stack["server"], "--load-timeout", "2")
    assert result.returncode == 1 and "never became AVAILABLE" in result.stderr
    assert states(stack).get(3) == "END"
    history = registry(stack, "GET", "/rollout/history").json()["items"]
    assert history[0]["step"] == "abort" and "not AVAILABLE" in history[0]["reason"]


def save_wrong_model(path, input_schema):
    """A SavedModel with the penguins' signature that answers Adelie for every row (200 OK)."""
    import tensorflow as tf

    names = sorted(input_schema["inputs"])
    specs = [tf.TensorSpec([None], tf.as_dtype(input_schema["inputs"][n]["dtype"]), name=n)
             for n in names]

    class AlwaysAdelie(tf.Module):
        @tf.function(input_signature=specs)
        def serve(self, *columns):
            rows = tf.shape(columns[0])[0]
            return {"probabilities": tf.tile([[1.0, 0.0, 0.0]], [rows, 1]),
                    "class_id": tf.zeros([rows], tf.int64),
                    "class_name": tf.fill([rows], "Adelie")}

    module = AlwaysAdelie()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


def test_a_canary_with_wrong_predictions_is_rolled_back_automatically(stack):
    schema = registry(stack, "GET", "/versions/2").json()["input_schema"]
    save_wrong_model(stack["models"] / "5", schema)
    register_copy(stack, 5)
    with Traffic(stack) as traffic:
        result = rollout(stack, "start", "--version", "5", "--steps", "50,100",
                         "--step-wait", "3", "--model-server", stack["server"],
                         "--load-timeout", "60", *ANALYSIS(stack))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "automatic rollback at 50%: predicted classes differ" in result.stderr
    assert traffic.failures() == []
    assert ("5", "canary") in traffic.served()
    history = registry(stack, "GET", "/rollout/history").json()["items"]
    assert history[0]["step"] == "abort" and history[0]["measurements"]["psi"] > 0.25
    assert set(history[0]["measurements"]["canary"]["classes"]) == {"Adelie"}
    assert registry(stack, "GET", "/rollout").json()["canary"] is None


def test_a_breaking_schema_is_refused_unless_forced(stack):
    register_copy(stack, 4, lambda s: s["inputs"]["island"]["categories"].remove("Dream"))
    before = registry(stack, "GET", "/rollout/history").json()["total"]
    refused = rollout(stack, "start", "--version", "4", "--step-wait", "0")
    assert refused.returncode == 1
    assert "categories removed: ['Dream']" in refused.stderr and "--force" in refused.stderr
    assert registry(stack, "GET", "/rollout").json()["canary"] is None
    assert registry(stack, "GET", "/rollout/history").json()["total"] == before
    status = rollout(stack, "status")
    assert status.returncode == 0 and "stable 2" in status.stdout and "rollback" in status.stdout


def test_a_crashed_driver_resumes_from_the_registry(stack):
    state = registry(stack, "GET", "/rollout")
    assert (state.json()["stable"], state.json()["previous"]) == (2, 1)
    # As if a driver had set the 50% step and crashed: progress lives in the registry.
    answer = registry(stack, "PUT", "/rollout", headers={"If-Match": state.headers["ETag"]},
                      json={"stable": 2, "canary": 1, "canary_weight": 0.5, "step": "50%"})
    assert answer.status_code == 200, answer.text
    resumed = rollout(stack, "start", "--version", "1", "--steps", "5,50,100", "--step-wait",
                      "0.5", "--no-promote", "--model-server", stack["server"])
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming the canary of version 1 at 50%" in resumed.stdout
    steps = [e["step"] for e in registry(stack, "GET", "/rollout/history").json()["items"][:2]]
    assert steps == ["100%", "50%"]  # 5% was not replayed
    assert rollout(stack, "promote").returncode == 0
    state = registry(stack, "GET", "/rollout").json()
    assert (state["stable"], state["canary"], state["previous"]) == (1, None, 2)
