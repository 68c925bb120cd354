"""Per-key rate limits: 429 with Retry-After and the JSON error shape, per key, open routes free,
and one shared budget across gunicorn workers through a real Redis.

Budget: ~8 s (in-process tests ~2 s; one gunicorn with 2 workers and a redis-server).
"""
import concurrent.futures
import threading
import time

import pytest
import requests

from service import limits

from tests.service.reliability.api_process import ApiProcess
from tests.service.reliability.stores import RedisServer, registry_with_keys


@pytest.fixture
def limited_app(app_factory, sqlite_url):
    return app_factory(sqlite_url, RATELIMIT_PER_KEY="3 per minute")


def test_a_key_over_its_limit_gets_429_with_retry_after(limited_app, keys_for, bearer):
    client, key = limited_app.test_client(), keys_for(limited_app)["reader"]
    statuses = [client.get("/api/v1/models", headers=bearer(key)).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    over = client.get("/api/v1/models", headers=bearer(key))
    assert over.status_code == 429
    assert 1 <= int(over.headers["Retry-After"]) <= 61
    error = over.get_json()["error"]
    assert error["code"] == "too_many_requests" and "3 per 1 minute" in error["message"]
    assert "Retry-After" not in client.get("/healthz").headers


def test_limits_are_per_key_and_every_route_draws_on_one_budget(limited_app, keys_for, bearer):
    client, role_keys = limited_app.test_client(), keys_for(limited_app)
    deployer = bearer(role_keys["deployer"])
    assert client.get("/api/v1/models", headers=deployer).status_code == 200
    assert client.get("/api/v1/models/nope", headers=deployer).status_code == 404
    assert client.get("/api/v1/models/nope/rollout", headers=deployer).status_code == 404
    assert client.get("/api/v1/models", headers=deployer).status_code == 429
    # Another key has its own budget.
    assert client.get("/api/v1/models", headers=bearer(role_keys["admin"])).status_code == 200


def test_open_routes_and_unknown_keys_are_not_limited(limited_app, bearer):
    client = limited_app.test_client()
    for _ in range(6):
        assert client.get("/healthz").status_code == 200
        assert client.get("/api/v1/openapi.json").status_code == 200
        assert client.get("/api/v1/models", headers=bearer("tfs_000000000000_" + "x" * 43)
                          ).status_code == 401


def test_an_unreachable_store_fails_open(app_factory, sqlite_url, keys_for, bearer, free_port_url):
    app = app_factory(sqlite_url, RATELIMIT_PER_KEY="1 per minute",
                      RATELIMIT_STORAGE_URI=f"redis://{free_port_url}/0")
    client = app.test_client()
    statuses = {client.get("/api/v1/models", headers=bearer(keys_for(app)["reader"])).status_code
                for _ in range(3)}
    assert statuses == {200}


def test_memory_counters_start_no_thread_per_request(app_factory, sqlite_url, keys_for, bearer,
                                                     monkeypatch):
    """limits' memory storage started a Timer thread per hit at low rates (~0.1 ms of CPU each)."""
    app = app_factory(sqlite_url, RATELIMIT_PER_KEY="2 per second")
    client, key = app.test_client(), keys_for(app)["reader"]
    started = []
    original_start = threading.Timer.start
    monkeypatch.setattr(threading.Timer, "start", lambda timer: (started.append(timer),
                                                                 original_start(timer)))
    statuses = []
    for _ in range(6):  # 20 ms apart: the storage's 0.01 s timer has always ended by the next
        statuses.append(client.get("/api/v1/models", headers=bearer(key)).status_code)
        time.sleep(0.02)
    assert statuses[:2] == [200, 200] and 429 in statuses[2:], statuses
    assert started == [], "no thread started for the counters"
    time.sleep(1.05)  # the window ends: the counter expires as before
    assert client.get("/api/v1/models", headers=bearer(key)).status_code == 200


def test_the_inline_sweep_forgets_expired_keys():
    storage = limits.InlineExpiryMemoryStorage("tfship-memory://")
    storage.SWEEP_INTERVAL_S = 0.05
    storage.incr("old", expiry=0.01)
    time.sleep(0.06)
    storage.incr("new", expiry=60)  # a hit after the interval sweeps in its own thread
    assert "old" not in storage.storage and storage.get("new") == 1
    assert limits.storage_uri("memory://") == "tfship-memory://"
    assert limits.storage_uri("redis://r:6379/0") == "redis://r:6379/0"


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis.log")
    yield server
    server.stop()


def test_redis_shares_one_budget_across_gunicorn_workers(tmp_path, redis_server):
    settings, role_keys = registry_with_keys(tmp_path)
    api = ApiProcess({**settings, "RATELIMIT_PER_KEY": "20 per minute",
                      "RATELIMIT_STORAGE_URI": redis_server.url}, tmp_path / "api.log",
                     workers=2).start()
    try:
        headers = {"Authorization": f"Bearer {role_keys['reader']}", "Connection": "close"}

        def call(_):  # a new connection each time, so both workers take calls
            return requests.get(f"{api.url}/api/v1/models", headers=headers, timeout=10)

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(call, range(60)))
        served = [a for a in answers if a.status_code == 200]
        limited = [a for a in answers if a.status_code == 429]
        assert len(served) == 20 and len(limited) == 40, [a.status_code for a in answers]
        assert all(int(a.headers["Retry-After"]) >= 1 for a in limited)
        stored = b" ".join(redis_server.client.keys("*")).decode()
        prefix = role_keys["reader"].split("_")[1]
        assert prefix in stored and role_keys["reader"] not in stored
    finally:
        api.stop()
    assert "Traceback" not in api.log()


