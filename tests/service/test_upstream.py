"""The model-server client against a real HTTP server that fails on demand. Budget: ~5 s."""
import threading
import time

import pytest

from tests.service.gateway_conftest import fault_server, free_port  # noqa: F401 (fixture)
from service import upstream
from service.upstream import CircuitBreaker, ModelServerClient, RetryBudget


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def make_client(url, outcomes=None, **overrides):
    options = dict(connect_timeout=0.5, read_timeout=1.0, max_connection_age=30.0,
                   max_concurrency=8, retry_backoff=0.01)
    options.update(overrides)
    on_outcome = (lambda *args: outcomes.append(args)) if outcomes is not None else None
    return ModelServerClient(url, on_outcome=on_outcome, **options)


def test_predict_forwards_body_path_and_request_id(fault_server):
    outcomes = []
    client = make_client(fault_server.url, outcomes)
    answer = client.predict("penguins", b'{"instances": [1]}', label="canary", request_id="rid-1",
                            metric_version=2)
    assert answer.status_code == 200
    assert answer.data == {"predictions": [{"echo": {"instances": [1]}}]}
    method, path, headers, _port, body = fault_server.hits[-1]
    assert (method, path) == ("POST", "/v1/models/penguins/labels/canary:predict")
    assert headers["X-Request-Id"] == "rid-1"
    assert body == b'{"instances": [1]}'
    client.predict("penguins", b"{}", version=7)
    assert fault_server.hits[-1][1] == "/v1/models/penguins/versions/7:predict"
    assert outcomes[0][:3] == ("penguins", 2, "ok")


def test_keep_alive_connections_are_reused_until_their_maximum_age(fault_server):
    client = make_client(fault_server.url, max_connection_age=1.0)
    for _ in range(3):
        client.predict("m", b"{}")
    ports = [hit[3] for hit in fault_server.hits]
    assert len(set(ports)) == 1, "a keep-alive connection is reused within its age"
    time.sleep(1.1)
    client.predict("m", b"{}")
    assert fault_server.hits[-1][3] != ports[0], "an aged connection is replaced"


def test_read_timeout_is_504_with_retry_after_and_predict_is_not_retried(fault_server):
    outcomes = []
    client = make_client(fault_server.url, outcomes, read_timeout=0.2)
    fault_server.mode = ("sleep", 1.0)
    started = time.monotonic()
    with pytest.raises(upstream.UpstreamTimeout) as caught:
        client.predict("m", b"{}")
    assert time.monotonic() - started < 0.9
    assert caught.value.status_code == 504 and caught.value.headers["Retry-After"] == "1"
    assert len(fault_server.hits) == 1
    assert outcomes[-1][2] == "timeout"


@pytest.mark.parametrize("code, error, status, outcome", [
    (500, upstream.UpstreamBadResponse, 502, "server_error"),
    (503, upstream.UpstreamServerUnavailable, 503, "server_error"),
])
def test_server_errors_map_to_5xx_never_500(fault_server, code, error, status, outcome):
    outcomes = []
    client = make_client(fault_server.url, outcomes)
    fault_server.mode = ("status", code)
    with pytest.raises(error) as caught:
        client.predict("m", b"{}")
    assert caught.value.status_code == status
    assert "Retry-After" in caught.value.headers
    assert f"injected failure {code}" in caught.value.message
    assert len(fault_server.hits) == 1, "predict is not retried once sent"
    assert outcomes[-1][2] == outcome


def test_model_server_4xx_passes_through_with_its_message(fault_server):
    client = make_client(fault_server.url, breaker_factory=lambda: CircuitBreaker(failure_threshold=1))
    fault_server.mode = ("status", 404)
    for _ in range(3):
        with pytest.raises(upstream.UpstreamClientError) as caught:
            client.predict("m", b"{}")
        assert caught.value.status_code == 404
        assert "injected failure 404" in caught.value.message
    assert client.breaker_for("m").state == "closed", "the caller's mistakes do not open the breaker"


def test_non_json_answer_is_502(fault_server):
    client = make_client(fault_server.url)
    fault_server.mode = "garbage"
    with pytest.raises(upstream.UpstreamBadResponse) as caught:
        client.predict("m", b"{}")
    assert caught.value.status_code == 502


def test_an_answer_cut_off_mid_body_is_503_unavailable_not_502():
    """A model server killed while it writes an answer went away: 503, as a reset is."""
    import socket
    listener = socket.create_server(("127.0.0.1", 0))

    def answer_half():
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               b"Content-Length: 100\r\n\r\n{\"predictions\": [")

    server = threading.Thread(target=answer_half, daemon=True)
    server.start()
    try:
        client = make_client(f"http://127.0.0.1:{listener.getsockname()[1]}", max_attempts=1)
        with pytest.raises(upstream.UpstreamUnavailable) as caught:
            client.predict("m", b"{}")
        assert caught.value.status_code == 503
    finally:
        server.join(5)
        listener.close()


def test_connection_refused_is_503_and_predict_retries_before_sending():
    budget = RetryBudget(ratio=0.1, min_retries=3)
    outcomes = []
    client = make_client(f"http://127.0.0.1:{free_port()}", outcomes, retry_budget=budget)
    started = time.monotonic()
    with pytest.raises(upstream.UpstreamUnavailable) as caught:
        client.predict("m", b"{}")
    assert time.monotonic() - started < 1.0
    assert caught.value.status_code == 503 and caught.value.headers["Retry-After"] == "1"
    assert budget.retries() == 1, "a refused connection sent nothing: one safe retry"
    assert outcomes[-1][2] == "unavailable"


