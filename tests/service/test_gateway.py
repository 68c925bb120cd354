"""The prediction gateway end to end: the API app (real SQLite registry, real keys) in front of the
real local model server serving two trained penguin versions.

Budget: under 90 s on 2 idle cores; nearly all of it is training the two versions once per
session (the root conftest's ``trained_models``, shared with the model suites) and starting,
then restarting, the model server (TensorFlow import and load). The tests themselves take ~3 s.
"""
import json
import math
import time

import pytest
import requests
import sqlalchemy as sa
from prometheus_client import REGISTRY
from sqlalchemy.orm import sessionmaker

from tests.service.gateway_conftest import (MODEL_NAME, fault_server, model_server,  # noqa: F401 (fixtures)
                              penguin_models)
from service import db, gateway

PREDICT = f"/api/v1/models/{MODEL_NAME}:predict"
ROUTE = "/api/v1/models/<name>:predict"
ROWS = json.loads('''{"instances": [
  {"island": "Torgersen", "sex": "male", "bill_length_mm": 39.1, "bill_depth_mm": 18.7,
   "flipper_length_mm": 181, "body_mass_g": 3750},
  {"island": "Dream", "sex": "female", "bill_length_mm": 46.5, "bill_depth_mm": 17.9,
   "flipper_length_mm": 192, "body_mass_g": 3500},
  {"island": "Biscoe", "sex": "", "bill_length_mm": NaN, "bill_depth_mm": 14.2,
   "flipper_length_mm": 217, "body_mass_g": 5000}]}''')


def bearer(key, **headers):
    return {"Authorization": f"Bearer {key}", **headers}