def _write_routes(app):
    """Yield (method, concrete path, required role) for every write route in the URL map."""
    from service.auth import required_role_of
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) & {"POST", "PUT", "PATCH"}):
            values = {arg: 1 if "version" in arg else "limits-model" for arg in rule.arguments}
            path = rule.build(values, append_unknown=False)[1]
            yield method, path, required_role_of(app.view_functions[rule.endpoint], method)


def test_every_write_route_requires_json_and_a_bounded_body(app_factory, sqlite_url, keys_for,
                                                            bearer):
    app = app_factory(sqlite_url, MAX_CONTENT_LENGTH=1024)
    client, role_keys = app.test_client(), keys_for(app)
    routes = list(_write_routes(app))
    assert len(routes) >= 6, routes  # models, versions, rollout, predictions
    for method, path, role in routes:
        headers = bearer(role_keys[role]) if role else {}
        wrong_type = client.open(path, method=method, data="a=1", headers={
            **headers, "Content-Type": "application/x-www-form-urlencoded"})
        assert wrong_type.status_code == 415, (method, path, wrong_type.get_json())
        assert wrong_type.get_json()["error"]["field"] == "Content-Type"
        too_big = client.open(path, method=method, data=b'{"a": "' + b"x" * 2048 + b'"}',
                              headers={**headers, "Content-Type": "application/json"})
        assert too_big.status_code == 413, (method, path, too_big.get_json())
        assert too_big.get_json()["error"]["code"] == "payload_too_large"


def test_a_batch_over_the_row_limit_gets_400_naming_the_limit(app_factory, sqlite_url, keys_for,
                                                             bearer, version_body):
    app = app_factory(sqlite_url, PREDICT_MAX_ROWS=5)
    client, role_keys = app.test_client(), keys_for(app)
    deployer = bearer(role_keys["deployer"])
    assert client.post("/api/v1/models", json={"name": "batchy"}, headers=deployer).status_code == 201
    assert client.post("/api/v1/models/batchy/versions", json=version_body(1),
                       headers=deployer).status_code == 201
    row = {"island": "Dream", "sex": "female", "bill_length_mm": 40.0, "bill_depth_mm": 18.0,
           "flipper_length_mm": 190.0, "body_mass_g": 3600.0}
    answer = client.post("/api/v1/models/batchy/versions/1:predict", json={"instances": [row] * 6},
                         headers=bearer(role_keys["predictor"]))
    assert answer.status_code == 400, answer.get_json()
    assert "5" in answer.get_json()["error"]["message"]
