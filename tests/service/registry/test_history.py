"""The rollout history: every PUT /rollout is recorded with actor, step, measurements and reason,
on SQLite and PostgreSQL. (Tests service/registry/history.py.) Budget: ~3 s."""
import pytest

ROLLOUT = "/api/v1/models/penguins/rollout"
HISTORY = ROLLOUT + "/history"


@pytest.fixture
def two_versions(any_client, any_keys, bearer, version_body):
    headers = bearer(any_keys["deployer"])
    any_client.post("/api/v1/models", json={"name": "penguins"}, headers=headers)
    for version in (1, 2):
        assert any_client.post("/api/v1/models/penguins/versions", json=version_body(version),
                               headers=headers).status_code == 201
    return headers


def test_every_transition_is_recorded_newest_first(any_client, any_keys, bearer, two_versions):
    transitions = [
        {"stable": 1, "reason": "first deploy"},
        {"stable": 1, "canary": 2, "canary_weight": 0.05, "step": "5%",
         "measurements": {"error_ratio": 0.0, "psi": 0.01}},
        {"stable": 2, "step": "promote", "reason": "all steps passed"},
        {"stable": 1, "step": "rollback", "reason": "operator asked"},
    ]
    for body in transitions:
        assert any_client.put(ROLLOUT, json=body, headers=two_versions).status_code == 200
    answer = any_client.get(HISTORY, headers=bearer(any_keys["reader"]))
    assert answer.status_code == 200, answer.json
    items = answer.json["items"]
    assert answer.json["total"] == 4
    assert [(e["stable"], e["canary"], e["previous"], e["canary_weight"]) for e in items] == [
        (1, None, 2, 0.0), (2, None, 1, 0.0), (1, 2, None, 0.05), (1, None, None, 0.0)]
    assert [e["step"] for e in items] == ["rollback", "promote", "5%", None]
    assert [e["reason"] for e in items] == ["operator asked", "all steps passed", "",
                                            "first deploy"]
    assert items[2]["measurements"] == {"error_ratio": 0.0, "psi": 0.01}
    assert all(e["actor"].startswith("test deployer (") for e in items)
    assert any_keys["deployer"] not in str(answer.json)
    assert [e["id"] for e in items] == sorted((e["id"] for e in items), reverse=True)
    assert items[0]["recorded_at"] >= items[-1]["recorded_at"]


def test_a_refused_transition_records_nothing(any_client, two_versions):
    assert any_client.put(ROLLOUT, json={"stable": 7}, headers=two_versions).status_code == 422
    stale = any_client.put(ROLLOUT, json={"stable": 1},
                           headers={**two_versions, "If-Match": '"stale"'})
    assert stale.status_code == 412
    assert any_client.get(HISTORY, headers=two_versions).json["total"] == 0


@pytest.mark.parametrize("body, field", [
    ({"stable": 1, "step": "x" * 65}, "step"),
    ({"stable": 1, "measurements": ["not", "an", "object"]}, "measurements"),
    ({"stable": 1, "reason": 5}, "reason"),
])
def test_bad_history_fields_get_422(client, keys, bearer, version_body, body, field):
    headers = bearer(keys["deployer"])
    client.post("/api/v1/models", json={"name": "penguins"}, headers=headers)
    client.post("/api/v1/models/penguins/versions", json=version_body(1), headers=headers)
    answer = client.put(ROLLOUT, json=body, headers=headers)
    assert answer.status_code == 422, answer.json
    assert field in str(answer.json)


def test_history_needs_a_reader_and_a_known_model(client, keys, bearer):
    assert client.get(HISTORY).status_code == 401
    assert client.get(HISTORY, headers=bearer(keys["predictor"])).status_code == 403
    assert client.get("/api/v1/models/nope/rollout/history",
                      headers=bearer(keys["reader"])).status_code == 404


def test_history_goes_with_its_model(client, keys, bearer, version_body):
    headers = bearer(keys["admin"])
    for _ in range(2):
        client.post("/api/v1/models", json={"name": "penguins"}, headers=headers)
        client.post("/api/v1/models/penguins/versions", json=version_body(1), headers=headers)
        client.put(ROLLOUT, json={"stable": 1}, headers=headers)
        assert client.get(HISTORY, headers=headers).json["total"] == 1
        client.put(ROLLOUT, json={"stable": None}, headers=headers)
        assert client.delete("/api/v1/models/penguins", headers=headers).status_code == 204
