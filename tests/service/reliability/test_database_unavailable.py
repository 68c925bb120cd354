"""PostgreSQL stopped under a running API: registry calls get 503 JSON with Retry-After,
predictions keep flowing from the cached rollout state and cached keys, /readyz stays 200 and
reports the database down; after PostgreSQL restarts the registry answers again, no API restart.

Budget: ~12 s (initdb and two PostgreSQL starts; one gunicorn worker, so its caches are warm).
"""
import time

import requests

from tests.service.reliability.conftest import bearer, predict, register_penguins
from tests.service.reliability.stores import PostgresServer, registry_with_keys


def test_registry_503_while_predictions_and_readiness_hold(tmp_path, start_api, model_server,
                                                          penguin_models):
    postgres = PostgresServer()
    try:
        settings, keys = registry_with_keys(tmp_path, url=postgres.url)
        api = start_api({**settings, "MODEL_SERVER_URL": model_server.url,
                         "DATABASE_TIMEOUT_S": 1}, workers=1)
        register_penguins(api.url, keys["admin"], penguin_models)
        assert predict(api.url, keys["predictor"]).status_code == 200  # warms this worker's caches
        reader = bearer(keys["reader"])
        assert requests.get(f"{api.url}/api/v1/models", headers=reader, timeout=10).status_code == 200

        postgres.stop()
        time.sleep(2.5)  # past ROLLOUT_CACHE_TTL_S: the gateway must try the registry, and fail
        started = time.monotonic()
        registry = requests.get(f"{api.url}/api/v1/models", headers=reader, timeout=10)
        assert time.monotonic() - started < 5
        assert registry.status_code == 503, registry.text
        assert registry.json()["error"]["code"] == "database_unavailable"
        assert int(registry.headers["Retry-After"]) >= 1
        write = requests.post(f"{api.url}/api/v1/models", json={"name": "during-outage"},
                              headers=bearer(keys["admin"]), timeout=10)
        assert write.status_code == 503, write.text
        for _ in range(5):
            answer = predict(api.url, keys["predictor"])
            assert answer.status_code == 200, answer.text
            assert answer.headers["X-Model-Version"] == "1"
        ready = requests.get(f"{api.url}/readyz", timeout=10)
        assert ready.status_code == 200
        assert ready.json()["dependencies"]["database"]["status"] == "down"
        metrics = requests.get(f"{api.url}/metrics", timeout=10).text
        assert 'tfship_dependency_up{dependency="database"} 0.0' in metrics

        postgres.start()
        deadline = time.monotonic() + 10
        while requests.get(f"{api.url}/api/v1/models", headers=reader,
                           timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "the registry did not come back"
            time.sleep(0.2)
        assert requests.get(f"{api.url}/readyz", timeout=10).json()[
            "dependencies"]["database"]["status"] == "ok"
    finally:
        postgres.close()
