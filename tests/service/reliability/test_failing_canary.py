"""A failing canary behind real gunicorn workers: callers see only stable's answers, the canary's
circuit opens without touching stable's, and the metrics the rollout analysis reads say every
canary call failed while every request was stable's success.

A real HTTP server in a thread stands in for TF Serving and fails only the canary's label (500,
or 400 as for a label the model server does not have yet) and its pinned version. Real gunicorn
(2 workers x 4 threads), concurrent clients. Budget: ~15 s alone (two API starts, one per
case); 41 s measured at load 10 with other suites running.
"""
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from service.delivery import analysis
from tests.json_server import JsonServer
from tests.service.reliability.conftest import bearer
from tests.service.reliability.stores import registry_with_keys

SCHEMA = {"inputs": {"x": {"dtype": "float32", "shape": [-1], "kind": "numeric",
                           "missing": "NaN"}}, "classes": ["a", "b"]}
BODY = {"instances": [{"x": 1.0}]}
STABLE, CANARY = 1, 2
BREAKER_FAILURES = 3


class CanaryFailsServer(JsonServer):
    """Answers stable's version with class "a"; the canary's version (and label) with ``status``."""

    def __init__(self, status):
        self.status, self.paths = status, []
        super().__init__(self._predict)

    def _predict(self, method, path, headers, body):
        self.paths.append(path)
        if "/labels/canary:" in path or f"/versions/{CANARY}:" in path:
            return self.status, {"error": "Unrecognized servable version label: canary"
                                 if self.status == 400 else "canary exploded"}
        return 200, {"predictions": [{"class_id": 0, "class_name": "a"}]}


@pytest.fixture(params=[500, 400], ids=["canary-500", "canary-not-loaded-400"])
def canary_server(request):
    server = CanaryFailsServer(request.param)
    yield server
    server.close()


def test_a_failing_canary_costs_callers_nothing_and_counts_against_the_canary(
        tmp_path, start_api, canary_server):
    settings, keys = registry_with_keys(tmp_path)
    api = start_api({**settings, "MODEL_SERVER_URL": canary_server.url, "WORKERS": 2,
                     "THREADS": 4, "RATELIMIT_ENABLED": "false",
                     "MODEL_SERVER_BREAKER_FAILURES": BREAKER_FAILURES,
                     "MODEL_SERVER_BREAKER_RESET_S": 30}, workers=2)
    admin = bearer(keys["admin"])
    assert requests.post(f"{api.url}/api/v1/models", json={"name": "tiny"}, headers=admin,
                         timeout=10).status_code == 201
    for version in (STABLE, CANARY):
        assert requests.post(f"{api.url}/api/v1/models/tiny/versions", headers=admin, timeout=10,
                             json={"version": version, "input_schema": SCHEMA,
                                   "artifact_uri": f"file:///nowhere/tiny/{version}"}
                             ).status_code == 201
    assert requests.put(f"{api.url}/api/v1/models/tiny/rollout", headers=admin, timeout=10, json={
        "stable": STABLE, "canary": CANARY, "canary_weight": 0.5}).status_code == 200
    before = analysis.snapshot([f"{api.url}/metrics"])

    def call(index):
        with requests.post(f"{api.url}/api/v1/models/tiny:predict", json=BODY, timeout=10,
                           headers={**bearer(keys["predictor"]),
                                    "X-Routing-Key": f"caller-{index}"}) as answer:
            return answer.status_code, answer.headers.get("X-Model-Version")

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(call, range(120)))
    assert set(answers) == {(200, str(STABLE))}, "callers only ever see stable's answers"

    after = analysis.snapshot([f"{api.url}/metrics"])
    measured = analysis.measure(before, after, "tiny", STABLE, CANARY)
    canary, stable = measured["canary"], measured["stable"]
    assert canary["calls"] > 0 and canary["failed_calls"] == canary["calls"], measured
    assert canary["error_ratio"] == 1.0, "every canary call failed, and is counted as failed"
    assert stable["failed_calls"] == 0 and stable["calls"] == 120, measured
    served = [(labels["version"], labels["code"], value) for name, labels, value in
              _samples(api.url) if name == "tfship_http_requests_total" and labels["model"] == "tiny"]
    assert {(version, code) for version, code, _ in served} == {(str(STABLE), "200")}, served
    assert sum(value for *_, value in served) == 120, "each request counted once, as stable's"
    if canary_server.status == 500:
        # The canary's own breaker opened: later canary calls failed fast, unsent, and count as
        # the canary's failures (outcome circuit_open); stable's calls never met an open circuit.
        outcomes = {(labels["version"], labels["outcome"]) for name, labels, _ in _samples(api.url)
                    if name == "tfship_upstream_requests_total" and labels["model"] == "tiny"}
        assert (str(CANARY), "circuit_open") in outcomes, outcomes
        assert (str(STABLE), "circuit_open") not in outcomes, outcomes
        sent = canary_server.paths.count(f"/v1/models/tiny/versions/{CANARY}:predict")
        assert sent < canary["calls"], (sent, canary["calls"])

    # A version pinned in the URL that fails opens only its own circuit, never stable's.
    pinned = [requests.post(f"{api.url}/api/v1/models/tiny/versions/{CANARY}:predict", json=BODY,
                            headers=bearer(keys["predictor"]), timeout=10).status_code
              for _ in range(4 * BREAKER_FAILURES)]
    assert all(code != 200 for code in pinned)
    assert call(0) == (200, str(STABLE))


def _samples(api_url):
    """Return (sample name, labels, value) of every sample the API's /metrics exposes."""
    text = requests.get(f"{api_url}/metrics", timeout=10).text
    return [(sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text) for sample in family.samples]
