"""Shadow mode's gateway side (service/shadow.py) with its sender (service/shadow_sender.py):
the deterministic share, the comparison, the bounded queue that drops and counts, and the
gateway hook through the real Flask app against a real HTTP server standing in
for TF Serving (stable and shadow answered per path, the shadow slow or failing on demand),
with the sender in a thread and in a real sender process (its metrics read from the
multiprocess folder it writes, as gunicorn's /metrics does). The real-stack proofs:
tests/service/delivery/test_shadow_stack.py. Budget: ~15 s (each process case starts a
sender process, ~1 s).
"""
import os
import signal
import threading
import time

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

from service import shadow, shadow_sender
from tests.json_server import JsonServer

ROW = {"island": "Biscoe", "sex": "male", "bill_length_mm": 50.0, "bill_depth_mm": 15.0,
       "flipper_length_mm": 220.0, "body_mass_g": 5000.0}


SHADOW_PATH = "/versions/3:predict"
# A sender process imports for ~1 s (several on a loaded machine) before it sends: closing
# waits for it to send what it was handed, flush and exit.
CLOSE_S = 30


class VersionServer(JsonServer):
    """Answers TF Serving predictions per path: the shadow (version 3) and the rest (stable).

    ``shadow`` is (status, class name, seconds to sleep first); ``paths`` records every call.
    """

    def __init__(self):
        self.shadow = (200, "Gentoo", 0.0)
        self.paths, self.arrived = [], threading.Event()
        super().__init__(self._predict)

    def _predict(self, method, path, headers, rows):
        self.paths.append(path)
        shadow_call = path.endswith(SHADOW_PATH)
        status, name, sleep = self.shadow if shadow_call else (200, "Gentoo", 0.0)
        if shadow_call:
            self.arrived.set()
        time.sleep(sleep)
        if status != 200:
            return status, {"error": "injected"}
        return 200, {"predictions": [{"class_name": name, "class_id": 2} for _ in rows["instances"]]}

    def shadow_calls(self):
        return [p for p in self.paths if p.endswith(SHADOW_PATH)]


@pytest.fixture
def model_server():
    server = VersionServer()
    yield server
    server.close()


@pytest.fixture(params=["thread", "process"])
def gateway(request, app_factory, sqlite_url, model_server, bearer, version_body, tmp_path,
            monkeypatch):
    """The API on SQLite against model_server: penguins stable 2, shadow 3 at share 1.

    The sender runs in a thread, or in a sender process whose metrics go to a multiprocess
    folder (read by :func:`sample`), as under gunicorn.
    """
    from tests.service.conftest import delete_all_models, role_keys_for
    if request.param == "process":
        metrics_dir = tmp_path / "metrics"
        metrics_dir.mkdir()
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))  # the sender's only
        monkeypatch.setattr(shadow, "RESTART_INTERVAL_S", 0.0)
    app = app_factory(sqlite_url, MODEL_SERVER_URL=model_server.url, SHADOW_TIMEOUT_S=0.3,
                      SHADOW_QUEUE_SIZE=2, SHADOW_FLUSH_INTERVAL_S=60,
                      SHADOW_SENDER=request.param)
    delete_all_models(app)
    client, keys = app.test_client(), role_keys_for(app)
    admin = bearer(keys["admin"])
    client.post("/api/v1/models", json={"name": "penguins"}, headers=admin)
    for version in (2, 3):
        client.post("/api/v1/models/penguins/versions", json=version_body(version), headers=admin)
    client.put("/api/v1/models/penguins/rollout", json={"stable": 2}, headers=admin)
    assert client.put("/api/v1/models/penguins/rollout/shadow", json={"version": 3, "share": 1},
                      headers=admin).status_code == 200
    yield app, client, bearer(keys["predictor"]), admin
    mirror = app.extensions.get(shadow.EXTENSION)
    if mirror is not None:
        mirror.close(timeout=CLOSE_S)
    gateway_state = app.extensions.get("tfship_gateway")
    if gateway_state is not None:
        gateway_state.client.close()
    delete_all_models(app)