def test_status_reads_are_retried_within_the_budget(fault_server):
    client = make_client(fault_server.url, max_attempts=2,
                         retry_budget=RetryBudget(ratio=0.0, min_retries=1))
    fault_server.mode = ("status", 503)
    with pytest.raises(upstream.UpstreamServerUnavailable):
        client.model_status("m")
    assert len(fault_server.hits) == 2, "a GET is retried"
    with pytest.raises(upstream.UpstreamServerUnavailable):
        client.model_status("m")
    assert len(fault_server.hits) == 3, "the budget is spent: no more retries"


def test_model_status_and_available_versions(fault_server):
    client = make_client(fault_server.url)
    assert client.model_status("penguins") == [(1, "AVAILABLE"), (2, "LOADING")]
    assert client.available_versions("penguins") == [1]
    assert fault_server.hits[-1][:2] == ("GET", "/v1/models/penguins")


def test_circuit_breaker_opens_fails_fast_then_recovers(fault_server):
    outcomes = []
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout=1.0)
    client = make_client(fault_server.url, outcomes, breaker_factory=lambda: breaker)
    fault_server.mode = ("status", 500)
    for _ in range(3):
        with pytest.raises(upstream.UpstreamBadResponse):
            client.predict("m", b"{}")
    assert breaker.state == "open"
    with pytest.raises(upstream.CircuitOpen) as caught:
        client.predict("m", b"{}")
    assert caught.value.status_code == 503 and int(caught.value.headers["Retry-After"]) >= 1
    assert len(fault_server.hits) == 3, "an open breaker sends nothing"
    assert outcomes[-1][2] == "circuit_open"
    fault_server.mode = "ok"
    time.sleep(1.05)
    assert client.predict("m", b"{}").status_code == 200
    assert breaker.state == "closed"


def test_concurrency_cap_rejects_fast(fault_server):
    outcomes = []
    client = make_client(fault_server.url, outcomes, max_concurrency=2, read_timeout=5)
    fault_server.mode = ("sleep", 0.6)
    threads = [threading.Thread(target=client.predict, args=("m", b"{}")) for _ in range(2)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while len(fault_server.hits) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    with pytest.raises(upstream.UpstreamOverloaded) as caught:
        client.predict("m", b"{}")
    assert time.monotonic() - started < 0.3, "rejected without waiting for a slot"
    assert caught.value.status_code == 503
    for thread in threads:
        thread.join(timeout=5)
    assert [o[2] for o in outcomes].count("rejected") == 1
    assert [o[2] for o in outcomes].count("ok") == 2


def test_breaker_half_open_lets_one_trial_through():
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=10, clock=clock)
    breaker.record_failure()
    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    assert breaker.retry_after() == 10
    clock.now += 10
    assert breaker.state == "half_open"
    assert breaker.allow() and not breaker.allow(), "one trial call at a time"
    breaker.record_failure()
    assert breaker.state == "open", "a failed trial opens it again"
    clock.now += 10
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow() and breaker.allow()


def test_retry_budget_is_a_share_of_recent_requests():
    clock = FakeClock()
    budget = RetryBudget(ratio=0.2, window=10, min_retries=0, clock=clock)
    for _ in range(10):
        budget.record_request()
    assert [budget.try_spend() for _ in range(3)] == [True, True, False]
    clock.now += 11
    assert not budget.try_spend(), "old requests leave the window"
    for _ in range(5):
        budget.record_request()
    assert budget.try_spend() and not budget.try_spend()


def test_each_target_has_its_own_breaker(fault_server):
    """A failing canary label (or pinned version) opens its own circuit, never stable's."""
    outcomes = []
    client = make_client(fault_server.url, outcomes, breaker_factory=lambda: CircuitBreaker(
        failure_threshold=2, reset_timeout=30))
    fault_server.mode = ("status", 500)
    for _ in range(2):
        with pytest.raises(upstream.UpstreamBadResponse):
            client.predict("m", b"{}", label="canary", metric_version=2)
    with pytest.raises(upstream.CircuitOpen):
        client.predict("m", b"{}", label="canary", metric_version=2)
    fault_server.mode = "ok"
    assert client.predict("m", b"{}", label="stable", metric_version=1).status_code == 200
    assert client.predict("m", b"{}", version=1).status_code == 200
    assert client.available_versions("m") == [1]
    assert client.breaker_for("m", label="canary").state == "open"
    assert client.breaker_for("m", label="stable").state == "closed"
    assert [o[1:3] for o in outcomes] == [(2, "server_error")] * 2 + [(2, "circuit_open"),
                                                                     (1, "ok"), ("", "ok"),
                                                                     ("", "ok")]


def test_a_connection_the_server_closed_is_replaced_before_reuse(fault_server):
    client = make_client(fault_server.url)
    client.predict("m", b"{}")
    idle = list(client.pool._idle)
    assert len(idle) == 1
    idle[0].sock.shutdown(2)  # as if the server had closed its end of the keep-alive link
    fault_server.hits.clear()
    assert client.predict("m", b"{}").status_code == 200
    assert len(fault_server.hits) == 1, "sent once, on a new connection"
    client.close()
    assert not client.pool._idle
