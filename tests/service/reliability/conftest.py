"""Fixtures for fault injection against real processes: gunicorn APIs, registries, the model server."""
import pytest
import requests

from tests.service.gateway_conftest import MODEL_NAME, model_server, penguin_models  # noqa: F401
from tests.service.reliability.api_process import ApiProcess

ROW = {"island": "Biscoe", "sex": "male", "bill_length_mm": 50.0, "bill_depth_mm": 15.5,
       "flipper_length_mm": 222.0, "body_mass_g": 5550.0}


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def start_api(tmp_path):
    """start_api(settings, **options) -> a started ApiProcess, stopped after the test."""
    started = []

    def start(settings, **options):
        api = ApiProcess(settings, tmp_path / f"api-{len(started)}.log", **options)
        started.append(api)
        return api.start()

    yield start
    for api in started:
        api.stop()
    for api in started:
        assert "Traceback" not in api.log(), api.log()[-3000:]


def register_penguins(api_url, admin_key, penguin_models):  # noqa: F811
    """Register penguins 1 and 2 over HTTP from their exports; make 1 stable."""
    admin = bearer(admin_key)
    assert requests.post(f"{api_url}/api/v1/models", json={"name": MODEL_NAME}, headers=admin,
                         timeout=10).status_code == 201
    for version, metadata in penguin_models[1].items():
        answer = requests.post(f"{api_url}/api/v1/models/{MODEL_NAME}/versions", headers=admin,
                               timeout=10, json={
                                   "version": version,
                                   "artifact_uri": f"file://{penguin_models[0]}/{version}",
                                   "metrics": metadata["metrics"],
                                   "input_schema": metadata["input_schema"],
                                   "feature_statistics": metadata["feature_statistics"]})
        assert answer.status_code == 201, answer.text
    answer = requests.put(f"{api_url}/api/v1/models/{MODEL_NAME}/rollout", json={"stable": 1},
                          headers=admin, timeout=10)
    assert answer.status_code == 200, answer.text


def predict(api_url, key, timeout=10):
    return requests.post(f"{api_url}/api/v1/models/{MODEL_NAME}:predict",
                         json={"instances": [ROW]}, headers=bearer(key), timeout=timeout)
