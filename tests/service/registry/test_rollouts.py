"""The /api/v1/models/{name}/rollout resource and the gateway's read functions. Budget: ~3 s."""
import pytest

ROLLOUT = "/api/v1/models/penguins/rollout"


@pytest.fixture
def three_versions(any_client, any_keys, bearer, version_body):
    headers = bearer(any_keys["deployer"])
    any_client.post("/api/v1/models", json={"name": "penguins"}, headers=headers)
    for version in (1, 2, 3):
        assert any_client.post("/api/v1/models/penguins/versions", json=version_body(version),
                               headers=headers).status_code == 201
    return headers


def statuses(client, headers):
    items = client.get("/api/v1/models/penguins/versions?sort=version", headers=headers).json
    return {v["version"]: v["status"] for v in items["items"]}


def test_promote_canary_rollback(any_client, three_versions):
    headers = three_versions
    empty = any_client.get(ROLLOUT, headers=headers)
    assert empty.json == {"model": "penguins", "stable": None, "canary": None, "previous": None,
                          "canary_weight": 0.0, "updated_at": empty.json["updated_at"]}
    steps = [
        ({"stable": 1}, (1, None, None), {1: "stable", 2: "staged", 3: "staged"}),
        ({"stable": 1, "canary": 2, "canary_weight": 0.25}, (1, 2, None),
         {1: "stable", 2: "canary", 3: "staged"}),
        ({"stable": 2}, (2, None, 1), {1: "previous", 2: "stable", 3: "staged"}),
        ({"stable": 2, "canary": 3, "canary_weight": 0.1}, (2, 3, 1),
         {1: "previous", 2: "stable", 3: "canary"}),
        ({"stable": 2}, (2, None, 1), {1: "previous", 2: "stable", 3: "retired"}),  # canary aborted
        ({"stable": 1}, (1, None, 2), {1: "stable", 2: "previous", 3: "retired"}),  # rollback
    ]
    etag = empty.headers["ETag"]
    for body, (stable, canary, previous), expected in steps:
        answer = any_client.put(ROLLOUT, json=body, headers={**headers, "If-Match": etag})
        assert answer.status_code == 200, (body, answer.json)
        assert (answer.json["stable"], answer.json["canary"], answer.json["previous"]) == \
            (stable, canary, previous), body
        assert answer.json["canary_weight"] == body.get("canary_weight", 0.0)
        assert statuses(any_client, headers) == expected, body
        assert answer.headers["ETag"] != etag
        etag = answer.headers["ETag"]


def test_stale_if_match_changes_nothing(any_client, three_versions):
    headers = three_versions
    first = any_client.put(ROLLOUT, json={"stable": 1}, headers=headers)
    any_client.put(ROLLOUT, json={"stable": 2}, headers=headers)
    stale = any_client.put(ROLLOUT, json={"stable": 3},
                           headers={**headers, "If-Match": first.headers["ETag"]})
    assert stale.status_code == 412
    assert any_client.get(ROLLOUT, headers=headers).json["stable"] == 2
    assert statuses(any_client, headers) == {1: "previous", 2: "stable", 3: "staged"}


@pytest.mark.parametrize("body, field", [
    ({}, "stable"),
    ({"stable": 9}, "stable"),
    ({"stable": 1, "canary": 9, "canary_weight": 0.5}, "canary"),
    ({"stable": None, "canary": 2}, "canary"),
    ({"stable": 1, "canary": 1}, "canary"),
    ({"stable": 1, "canary_weight": 0.5}, "canary_weight"),
    ({"stable": 1, "canary": 2, "canary_weight": 1.5}, "canary_weight"),
    ({"stable": 1, "canary": 2, "canary_weight": -0.1}, "canary_weight"),
    ({"stable": "1"}, "stable"),
    ({"stable": 1, "previous": 2}, "previous"),
])
def test_invalid_rollouts_get_422_and_change_nothing(any_client, three_versions, body, field):
    headers = three_versions
    answer = any_client.put(ROLLOUT, json=body, headers=headers)
    assert answer.status_code == 422, answer.json
    assert answer.json["error"]["field"] == field
    assert any_client.get(ROLLOUT, headers=headers).json["stable"] is None
    assert set(statuses(any_client, headers).values()) == {"staged"}


def test_gateway_read_functions(app, client, keys, bearer, version_body):
    from service import rollout
    from service.errors import NotFound
    headers = bearer(keys["deployer"])
    client.post("/api/v1/models", json={"name": "penguins"}, headers=headers)
    for version in (1, 2):
        client.post("/api/v1/models/penguins/versions", json=version_body(version), headers=headers)
    client.put(ROLLOUT, json={"stable": 1, "canary": 2, "canary_weight": 0.3}, headers=headers)
    with app.app_context():
        assert rollout.get_rollout_state("penguins") == {
            "stable": 1, "canary": 2, "previous": None, "canary_weight": 0.3}
        schema = rollout.get_version_schema("penguins", 2)
        assert schema["input_schema"]["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
        assert schema["feature_statistics"]["island"]["categories"]["Biscoe"] == 0.49
        with pytest.raises(NotFound):
            rollout.get_rollout_state("absent")
        with pytest.raises(NotFound):
            rollout.get_version_schema("penguins", 7)