def sample(name, **labels):
    """A metric's value in this process plus, in the process case, the sender processes'."""
    value = REGISTRY.get_sample_value(name, labels) or 0.0
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        gathered = CollectorRegistry()
        multiprocess.MultiProcessCollector(gathered, path=folder)
        value += gathered.get_sample_value(name, labels) or 0.0
    return value


def comparisons(client, admin):
    return client.get("/api/v1/models/penguins/rollout/shadow", headers=admin).json["comparisons"]


def predict(client, headers):
    answer = client.post("/api/v1/models/penguins:predict", json={"instances": [ROW, ROW]},
                         headers=headers)
    assert answer.status_code == 200, answer.json
    assert answer.headers["X-Model-Version"] == "2"
    assert [row["class_name"] for row in answer.json["predictions"]] == ["Gentoo", "Gentoo"]
    answer.close()  # as a WSGI server does once it sent the body: the mirror is queued then
    return answer


def test_the_share_is_exact_and_deterministic(app):
    mirror = shadow.Mirror(app)
    for share, calls, expected in ((0.1, 1000, 100), (0.5, 10, 5), (1.0, 7, 7), (0.0, 50, 0)):
        model = f"m{share}"
        picked = [mirror.picks(model, share) for _ in range(calls)]
        assert sum(picked) == expected
    assert [mirror.picks("alternate", 0.5) for _ in range(4)] == [False, True, False, True]
    counts = []

    def pick():
        counts.append(sum(mirror.picks("threads", 0.25) for _ in range(2500)))

    threads = [threading.Thread(target=pick) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counts) == 2500  # exactly a quarter of 10,000 calls, across threads


