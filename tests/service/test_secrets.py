"""Secrets: no key material in any log, and key lookups cost the same for valid and invalid keys.

- A real gunicorn API at DEBUG with every prediction logged is handed keys everywhere a caller
  could put one (headers, query, path, body, X-Request-ID); its log must hold none of them, nor
  their secret parts, nor the server secret.
- Every ``*.log`` file written under this pytest run's temporary folder so far (the API, model
  server, Redis and PostgreSQL logs of the suites that ran before: fuzz/, registry/,
  reliability/ and test_[a-r]*.py sort earlier) is scanned for every key the suite created.
- verify() of a valid key, a real prefix with a wrong secret, an unknown prefix and a malformed
  key take the same time: the best of three rounds' medians within a ratio of 1.6 (the key cache
  off, so each one reads the database), measured interleaved in one process.

Budget: ~6 s.
"""
import os
import statistics
import time

import requests

from service import auth
from tests.service import conftest as service_conftest
from tests.service.conftest import KEY_SECRET
from tests.service.reliability.api_process import ApiProcess
from tests.service.reliability.stores import ISSUED_KEYS, registry_with_keys


def key_material(key):
    """Return the strings that must never be logged for key: the key and its secret part."""
    secret = auth.KEY_PATTERN.match(key)
    return [key] + ([secret["secret"]] if secret else [])


def test_the_api_logs_no_key_material(tmp_path, version_body):
    settings, keys = registry_with_keys(tmp_path)
    api = ApiProcess({**settings, "LOG_LEVEL": "DEBUG", "PREDICTION_LOG_SAMPLE_RATE": 1.0,
                      "MODEL_SERVER_URL": "http://127.0.0.1:9"}, tmp_path / "api.log",
                     workers=1).start()
    admin, reader = keys["admin"], keys["reader"]
    tampered = admin[:-4] + "AAAA"
    try:
        calls = [
            ("GET", "/api/v1/models", {"Authorization": f"Bearer {reader}"}, None),
            ("GET", "/api/v1/models", {"X-API-Key": tampered}, None),
            ("GET", "/api/v1/models", {"Authorization": f"Basic {admin}"}, None),
            ("GET", f"/api/v1/models?name={admin}", {"Authorization": f"Bearer {reader}"}, None),
            ("GET", f"/api/v1/models/{admin}", {"Authorization": f"Bearer {reader}"}, None),
            ("GET", "/api/v1/models", {"X-Request-ID": admin, "Authorization": f"Bearer {reader}"},
             None),
            ("POST", "/api/v1/models", {"Authorization": f"Bearer {admin}"},
             {"name": "leaky", "description": f"my key is {admin}", "owner": reader}),
            ("POST", "/api/v1/models", {"Authorization": f"Bearer {admin}"}, {"name": admin}),
            ("PUT", "/api/v1/models/leaky/rollout", {"Authorization": f"Bearer {admin}"},
             {"stable": admin}),
            ("POST", "/api/v1/models/leaky:predict", {"Authorization": f"Bearer {keys['predictor']}"},
             {"instances": [{"island": admin}]}),
            ("POST", "/api/v1/models/leaky:predict", {"Authorization": f"Bearer {tampered}"},
             {"instances": []}),
        ]
        for method, path, headers, body in calls:
            answer = requests.request(method, api.url + path, headers=headers, json=body, timeout=10)
            assert answer.status_code < 500 or answer.status_code == 503, (path, answer.text)
    finally:
        api.stop()
    log = api.log()
    assert "GET /api/v1/models" in log, "the access log is on"
    for secret in key_material(admin) + key_material(reader) + key_material(tampered) + [
            KEY_SECRET]:
        assert secret not in log, f"key material in the API's log: ...{secret[-6:]}"


def test_no_log_file_of_this_run_holds_a_key(tmp_path_factory):
    keys = set(ISSUED_KEYS)
    for role_keys in service_conftest._KEYS.values():
        keys.update(role_keys.values())
    secrets = {part for key in keys for part in key_material(key)} | {KEY_SECRET}
    scanned = 0
    for folder, _, files in os.walk(tmp_path_factory.getbasetemp()):
        for name in files:
            if name.endswith(".log"):
                with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as handle:
                    text = handle.read()
                scanned += 1
                leaked = [secret[-6:] for secret in secrets if secret in text]
                assert not leaked, f"{os.path.join(folder, name)} holds key material ...{leaked}"
    assert scanned >= 1 and keys


def test_key_lookups_take_the_same_time_valid_or_not(app_factory, sqlite_url, keys_for):
    app = app_factory(sqlite_url, KEY_CACHE_TTL_S=0, KEY_CACHE_STALE_S=0)
    valid = keys_for(app)["reader"]
    candidates = {"valid": valid, "wrong secret": valid[:-6] + "AAAAAA",
                  "unknown prefix": "tfs_0123456789ab_" + valid[len("tfs_0123456789ab_"):],
                  "malformed": "not-a-key-" + "x" * 50}
    best = {}
    with app.test_request_context("/api/v1/models"):
        for _ in range(5):  # warm up the connection pool and statement cache
            for key in candidates.values():
                _verify(key)
        for _ in range(3):  # the best of three rounds' medians: robust to a busy machine
            timings = {name: [] for name in candidates}
            for _ in range(100):
                for name, key in candidates.items():
                    started = time.perf_counter()
                    _verify(key)
                    timings[name].append(time.perf_counter() - started)
            for name, values in timings.items():
                best[name] = min(best.get(name, 1.0), statistics.median(values))
    ratio = max(best.values()) / min(best.values())
    assert ratio < 1.6, {name: f"{value * 1e6:.0f} us" for name, value in best.items()}


def _verify(key):
    try:
        auth.verify(key)
    except auth.Unauthorized:
        pass
