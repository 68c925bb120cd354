"""Fault injection for the load-test gate: off by default, predictions only, clear 503s.

Budget: < 2 s (in-process; the upstream is a real HTTP server from gateway_conftest).
"""
import time

import pytest

from service import faults
from tests.service.gateway_conftest import fault_server  # noqa: F401 (fixture)


@pytest.fixture
def serving_model(app, keys, bearer, version_body):
    client, deployer = app.test_client(), bearer(keys["deployer"])
    assert client.post("/api/v1/models", json={"name": "faulty"}, headers=deployer).status_code == 201
    assert client.post("/api/v1/models/faulty/versions", json=version_body(1),
                       headers=deployer).status_code == 201
    etag = client.get("/api/v1/models/faulty/rollout", headers=deployer).headers["ETag"]
    assert client.put("/api/v1/models/faulty/rollout", json={"stable": 1},
                      headers={**deployer, "If-Match": etag}).status_code == 200
    return "faulty"


ROW = {"island": "Biscoe", "sex": "male", "bill_length_mm": 45.0, "bill_depth_mm": 15.0,
       "flipper_length_mm": 210.0, "body_mass_g": 5000.0}


def predict(app, key, bearer):
    return app.test_client().post("/api/v1/models/faulty:predict", json={"instances": [ROW]},
                                  headers=bearer(key))


def test_faults_are_off_by_default(app):
    assert faults.check_settings(app.config) == (0.0, 0.0)


@pytest.mark.parametrize("name,value", [("FAULT_LATENCY_MS", -1), ("FAULT_ERROR_RATE", 1.5)])
def test_out_of_range_settings_are_refused(name, value):
    with pytest.raises(ValueError, match=name):
        faults.check_settings({"FAULT_LATENCY_MS": 0, "FAULT_ERROR_RATE": 0, name: value})


def test_error_rate_one_fails_every_prediction_with_a_clear_503(
        app_factory, sqlite_url, serving_model, fault_server, keys_for, bearer):  # noqa: F811
    app = app_factory(sqlite_url, FAULT_ERROR_RATE=1.0, MODEL_SERVER_URL=fault_server.url)
    role_keys = keys_for(app)
    answer = predict(app, role_keys["predictor"], bearer)
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    error = answer.get_json()["error"]
    assert error["code"] == "injected_fault" and "injected fault" in error["message"]
    assert not fault_server.hits, "an injected fault must not be forwarded"
    # Not the registry, and not callers without a key.
    assert app.test_client().get("/api/v1/models", headers=bearer(role_keys["reader"])
                                 ).status_code == 200
    assert app.test_client().post("/api/v1/models/faulty:predict", json={}).status_code == 401


def test_latency_is_added_before_forwarding(app_factory, sqlite_url, serving_model, fault_server,  # noqa: F811
                                            keys_for, bearer):
    plain = app_factory(sqlite_url, MODEL_SERVER_URL=fault_server.url)
    slow = app_factory(sqlite_url, FAULT_LATENCY_MS=300, MODEL_SERVER_URL=fault_server.url)
    key = keys_for(plain)["predictor"]
    timings = []
    for app in (plain, slow, plain, slow):
        started = time.perf_counter()
        assert predict(app, key, bearer).status_code == 200
        timings.append(time.perf_counter() - started)
    assert min(timings[1], timings[3]) >= 0.3, timings  # the sleep is a floor, never skipped
    assert timings[1] > timings[0] and timings[3] > timings[2], timings
    assert len(fault_server.hits) == 4
