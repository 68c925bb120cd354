"""A real local stack (`tfship up`: model server, API, reconciler) for rollout tests, and a client.

Shared by the rollout end-to-end and measured tests: the stack runs on free ports over a copy
of the session's trained models, with the fast settings live tests need (the gateway's rollout
cache TTL and the model server's config poll at 1 s, a reconciler pass every 0.3 s).
"""
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import pytest
import requests

from infra.local.demo import EXAMPLES
from tests.conftest import free_port

MODEL = "penguins"
# The per-key rate limit is raised: the traffic clients send as fast as the stack answers with one
# predictor key (~350 req/s here, past the default 20000 a minute within the rollback trials' minute;
# CI saw 429s). The limit itself is tested in tests/service/test_limits.py.
FAST_SETTINGS = {"TFSHIP_FILE_SYSTEM_POLL_SECONDS": "1", "TFSHIP_MODEL_CONFIG_POLL_SECONDS": "1",
                 "TFSHIP_API_ROLLOUT_CACHE_TTL_S": "1", "TFSHIP_RECONCILE_INTERVAL_SECONDS": "0.3",
                 "TFSHIP_API_RATELIMIT_PER_KEY": "1000000 per minute;100000 per second"}


def wait_for(check, timeout, message, interval=0.1):
    """Poll check() until it is truthy; fail the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s: {message}")


class LocalStack:
    """`tfship up` in base over a copy of models_base; its URLs, keys and commands."""

    def __init__(self, base, models_base, **settings):
        shutil.copytree(models_base, base / "models")
        self.state, self.models = base / "state", base / "models" / MODEL
        api_port, server_port = free_port(), free_port()
        self.api, self.server = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{server_port}"
        self.env = dict(os.environ, TFSHIP_STATE_DIR=str(self.state),
                        TFSHIP_MODELS_DIR=str(base / "models"),
                        TFSHIP_MODEL_SERVER_PORT=str(server_port), TFSHIP_API_PORT=str(api_port),
                        TFSHIP_MODEL_SERVER_GRPC_PORT=str(free_port()),
                        TFSHIP_PROMETHEUS_PORT=str(free_port()), TFSHIP_REGISTRY_URL=self.api,
                        TFSHIP_KEY_FILE=str(self.state / "admin.key"), TFSHIP_MODEL_NAME=MODEL,
                        **FAST_SETTINGS, **settings)
        self.up_result, self.up_seconds = None, None

    def tfship(self, *args, timeout=240):
        return subprocess.run([sys.executable, "-m", "tfship.cli", *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def up(self):
        started = time.monotonic()
        self.up_result = self.tfship("up")
        self.up_seconds = time.monotonic() - started
        assert self.up_result.returncode == 0, self.up_result.stdout + self.up_result.stderr
        self.admin = (self.state / "admin.key").read_text().strip()
        self.predictor = (self.state / "predictor.key").read_text().strip()
        return self

    def down(self):
        return self.tfship("down", timeout=90)

    def rollout(self, *args, timeout=120):
        """`tfship rollout ...` against this stack (registry, key and model from the env)."""
        return self.tfship("rollout", *args, timeout=timeout)

    @property
    def reconciler_log(self):
        return self.state / "logs" / "reconciler.log"

    def registry(self, method, path, headers=(), **kwargs):
        return requests.request(method, f"{self.api}/api/v1/models/{MODEL}{path}", timeout=10,
                                headers={"Authorization": f"Bearer {self.admin}", **dict(headers)},
                                **kwargs)

    def rollout_state(self):
        return self.registry("GET", "/rollout").json()

    def history_after(self, event_id):
        """The rollout transitions recorded after event_id, oldest first."""
        found, page = [], 1
        while True:
            body = self.registry("GET", f"/rollout/history?per_page=100&page={page}").json()
            newer = [e for e in body["items"] if e["id"] > event_id]
            found += newer
            if len(newer) < len(body["items"]) or not body["items"] or page * 100 >= body["total"]:
                return found[::-1]
            page += 1

    def last_event_id(self):
        items = self.registry("GET", "/rollout/history?per_page=1").json()["items"]
        return items[0]["id"] if items else 0

    def label(self, name):
        answer = requests.get(f"{self.server}/v1/models/{MODEL}/labels/{name}", timeout=5)
        return int(answer.json()["model_version_status"][0]["version"]) if answer.ok else None

    def states(self):
        answer = requests.get(f"{self.server}/v1/models/{MODEL}", timeout=5).json()
        return {int(v["version"]): v["state"] for v in answer["model_version_status"]}

    def register_copy(self, version, change=None):
        """Register version with version 2's registry record (its schema changed by change)."""
        body = self.registry("GET", "/versions/2").json()
        schema = body["input_schema"]
        if change:
            change(schema)
        answer = self.registry("POST", "/versions", json={
            "version": version, "artifact_uri": f"file://{self.models}/{version}",
            "input_schema": schema, "feature_statistics": body["feature_statistics"]})
        assert answer.status_code == 201, answer.text

    def direct_predictions(self, version, instances):
        """The probabilities version answers for instances, straight from the model server."""
        answer = requests.post(f"{self.server}/v1/models/{MODEL}/versions/{version}:predict",
                               data=json.dumps({"instances": instances}), timeout=10)
        assert answer.status_code == 200, answer.text
        return [row["probabilities"] for row in answer.json()["predictions"]]