def sample(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def gateway_app(app, client, keys, model_server, penguin_models):
    """The API with penguins 1 (stable) and 2 (canary, weight 0) registered from their exports."""
    app.config.update(MODEL_SERVER_URL=model_server.url, ROLLOUT_CACHE_TTL_S=0.2)
    admin = bearer(keys["admin"])
    assert client.post("/api/v1/models", json={"name": MODEL_NAME}, headers=admin).status_code == 201
    for version, metadata in penguin_models[1].items():
        answer = client.post(f"/api/v1/models/{MODEL_NAME}/versions", headers=admin, json={
            "version": version, "artifact_uri": f"file://{penguin_models[0]}/{version}",
            "metrics": metadata["metrics"], "input_schema": metadata["input_schema"],
            "feature_statistics": metadata["feature_statistics"]})
        assert answer.status_code == 201, answer.get_json()
    set_rollout(client, keys, stable=1, canary=2, canary_weight=0.0)
    return app


def set_rollout(client, keys, **state):
    answer = client.put(f"/api/v1/models/{MODEL_NAME}/rollout", json=state,
                        headers=bearer(keys["deployer"]))
    assert answer.status_code == 200, answer.get_json()


def direct(model_server, path, body):
    answer = requests.post(f"{model_server.url}/v1/models/{MODEL_NAME}{path}:predict",
                           data=json.dumps(body), timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_predictions_equal_the_model_servers(gateway_app, client, keys, model_server):
    answer = client.post(PREDICT, json=ROWS, headers=bearer(keys["predictor"], **{
        "X-Request-ID": "gw-test-1"}))
    assert answer.status_code == 200, answer.get_json()
    assert answer.headers["X-Model-Version"] == "1" and answer.headers["X-Model-Label"] == "stable"
    assert answer.headers["X-Request-ID"] == "gw-test-1"
    assert answer.get_json() == direct(model_server, "/labels/stable", ROWS)
    assert [row["class_name"] for row in answer.get_json()["predictions"]] == [
        "Adelie", "Chinstrap", "Gentoo"]
    columns = {"inputs": {name: [row[name] for row in ROWS["instances"]]
                          for name in ROWS["instances"][0]}}
    answer = client.post(PREDICT, json=columns, headers=bearer(keys["predictor"]))
    assert answer.status_code == 200
    assert answer.get_json() == direct(model_server, "/labels/stable", columns)


def test_a_pinned_version_bypasses_the_split(gateway_app, client, keys, model_server):
    answer = client.post(f"/api/v1/models/{MODEL_NAME}/versions/2:predict", json=ROWS,
                         headers=bearer(keys["predictor"]))
    assert answer.status_code == 200
    assert answer.headers["X-Model-Version"] == "2" and "X-Model-Label" not in answer.headers
    assert answer.get_json() == direct(model_server, "/versions/2", ROWS)
    missing = client.post(f"/api/v1/models/{MODEL_NAME}/versions/9:predict", json=ROWS,
                          headers=bearer(keys["predictor"]))
    assert missing.status_code == 404 and missing.get_json()["error"]["field"] == "version"


def test_canary_split_is_sticky_per_routing_key(gateway_app, client, keys, model_server):
    set_rollout(client, keys, stable=1, canary=2, canary_weight=0.5)
    served = {}
    for n in range(24):
        headers = bearer(keys["predictor"], **{"X-Routing-Key": f"user-{n}"})
        versions = {client.post(PREDICT, json={"instances": ROWS["instances"][:1]},
                                headers=headers).headers["X-Model-Version"] for _ in range(2)}
        assert len(versions) == 1, "one routing key, one version"
        served[n] = versions.pop()
    assert set(served.values()) == {"1", "2"}
    canary_key = next(n for n, version in served.items() if version == "2")
    answer = client.post(PREDICT, json=ROWS, headers=bearer(
        keys["predictor"], **{"X-Routing-Key": f"user-{canary_key}"}))
    assert answer.headers["X-Model-Label"] == "canary"
    assert answer.get_json() == direct(model_server, "/labels/canary", ROWS)


def test_bad_bodies_and_callers_are_refused_before_the_model_server(gateway_app, client, keys):
    bad = {"instances": [{**ROWS["instances"][0], "island": "Atlantis"}]}
    answer = client.post(PREDICT, json=bad, headers=bearer(keys["predictor"]))
    assert answer.status_code == 400
    error = answer.get_json()["error"]
    assert error["field"] == "instances.0.island" and "Atlantis" in error["message"]
    too_many = {"instances": ROWS["instances"] * 400}
    assert client.post(PREDICT, json=too_many, headers=bearer(keys["predictor"])).status_code == 400
    assert client.post(PREDICT, json=ROWS).status_code == 401
    assert client.post(PREDICT, json=ROWS, headers=bearer(keys["reader"])).status_code == 403
    unknown = client.post("/api/v1/models/nope:predict", json=ROWS, headers=bearer(keys["predictor"]))
    assert unknown.status_code == 404


def test_metrics_per_model_version(gateway_app, client, keys):
    version = dict(model=MODEL_NAME, version="1")
    http = dict(route=ROUTE, method="POST", code="200", synthetic="true", **version)
    before = {
        "rows": sample("tfship_prediction_rows_total", **version),
        "classes": sum(sample("tfship_predicted_class_total", class_name=name, **version)
                       for name in ("Adelie", "Chinstrap", "Gentoo")),
        "gentoo": sample("tfship_predicted_class_total", class_name="Gentoo", **version),
        "range": sample("tfship_input_out_of_range_total", feature="bill_length_mm", **version),
        "http": sample("tfship_http_requests_total", **http),
        "upstream": sample("tfship_upstream_requests_total", outcome="ok", **version),
    }
    odd = {"instances": [*ROWS["instances"], {**ROWS["instances"][0], "bill_length_mm": 500.0}]}
    answer = client.post(PREDICT, json=odd, headers=bearer(keys["predictor"], **{
        "X-Tfship-Synthetic": "1"}))
    assert answer.status_code == 200
    assert sample("tfship_prediction_rows_total", **version) == before["rows"] + 4
    assert sum(sample("tfship_predicted_class_total", class_name=name, **version)
               for name in ("Adelie", "Chinstrap", "Gentoo")) == before["classes"] + 4
    assert sample("tfship_predicted_class_total", class_name="Gentoo", **version) >= before["gentoo"] + 1
    assert sample("tfship_input_out_of_range_total", feature="bill_length_mm",
                  **version) == before["range"] + 1
    assert sample("tfship_http_requests_total", **http) == before["http"] + 1
    assert sample("tfship_upstream_requests_total", outcome="ok", **version) == before["upstream"] + 1


def test_readiness_reports_the_versions_the_model_server_has_loaded(gateway_app, client):
    answer = client.get("/readyz")
    assert answer.status_code == 200
    state = answer.get_json()["dependencies"]["model_server"]
    assert state["status"] == "ok"
    assert state["models"] == {MODEL_NAME: {"available_versions": [1, 2]}}
    assert sample("tfship_model_versions_available", model=MODEL_NAME) == 2
    signature = gateway.state(gateway_app).client.model_metadata(MODEL_NAME)["metadata"]
    inputs = signature["signature_def"]["signature_def"]["serving_default"]["inputs"]
    assert set(inputs) == {"island", "sex", "bill_length_mm", "bill_depth_mm",
                           "flipper_length_mm", "body_mass_g"}


def test_a_registry_outage_does_not_stop_predictions(gateway_app, client, keys):
    headers = bearer(keys["predictor"])
    assert client.post(PREDICT, json=ROWS, headers=headers).status_code == 200
    healthy = gateway_app.extensions[db.EXTENSION]
    gateway_app.extensions[db.EXTENSION] = sessionmaker(
        sa.create_engine("sqlite:////proc/no-such-folder/registry.sqlite3"))
    try:
        time.sleep(0.25)  # past the rollout cache's TTL: the next call tries the registry
        answer = client.post(PREDICT, json=ROWS, headers=headers)
        assert answer.status_code == 200 and answer.headers["X-Model-Version"] == "1"
        uncached = client.post(f"/api/v1/models/{MODEL_NAME}/versions/2:predict", json=ROWS,
                               headers=headers)
        assert uncached.status_code == 503 and "Retry-After" in uncached.headers
        assert uncached.get_json()["error"]["code"] == "registry_unavailable"
    finally:
        gateway_app.extensions[db.EXTENSION] = healthy


def test_model_server_down_gives_503_then_predictions_recover(gateway_app, client, keys,
                                                               model_server):
    headers = bearer(keys["predictor"])
    assert client.post(PREDICT, json=ROWS, headers=headers).status_code == 200
    model_server.stop()
    try:
        started = time.monotonic()
        answer = client.post(PREDICT, json=ROWS, headers=headers)
        assert time.monotonic() - started < gateway_app.config["MODEL_SERVER_READ_TIMEOUT_S"]
        assert answer.status_code == 503, answer.get_json()
        assert answer.get_json()["error"]["code"] == "upstream_unavailable"
        assert int(answer.headers["Retry-After"]) >= 1
        assert gateway.readiness(gateway_app, [MODEL_NAME])["status"] == "down"
        assert sample("tfship_model_versions_available", model=MODEL_NAME) == 0
    finally:
        model_server.start()
    answer = client.post(PREDICT, json=ROWS, headers=headers)
    assert answer.status_code == 200, "recovered without restarting the API"
    assert not any(math.isnan(p) for row in answer.get_json()["predictions"]
                   for p in row["probabilities"])


TINY_SCHEMA = {"inputs": {"x": {"dtype": "float32", "shape": [-1], "kind": "numeric",
                                "missing": "NaN"}}}


@pytest.fixture
def faulty_app(app, client, keys, fault_server):
    """The API in front of a fault-injecting server, with model 'tiny' version 1 stable."""
    app.config.update(MODEL_SERVER_URL=fault_server.url, MODEL_SERVER_READ_TIMEOUT_S=0.3,
                      MODEL_SERVER_BREAKER_FAILURES=3, MODEL_SERVER_BREAKER_RESET_S=30)
    admin = bearer(keys["admin"])
    assert client.post("/api/v1/models", json={"name": "tiny"}, headers=admin).status_code == 201
    assert client.post("/api/v1/models/tiny/versions", headers=admin, json={
        "version": 1, "artifact_uri": "file:///nowhere/tiny/1",
        "input_schema": TINY_SCHEMA}).status_code == 201
    answer = client.put("/api/v1/models/tiny/rollout", json={"stable": 1},
                        headers=bearer(keys["deployer"]))
    assert answer.status_code == 200
    return app


def test_upstream_failures_are_json_502_503_504_with_retry_after(faulty_app, client, keys,
                                                                   fault_server):
    headers = bearer(keys["predictor"], **{"X-Request-ID": "fwd-me"})
    body = {"instances": [{"x": 1.0}]}
    answer = client.post("/api/v1/models/tiny:predict", json=body, headers=headers)
    assert answer.status_code == 200 and answer.headers["X-Model-Version"] == "1"
    assert fault_server.hits[-1][2]["X-Request-ID"] == "fwd-me"
    assert fault_server.hits[-1][1] == "/v1/models/tiny/versions/1:predict"  # by version
    for mode, status, code in [(("status", 400), 400, "model_server_rejected"),
                               (("status", 500), 502, "upstream_bad_response"),
                               (("sleep", 1.0), 504, "upstream_timeout"),
                               ("garbage", 502, "upstream_bad_response"),
                               ("ok", 503, "circuit_open")]:
        fault_server.mode = mode
        answer = client.post("/api/v1/models/tiny:predict", json=body, headers=headers)
        assert answer.status_code == status, (mode, answer.get_json())
        assert answer.get_json()["error"]["code"] == code
        assert status == 400 or int(answer.headers["Retry-After"]) >= 1
    assert "injected failure" not in json.dumps(answer.get_json())


@pytest.mark.parametrize("raw, forwarded", [
    # A duplicate key: validation saw the last value; TF Serving's parser keeps the first, so
    # the raw text must never reach it (the body is written again from what was validated).
    (b'{"instances": [{"x": "not a number", "x": 1.5}]}', {"instances": [{"x": 1.5}]}),
    # NaN (the schema's missing token) survives the fast codec: it is written as NaN, not null.
    (b'{"instances": [{"x": NaN}, {"x": 2}]}', {"instances": [{"x": math.nan}, {"x": 2}]}),
])
def test_the_validated_body_is_what_reaches_the_model_server(faulty_app, client, keys,
                                                             fault_server, raw, forwarded):
    answer = client.post("/api/v1/models/tiny:predict", data=raw, headers=bearer(
        keys["predictor"], **{"Content-Type": "application/json"}))
    assert answer.status_code == 200, answer.get_json()
    sent = fault_server.hits[-1][4]
    assert b"not a number" not in sent
    received = json.loads(sent)  # the json module reads NaN back; strict JSON readers would not
    assert json.dumps(received) == json.dumps(forwarded)


def test_a_failing_pinned_version_never_opens_the_circuit_of_stable(faulty_app, client, keys,
                                                                   fault_server):
    """Breakers are per version: one failing version blocks only itself."""
    assert client.post("/api/v1/models/tiny/versions", headers=bearer(keys["admin"]), json={
        "version": 2, "artifact_uri": "file:///nowhere/tiny/2",
        "input_schema": TINY_SCHEMA}).status_code == 201
    body = {"instances": [{"x": 1.0}]}
    headers = bearer(keys["predictor"])
    fault_server.mode = ("status", 500)
    codes = [client.post("/api/v1/models/tiny/versions/2:predict", json=body,
                         headers=headers).get_json()["error"]["code"] for _ in range(4)]
    assert codes == ["upstream_bad_response"] * 3 + ["circuit_open"]
    fault_server.mode = "ok"
    answer = client.post("/api/v1/models/tiny:predict", json=body, headers=headers)
    assert answer.status_code == 200, "stable's (version 1's) own circuit is closed"
    pinned = client.post("/api/v1/models/tiny/versions/2:predict", json=body, headers=headers)
    assert pinned.get_json()["error"]["code"] == "circuit_open", "the pinned target stays open"