def test_the_sender_is_chosen_by_setting_or_by_the_metrics_folder(app_factory, sqlite_url,
                                                                 monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert shadow.Mirror(app_factory(sqlite_url)).kind == "thread"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/nonexistent")
    assert shadow.Mirror(app_factory(sqlite_url)).kind == "process"  # as under gunicorn
    assert shadow.Mirror(app_factory(sqlite_url, SHADOW_SENDER="thread")).kind == "thread"
    with pytest.raises(ValueError, match="SHADOW_SENDER must be one of"):
        shadow.Mirror(app_factory(sqlite_url, SHADOW_SENDER="fork"))


def test_quantiles_come_from_the_bucket_bounds():
    tally = shadow_sender.Tally()
    for seconds in [0.0004] * 50 + [0.0045] * 49 + [30.0]:
        tally.add_latency(shadow_sender.SHADOW, seconds)
    assert shadow.quantile(tally.shadow_buckets, 0.5) == 0.0005
    assert shadow.quantile(tally.shadow_buckets, 0.99) == 0.005
    assert shadow.quantile(tally.shadow_buckets, 1.0) == shadow.LATENCY_BOUNDS[-1]
    assert shadow.quantile({}, 0.5) is None


def test_a_shadow_that_agrees_is_compared_after_the_answer(gateway, model_server):
    app, client, headers, admin = gateway
    before = sample("tfship_shadow_rows_total", model="penguins", version="3", agreement="agree")
    predict(client, headers)
    assert model_server.arrived.wait(10), "the shadow got the mirrored body"
    app.extensions[shadow.EXTENSION].close(timeout=CLOSE_S)
    assert model_server.shadow_calls() == ["/v1/models/penguins/versions/3:predict"]
    assert sample("tfship_shadow_rows_total", model="penguins", version="3",
                  agreement="agree") == before + 2
    assert sample("tfship_shadow_latency_seconds_count", model="penguins", version="3",
                  role="primary") >= 1
    [comparison] = comparisons(client, admin)
    assert (comparison["requests"], comparison["rows"], comparison["agreed"]) == (1, 2, 2)


@pytest.mark.parametrize("shadow_answer, outcome", [
    ((500, "", 0.0), "server_error"),
    ((200, "Adelie", 1.0), "timeout"),
    ((404, "", 0.0), "client_error"),
])
def test_a_failing_or_slow_shadow_never_changes_the_answer(gateway, model_server,
                                                          shadow_answer, outcome):
    app, client, headers, admin = gateway
    model_server.shadow = shadow_answer
    before = sample("tfship_shadow_requests_total", model="penguins", version="3", outcome=outcome)
    started = time.perf_counter()
    predict(client, headers)
    assert time.perf_counter() - started < 0.5  # never waits for the shadow (nor its start)
    assert model_server.arrived.wait(10), "the shadow got the mirrored body"
    app.extensions[shadow.EXTENSION].close(timeout=CLOSE_S)
    assert sample("tfship_shadow_requests_total", model="penguins", version="3",
                  outcome=outcome) == before + 1
    [comparison] = comparisons(client, admin)
    assert (comparison["requests"], comparison["failed"]) == (1, 1)


def test_a_full_queue_drops_and_counts_without_waiting(gateway, model_server):
    app, client, headers, admin = gateway
    model_server.shadow = (200, "Gentoo", 0.25)  # slower than the client: the queue fills
    before = sample("tfship_shadow_dropped_total", model="penguins", version="3")
    started = time.perf_counter()
    for _ in range(10):
        predict(client, headers)
    assert time.perf_counter() - started < 2.0
    app.extensions[shadow.EXTENSION].close(timeout=CLOSE_S)
    dropped = sample("tfship_shadow_dropped_total", model="penguins", version="3") - before
    assert dropped >= 10 - 2 - 2  # at most the queue (2) and the call in flight (1 or 2) pass
    [comparison] = comparisons(client, admin)
    assert comparison["dropped"] == dropped
    assert comparison["requests"] + comparison["dropped"] == 10  # every job counted once


def test_a_dead_sender_process_is_replaced_and_its_loss_counted(gateway, model_server):
    app, client, headers, admin = gateway
    mirror = app.extensions.get(shadow.EXTENSION) or shadow.mirror_of(app)
    if mirror.kind != "process":
        pytest.skip("the sender process case only")
    predict(client, headers)
    assert model_server.arrived.wait(10)
    first = mirror.sender.process
    os.kill(first.pid, signal.SIGKILL)
    first.wait(5)
    before = sample("tfship_shadow_dropped_total", model="penguins", version="3")
    predict(client, headers)  # the send fails: dropped and counted, the sender restarted
    assert sample("tfship_shadow_dropped_total", model="penguins", version="3") == before + 1
    model_server.arrived.clear()
    predict(client, headers)  # handed to the new sender, with the earlier drop's count
    assert model_server.arrived.wait(10)
    assert mirror.sender.process.pid != first.pid
    mirror.close(timeout=CLOSE_S)
    [comparison] = comparisons(client, admin)
    # The first sender was killed before its flush: only the new one's counts are stored.
    assert (comparison["requests"], comparison["dropped"]) == (1, 1)


def test_pinned_versions_canaries_and_paused_shares_are_not_mirrored(gateway, model_server):
    app, client, headers, _ = gateway
    answer = client.post("/api/v1/models/penguins/versions/2:predict",
                         json={"instances": [ROW]}, headers=headers)
    assert answer.status_code == 200
    route = type("Route", (), {"label": "canary", "version": 4})()
    with app.test_request_context():
        assert not shadow.mirror("penguins", {"shadow": 3, "shadow_share": 1.0}, route, b"", b"", 0)
        stable = type("Route", (), {"label": "stable", "version": 2})()
        assert not shadow.mirror("penguins", {"shadow": 3, "shadow_share": 0.0}, stable, b"", b"",
                                 0)
        assert not shadow.mirror("penguins", {"stable": 2}, stable, b"", b"", 0)
        # A broken state never raises into the request.
        assert not shadow.mirror("penguins", {"shadow": 3, "shadow_share": "x"}, stable, b"", b"",
                                 0)
    time.sleep(0.1)
    assert model_server.shadow_calls() == []
