"""Shadow mode's registry side: PUT/DELETE/GET .../rollout/shadow with ETags and history, the
rollout state the gateway and the reconciler read, and the stored comparisons, on SQLite and
PostgreSQL. (Tests service/registry/rollouts.py, history.py and service/rollout.py.)
Budget: ~6 s (PostgreSQL starts once per session).
"""
import pytest

ROLLOUT = "/api/v1/models/penguins/rollout"
SHADOW = ROLLOUT + "/shadow"
HISTORY = ROLLOUT + "/history"


@pytest.fixture
def deployer(any_client, any_keys, bearer, version_body):
    """penguins with versions 1..3, stable 1; returns the deployer's headers."""
    headers = bearer(any_keys["deployer"])
    any_client.post("/api/v1/models", json={"name": "penguins"}, headers=headers)
    for version in (1, 2, 3):
        assert any_client.post("/api/v1/models/penguins/versions", json=version_body(version),
                               headers=headers).status_code == 201
    assert any_client.put(ROLLOUT, json={"stable": 1}, headers=headers).status_code == 200
    return headers


def etag(client, headers):
    return client.get(ROLLOUT, headers=headers).headers["ETag"]


def test_start_and_stop_are_rollout_transitions_with_etags_and_history(any_client, any_keys,
                                                                        bearer, deployer):
    before = etag(any_client, deployer)
    started = any_client.put(SHADOW, json={"version": 2, "share": 0.25, "reason": "try 2"},
                             headers={**deployer, "If-Match": before})
    assert started.status_code == 200, started.json
    assert (started.json["shadow"], started.json["shadow_share"]) == (2, 0.25)
    assert started.json["comparisons"] == []
    assert started.headers["ETag"] != before
    state = any_client.get(ROLLOUT, headers=deployer)
    assert state.headers["ETag"] == started.headers["ETag"]  # one resource, one ETag
    assert (state.json["stable"], state.json["shadow"], state.json["shadow_share"]) == (1, 2, 0.25)

    # A canary driver holding the old ETag cannot overwrite the shadow change.
    stale = any_client.put(ROLLOUT, json={"stable": 1, "canary": 3, "canary_weight": 0.1},
                           headers={**deployer, "If-Match": before})
    assert stale.status_code == 412

    reader = bearer(any_keys["reader"])
    assert any_client.get(SHADOW, headers=reader).json["shadow"] == 2
    assert any_client.delete(SHADOW, headers=reader).status_code == 403
    stopped = any_client.delete(SHADOW + "?reason=enough", headers={
        **deployer, "If-Match": started.headers["ETag"]})
    assert stopped.status_code == 200, stopped.json
    assert (stopped.json["shadow"], stopped.json["shadow_share"]) == (None, 0.0)
    assert "shadow" not in any_client.get(ROLLOUT, headers=deployer).json
    again = any_client.delete(SHADOW, headers=deployer)
    assert again.status_code == 409 and again.json["error"]["code"] == "conflict"

    items = any_client.get(HISTORY, headers=reader).json["items"]
    assert [(e["step"], e["shadow"], e["shadow_share"], e["reason"]) for e in items[:2]] == [
        ("shadow-stop", None, 0.0, "enough"), ("shadow", 2, 0.25, "try 2")]
    assert all(e["actor"].startswith("test deployer (") for e in items[:2])
    assert items[0]["measurements"] == {"comparisons": []}
    assert items[2]["shadow"] is None  # the transition before shadow mode


@pytest.mark.parametrize("body, field", [
    ({"version": 9, "share": 0.1}, "version"),  # no such version
    ({"version": 1, "share": 0.1}, "version"),  # already stable
    ({"version": 2, "share": -0.1}, "share"),
    ({"version": 2, "share": 1.5}, "share"),
    ({"version": 2}, "share"),
    ({"version": "2", "share": 0.1}, "version"),
    ({"version": 2, "share": 0.1, "label": "x"}, "label"),
])
def test_bad_shadow_requests_get_a_clear_422_and_change_nothing(any_client, deployer, body, field):
    answer = any_client.put(SHADOW, json=body, headers=deployer)
    assert answer.status_code == 422, answer.json
    assert field in str(answer.json["error"]), answer.json
    assert "shadow" not in any_client.get(ROLLOUT, headers=deployer).json
    assert any_client.get(HISTORY, headers=deployer).json["items"][0]["step"] is None


