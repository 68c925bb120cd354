"""Prediction traffic: a mix of batch sizes, payloads drawn from the stable version's schema.

Run on its own: locust -f loadtests/predict.py --host http://127.0.0.1:8080 --model penguins
(the predictor's key in $TFSHIP_PREDICT_API_KEY or --predict-api-key-file).
"""
import random

from gevent.lock import Semaphore
from locust import constant_throughput, task

from loadtests import measurements, options, payloads
from loadtests.base import API, TfshipUser
from loadtests.protocol import ROUTING_KEY_HEADER, VERSION_HEADER

_fetching = Semaphore()  # the first user reads the schema; the others wait for it


class PredictionUser(TfshipUser):
    """A client of the gateway; one request per second, sticky to no version (a fresh routing key each)."""

    wait_time = constant_throughput(1)
    weight = 10
    schema = None

    def on_start(self):
        super().on_start()
        self.rng = random.Random()
        # Registry reads need the reader role, which a predictor key lacks (predictor stands apart).
        self.registry_auth = super().authorization()

    def authorization(self):
        """The predictor's key (--predict-api-key-file, else $TFSHIP_PREDICT_API_KEY), else the registry key."""
        key = options.read_key(getattr(self.environment.parsed_options, "predict_api_key_file", ""),
                               "TFSHIP_PREDICT_API_KEY")
        return {"Authorization": f"Bearer {key}"} if key else super().authorization()

    @task(6)
    def single_row(self):
        self.predict(1)

    @task(3)
    def small_batch(self):
        self.predict(8)

    @task(1)
    def large_batch(self):
        self.predict(32)

    def predict(self, batch_size):
        """POST a batch and check one well-formed prediction per instance, from a named version."""
        if self.schema is None and not self.fetch_schema():
            return
        rows = payloads.draw_rows(self.schema["input_schema"], self.schema["feature_statistics"],
                                  batch_size, self.rng)
        classes = self.schema["input_schema"].get("classes") or []

        def check(body, response):
            if not response.headers.get(VERSION_HEADER):
                return "the answer does not say which version served it (X-Model-Version)"
            return payloads.prediction_problem(body, rows, classes)

        self.request_json("POST", f"{API}/{self.model}:predict", f"{API}/[model]:predict batch={batch_size}",
                          check=check, data=payloads.request_body(rows),
                          headers={"Content-Type": "application/json",
                                   ROUTING_KEY_HEADER: f"{self.rng.getrandbits(64):016x}"})

    def fetch_schema(self):
        """Read the rollout and the stable version's schema from the registry (once per process)."""
        with _fetching:
            return PredictionUser.schema is not None or self._fetch_schema()

    def _fetch_schema(self):
        _, rollout = self.get_json(
            f"{API}/{self.model}/rollout", f"{API}/[model]/rollout", headers=self.registry_auth,
            check=lambda body, _r: None if body.get("stable") else "no stable version")
        if rollout is None:
            return False
        measurements.current().rollout = rollout
        _, version = self.get_json(
            f"{API}/{self.model}/versions/{rollout['stable']}", f"{API}/[model]/versions/[version]",
            headers=self.registry_auth,
            check=lambda body, _r: None if (body.get("input_schema") or {}).get("inputs") else "no input_schema")
        if version is None:
            return False
        PredictionUser.schema = version
        return True
