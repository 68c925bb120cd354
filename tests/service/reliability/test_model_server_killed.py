"""The model server killed (SIGKILL) under load: callers get only 503s (never a 500), and
predictions succeed again within 2 s of the restarted server reporting AVAILABLE, with no API
restart. Real gunicorn (2 workers), real model server, production upstream settings.

Budget: ~25 s, nearly all of it the model server's restart (TensorFlow import and model load);
more on a busy machine.
"""
import threading
import time

import requests

from tests.service.reliability.conftest import predict, register_penguins
from tests.service.reliability.stores import registry_with_keys

RECOVERY_S = 2.0


def test_kill_under_load_gives_only_503_and_recovers_fast(tmp_path, start_api, model_server,
                                                         penguin_models):
    settings, keys = registry_with_keys(tmp_path)
    api = start_api({**settings, "MODEL_SERVER_URL": model_server.url}, workers=2)
    register_penguins(api.url, keys["admin"], penguin_models)
    results, stop = [], threading.Event()

    def load():
        with requests.Session() as session:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    answer = session.post(f"{api.url}/api/v1/models/penguins:predict",
                                          json={"instances": [{"island": "Dream", "sex": "male",
                                                "bill_length_mm": 49.0, "bill_depth_mm": 19.0,
                                                "flipper_length_mm": 196.0, "body_mass_g": 3900.0}]},
                                          headers={"Authorization": f"Bearer {keys['predictor']}"},
                                          timeout=10)
                    results.append((started, answer.status_code, answer.text[:300]))
                except requests.RequestException as exc:
                    results.append((started, type(exc).__name__, str(exc)[:300]))
                time.sleep(0.01)

    threads = [threading.Thread(target=load, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        model_server.process.kill()  # no goodbye: connections die mid-flight
        model_server.process.wait(timeout=10)
        killed_at = time.monotonic()
        time.sleep(0.5)
        model_server.start()  # returns when every version reports AVAILABLE
        available_at = time.monotonic()
        time.sleep(RECOVERY_S + 0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
    statuses = {status for _, status, _ in results}
    assert statuses <= {200, 503}, sorted(map(str, statuses))
    during = [r for r in results if killed_at + 0.1 < r[0] < available_at - 0.5]
    assert during and all(status == 503 for _, status, _ in during)
    assert all('"error"' in text and "Traceback" not in text for _, s, text in during)
    after = [r for r in results if r[0] >= available_at + RECOVERY_S]
    assert after and all(status == 200 for _, status, _ in after), after[:3]
    first_success = min(started for started, status, _ in results
                        if status == 200 and started >= available_at - 0.5)
    assert first_success - available_at < RECOVERY_S
    assert predict(api.url, keys["predictor"]).status_code == 200
