"""The stable/canary split and the rollout-state cache. Budget: < 1 s."""
import pytest

from service.errors import NotFound, ServiceUnavailable
from service.routing import (Route, StaleOnErrorCache, bucket, choose_route, pinned_route,
                             routing_key)

KEYS = [f"caller-{n}" for n in range(4000)]


class FakeClock:
    def __init__(self):
        self.now = 50.0

    def __call__(self):
        return self.now


def share_on_canary(weight, model="penguins"):
    state = {"stable": 1, "canary": 2, "canary_weight": weight}
    return sum(choose_route(model, state, key).label == "canary" for key in KEYS) / len(KEYS)


def test_split_follows_the_weight():
    assert share_on_canary(0.0) == 0.0
    assert share_on_canary(1.0) == 1.0
    assert share_on_canary(0.25) == pytest.approx(0.25, abs=0.03)


def test_split_is_sticky_and_raising_the_weight_only_moves_callers_to_canary():
    state = {"stable": 1, "canary": 2, "canary_weight": 0.1}
    first = {key: choose_route("penguins", state, key) for key in KEYS}
    assert all(choose_route("penguins", state, key) == first[key] for key in KEYS[:200])
    raised = {**state, "canary_weight": 0.5}
    for key, route in first.items():
        if route.label == "canary":
            assert choose_route("penguins", raised, key).label == "canary"


def test_models_split_independently():
    on_a = {key for key in KEYS if bucket("a", key) < 0.5}
    on_b = {key for key in KEYS if bucket("b", key) < 0.5}
    assert 0.4 < len(on_a & on_b) / len(on_a) < 0.6


def test_routes_carry_version_and_stable_fallback():
    state = {"stable": 3, "canary": 4, "canary_weight": 1.0}
    assert choose_route("m", state, "k") == Route("canary", 4, fallback=Route("stable", 3))
    assert choose_route("m", {**state, "canary_weight": 0}, "k") == Route("stable", 3)
    assert choose_route("m", {"stable": None, "canary": 4, "canary_weight": 0.2}, "k").version == 4
    assert pinned_route("7") == Route(None, 7)


def test_no_serving_version_is_404():
    with pytest.raises(NotFound, match="no version serving"):
        choose_route("m", {"stable": None, "canary": None, "canary_weight": 0.0}, "k")


def test_routing_key_prefers_the_header_then_the_api_key():
    assert routing_key({"X-Routing-Key": " user-9 "}, "abc123", "10.0.0.1") == "user-9"
    assert routing_key({}, "abc123", "10.0.0.1") == "abc123"
    assert routing_key({}, None, "10.0.0.1") == "10.0.0.1"
    assert len(routing_key({"X-Routing-Key": "x" * 1000}, None, None)) == 256


def test_cache_serves_within_ttl_then_refreshes():
    clock, calls = FakeClock(), []
    cache = StaleOnErrorCache(2.0, ServiceUnavailable, clock=clock)

    def fetch():
        calls.append(clock.now)
        return {"stable": len(calls)}

    assert cache.get("m", fetch) == {"stable": 1}
    clock.now += 1.9
    assert cache.get("m", fetch) == {"stable": 1}
    clock.now += 0.2
    assert cache.get("m", fetch) == {"stable": 2}


def test_cache_keeps_the_last_good_answer_while_the_registry_is_down():
    clock, attempts = FakeClock(), []
    cache = StaleOnErrorCache(2.0, ServiceUnavailable, clock=clock)
    cache.get("m", lambda: {"stable": 1})

    def down():
        attempts.append(clock.now)
        raise ServiceUnavailable("database down")

    clock.now += 5
    assert cache.get("m", down) == {"stable": 1}
    assert cache.get("m", down) == {"stable": 1}
    assert len(attempts) == 1, "the next refresh waits a TTL: an outage does not slow every call"
    with pytest.raises(ServiceUnavailable):
        cache.get("never-seen", down)


def test_cache_forgets_a_model_that_no_longer_exists():
    clock = FakeClock()
    cache = StaleOnErrorCache(2.0, ServiceUnavailable, clock=clock)
    cache.get("m", lambda: {"stable": 1})
    clock.now += 3

    def gone():
        raise NotFound("model 'm' does not exist")

    with pytest.raises(NotFound):
        cache.get("m", gone)
    with pytest.raises(ServiceUnavailable):
        cache.get("m", lambda: (_ for _ in ()).throw(ServiceUnavailable("down")))


def test_a_slow_failing_registry_delays_one_refresh_per_ttl():
    clock, attempts = FakeClock(), []
    cache = StaleOnErrorCache(2.0, ServiceUnavailable, clock=clock)
    cache.get("m", lambda: {"stable": 1})
    clock.now += 3

    def slow_and_down():
        attempts.append(clock.now)
        assert cache.get("m", slow_and_down) == {"stable": 1}, "others keep the last answer"
        clock.now += 5  # a connect timeout
        raise ServiceUnavailable("database down")

    assert cache.get("m", slow_and_down) == {"stable": 1}
    clock.now += 1
    assert cache.get("m", slow_and_down) == {"stable": 1}
    assert len(attempts) == 1, "the TTL counts from the end of the failed refresh"