@dataclass
class Answer:
    """One prediction as the client saw it (example: the index of the row it sent)."""

    sent: float  # time.monotonic()
    received: float  # time.monotonic()
    received_at: float  # time.time(), to compare with the registry's timestamps
    status: int
    version: str | None
    label: str | None
    example: int
    probabilities: list | None
    text: str


class ClientThreads:
    """Clients each sending one request at a time until stopped; every answer is kept.

    A subclass gives each client its state (``client_state(index)``) and sends one request
    (``send(session, state)``, returning what to keep).
    """

    def __init__(self, clients):
        self.answers, self.stop = [], threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(index,), daemon=True)
                        for index in range(clients)]

    def _run(self, index):
        session, state = requests.Session(), self.client_state(index)
        while not self.stop.is_set():
            self.answers.append(self.send(session, state))

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=15)

    def run_for(self, seconds):
        with self:
            time.sleep(seconds)
        return self


class Traffic(ClientThreads):
    """Clients predicting through the gateway, one request at a time each, with random routing
    keys (the split is sticky per key), until stopped. Every answer is kept."""

    def __init__(self, stack, threads=2, rows=EXAMPLES):
        self.url = f"{stack.api}/api/v1/models/{MODEL}:predict"
        self.headers = {"Authorization": f"Bearer {stack.predictor}",
                        "Content-Type": "application/json"}
        self.bodies = [json.dumps({"instances": [row]}) for row in rows]
        super().__init__(threads)

    def client_state(self, index):
        return random.Random()

    def send(self, session, chance):
        example = chance.randrange(len(self.bodies))
        headers = {**self.headers, "X-Routing-Key": f"client-{chance.getrandbits(64):x}"}
        sent = time.monotonic()
        try:
            answer = session.post(self.url, data=self.bodies[example], timeout=10,
                                  headers=headers)
        except requests.RequestException as error:
            return Answer(sent, time.monotonic(), time.time(), 0, None, None, example, None,
                          repr(error))
        received, received_at = time.monotonic(), time.time()
        try:
            probabilities = answer.json()["predictions"][0]["probabilities"]
        except (ValueError, KeyError, IndexError, TypeError):
            probabilities = None
        return Answer(sent, received, received_at, answer.status_code,
                      answer.headers.get("X-Model-Version"),
                      answer.headers.get("X-Model-Label"), example, probabilities,
                      answer.text[:200])

    def since(self, moment):
        return [a for a in list(self.answers) if a.received >= moment]

    def failures(self):
        return [a for a in self.answers if a.status != 200]

    def served(self):
        return {(a.version, a.label) for a in self.answers if a.status == 200}


def save_always_adelie(path, input_schema, *, sleep_us=0):
    """A SavedModel with the penguins' signature answering Adelie for every row (200 OK).

    With sleep_us it first sleeps that long (tf.data's sleep: no CPU), to make a slow shadow.
    """
    import tensorflow as tf
    from tensorflow.python.data.experimental.ops import testing

    names = sorted(input_schema["inputs"])
    specs = [tf.TensorSpec([None], tf.as_dtype(input_schema["inputs"][n]["dtype"]), name=n)
             for n in names]

    class AlwaysAdelie(tf.Module):
        @tf.function(input_signature=specs)
        def serve(self, *columns):
            rows = tf.shape(columns[0])[0]
            if sleep_us:
                rows = tf.data.Dataset.from_tensors(rows).apply(
                    testing.sleep(sleep_us)).get_single_element()
            return {"probabilities": tf.tile([[1.0, 0.0, 0.0]], [rows, 1]),
                    "class_id": tf.zeros([rows], tf.int64),
                    "class_name": tf.fill([rows], "Adelie")}

    module = AlwaysAdelie()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