def test_stale_if_match_is_refused(any_client, deployer):
    answer = any_client.put(SHADOW, json={"version": 2, "share": 0.5},
                            headers={**deployer, "If-Match": '"stale"'})
    assert answer.status_code == 412


def test_a_shadow_that_becomes_the_canary_stops_being_shadowed(any_client, deployer):
    assert any_client.put(SHADOW, json={"version": 2, "share": 1.0},
                          headers=deployer).status_code == 200
    answer = any_client.put(ROLLOUT, json={"stable": 1, "canary": 2, "canary_weight": 0.1},
                            headers=deployer)
    assert answer.status_code == 200
    assert "shadow" not in answer.json
    latest = any_client.get(HISTORY, headers=deployer).json["items"][0]
    assert (latest["canary"], latest["shadow"]) == (2, None)


def test_the_gateway_and_reconciler_read_the_shadow_in_the_rollout_state(app, client, keys,
                                                                        bearer, version_body):
    from service import rollout
    from service.delivery.reconciler import wanted_labels
    headers = bearer(keys["deployer"])
    client.post("/api/v1/models", json={"name": "penguins"}, headers=headers)
    for version in (1, 2):
        client.post("/api/v1/models/penguins/versions", json=version_body(version), headers=headers)
    client.put(ROLLOUT, json={"stable": 1}, headers=headers)
    client.put(SHADOW, json={"version": 2, "share": 0.5}, headers=headers)
    with app.app_context():
        state = rollout.get_rollout_state("penguins")
    assert state == {"stable": 1, "canary": None, "previous": None, "canary_weight": 0.0,
                     "shadow": 2, "shadow_share": 0.5}
    assert wanted_labels(state) == {"stable": 1, "shadow": 2}


def test_stored_comparisons_are_summed_per_stable_version(any_app, any_client, deployer):
    from service import db, shadow_sender
    any_client.put(SHADOW, json={"version": 2, "share": 1.0}, headers=deployer)
    comparer = shadow_sender.Comparer(any_app.config, lambda: db.engine(any_app))
    try:
        for rows, agreed, primary_s, shadow_s in ((10, 10, 0.002, 0.004), (10, 7, 0.003, 0.02)):
            tally = shadow_sender.Tally(requests=1, rows=rows, agreed=agreed)
            tally.add_latency(shadow_sender.PRIMARY, primary_s)
            tally.add_latency(shadow_sender.SHADOW, shadow_s)
            comparer._tallies[("penguins", 1, 2)] = tally
            assert comparer.flush() == 1
        failed = shadow_sender.Tally(requests=2, failed=2)
        comparer._tallies[("penguins", 1, 2)] = failed
        comparer.count_drops(("penguins", 1, 2), 5)
        comparer._tallies[("absent", 1, 2)] = shadow_sender.Tally(requests=1)  # deleted: skipped
        assert comparer.flush() == 2
        assert comparer.flush() == 0  # nothing new
    finally:
        comparer.close(timeout=1)
    report = any_client.get(SHADOW, headers=deployer).json
    [found] = report["comparisons"]
    assert (found["primary_version"], found["shadow_version"]) == (1, 2)
    assert (found["requests"], found["failed"], found["dropped"], found["compared"]) == (4, 2, 5, 2)
    assert (found["rows"], found["agreed"], found["agreement_rate"]) == (20, 17, 0.85)
    assert found["primary_latency"]["mean_s"] == pytest.approx(0.0025)
    assert found["primary_latency"]["p99_s"] == 0.003
    assert found["shadow_latency"]["p50_s"] == 0.004 and found["shadow_latency"]["p99_s"] == 0.025
    assert found["since"] <= found["until"]
    # Another shadow version's comparison is asked for by version; stopping keeps it in history.
    assert any_client.get(SHADOW + "?version=3", headers=deployer).json["comparisons"] == []
    stopped = any_client.delete(SHADOW, headers=deployer)
    assert stopped.json["comparisons"][0]["agreed"] == 17
    history = any_client.get(HISTORY, headers=deployer).json["items"][0]
    assert history["measurements"]["comparisons"][0]["agreement_rate"] == 0.85
    assert any_client.get(SHADOW + "?version=2", headers=deployer).json["comparisons"][0][
        "rows"] == 20
