"""The gateway retries a failed canary call on stable: callers see no error, the metric counts it.

A real HTTP server stands in for TF Serving and fails only the canary's version (the gateway
calls versions by number), as a broken or not-yet-loaded canary does. (Tests the fallback in service/gateway.py.) Budget: ~3 s.
"""
import pytest
from prometheus_client import REGISTRY

from tests.json_server import JsonServer

SCHEMA = {"inputs": {"x": {"dtype": "float32", "shape": [-1], "kind": "numeric",
                           "missing": "NaN"}}}
BODY = {"instances": [{"x": 1.0}]}


VERSIONS = {"stable": "1", "canary": "2"}
STABLE_PATH, CANARY_PATH = "/v1/models/tiny/versions/1:predict", "/v1/models/tiny/versions/2:predict"


class VersionServer(JsonServer):
    """Answers predictions per version, set by role: ``answers["stable"|"canary"] = (status,
    body)`` (stable is version 1, canary version 2); records the paths."""

    def __init__(self):
        self.answers = {"stable": (200, {"predictions": [{"class_name": "a"}]})}
        self.paths = []
        super().__init__(self._predict)

    def _predict(self, method, path, headers, body):
        self.paths.append(path)
        version = path.split("/versions/")[-1].split(":")[0]
        role = {number: role for role, number in VERSIONS.items()}.get(version)
        return self.answers.get(role, (404, {
            "error": f"Servable not found for request: Specific(tiny, {version})"}))


@pytest.fixture
def version_server():
    server = VersionServer()
    yield server
    server.close()


@pytest.fixture
def canary_app(app, client, keys, bearer, version_server):
    """Model 'tiny': version 1 stable, version 2 canary taking all traffic."""
    app.config.update(MODEL_SERVER_URL=version_server.url, ROLLOUT_CACHE_TTL_S=0.0,
                      MODEL_SERVER_BREAKER_FAILURES=100)
    admin = bearer(keys["admin"])
    assert client.post("/api/v1/models", json={"name": "tiny"}, headers=admin).status_code == 201
    for version in (1, 2):
        assert client.post("/api/v1/models/tiny/versions", headers=admin, json={
            "version": version, "artifact_uri": f"file:///nowhere/tiny/{version}",
            "input_schema": SCHEMA}).status_code == 201
    assert client.put("/api/v1/models/tiny/rollout", headers=admin, json={
        "stable": 1, "canary": 2, "canary_weight": 1.0}).status_code == 200
    return app


def fallbacks(reason):
    return REGISTRY.get_sample_value("tfship_canary_fallbacks_total",
                                     {"model": "tiny", "version": "2", "reason": reason}) or 0.0


@pytest.mark.parametrize("canary_answer, reason", [
    (None, "client_error"),  # the canary version is not on the model server (not loaded yet)
    ((500, {"error": "boom"}), "server_error"),
    ((503, {"error": "overloaded"}), "server_error"),
])
def test_a_failed_canary_call_is_served_by_stable(canary_app, client, keys, bearer, version_server,
                                                  canary_answer, reason):
    if canary_answer is not None:
        version_server.answers["canary"] = canary_answer
    before = fallbacks(reason)
    for _ in range(3):
        answer = client.post("/api/v1/models/tiny:predict", json=BODY,
                             headers=bearer(keys["predictor"]))
        assert answer.status_code == 200, answer.get_json()
        assert answer.headers["X-Model-Version"] == "1"
        assert answer.headers["X-Model-Label"] == "stable"
    assert version_server.paths[-2:] == [CANARY_PATH, STABLE_PATH]
    assert fallbacks(reason) == before + 3
    served = REGISTRY.get_sample_value("tfship_http_requests_total", {
        "route": "/api/v1/models/<name>:predict", "method": "POST", "code": "200",
        "model": "tiny", "version": "1", "synthetic": "false"})
    assert served and served >= 3


def test_a_healthy_canary_serves_without_fallback(canary_app, client, keys, bearer, version_server):
    version_server.answers["canary"] = (200, {"predictions": [{"class_name": "b"}]})
    before = sum(fallbacks(r) for r in ("client_error", "server_error"))
    answer = client.post("/api/v1/models/tiny:predict", json=BODY,
                         headers=bearer(keys["predictor"]))
    assert answer.status_code == 200
    assert (answer.headers["X-Model-Version"], answer.headers["X-Model-Label"]) == ("2", "canary")
    assert version_server.paths == [CANARY_PATH]
    assert sum(fallbacks(r) for r in ("client_error", "server_error")) == before


def test_when_stable_fails_too_the_caller_gets_stables_error(canary_app, client, keys, bearer,
                                                             version_server):
    version_server.answers["canary"] = (500, {"error": "boom"})
    version_server.answers["stable"] = (500, {"error": "also boom"})
    answer = client.post("/api/v1/models/tiny:predict", json=BODY,
                         headers=bearer(keys["predictor"]))
    assert answer.status_code == 502
    assert answer.get_json()["error"]["code"] == "upstream_bad_response"
    assert len(version_server.paths) == 2


def test_a_pinned_version_never_falls_back(canary_app, client, keys, bearer, version_server):
    answer = client.post("/api/v1/models/tiny/versions/2:predict", json=BODY,
                         headers=bearer(keys["predictor"]))
    assert answer.status_code != 200 or version_server.paths == ["/v1/models/tiny/versions/2:predict"]
    assert len(version_server.paths) == 1
