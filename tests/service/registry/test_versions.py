"""The /api/v1/models/{name}/versions resource. Budget: ~3 s."""
import copy

import pytest

VERSIONS = "/api/v1/models/penguins/versions"


@pytest.fixture
def penguins(client, keys, bearer):
    answer = client.post("/api/v1/models", json={"name": "penguins"},
                         headers=bearer(keys["deployer"]))
    assert answer.status_code == 201


def test_register_read_list_patch_delete(any_client, any_keys, bearer, version_body):
    deployer = bearer(any_keys["deployer"])
    any_client.post("/api/v1/models", json={"name": "penguins"}, headers=deployer)
    created = any_client.post(VERSIONS, json=version_body(2), headers=deployer)
    assert created.status_code == 201, created.json
    assert created.headers["Location"] == f"{VERSIONS}/2"
    body = created.json
    assert body["status"] == "staged" and body["model"] == "penguins"
    assert body["input_schema"]["inputs"]["island"]["categories"] == ["Biscoe", "Dream", "Torgersen"]
    assert body["feature_statistics"]["bill_length_mm"]["max"] == 59.6
    assert body["exported_at"] == "2026-11-25T03:30:00+00:00"
    any_client.post(VERSIONS, json=version_body(1), headers=deployer)

    read = any_client.get(f"{VERSIONS}/2", headers=bearer(any_keys["reader"]))
    assert read.json == body and read.headers["ETag"] == created.headers["ETag"]
    listed = any_client.get(VERSIONS, headers=deployer).json
    assert [v["version"] for v in listed["items"]] == [2, 1] and listed["total"] == 2
    ascending = any_client.get(f"{VERSIONS}?sort=version", headers=deployer).json
    assert [v["version"] for v in ascending["items"]] == [1, 2]

    retired = any_client.patch(f"{VERSIONS}/1", json={"status": "retired", "metrics": {"a": 1}},
                               headers=deployer)
    assert retired.status_code == 200 and retired.json["status"] == "retired"
    assert retired.json["metrics"] == {"a": 1}
    only_retired = any_client.get(f"{VERSIONS}?status=retired", headers=deployer).json
    assert [v["version"] for v in only_retired["items"]] == [1]

    stale = any_client.patch(f"{VERSIONS}/2", json={"status": "retired"},
                             headers={**deployer, "If-Match": '"not-the-etag"'})
    assert stale.status_code == 412
    assert any_client.get(f"{VERSIONS}/2", headers=deployer).json["status"] == "staged"

    admin = bearer(any_keys["admin"])
    assert any_client.delete(f"{VERSIONS}/1", headers=admin).status_code == 204
    assert any_client.get(f"{VERSIONS}/1", headers=deployer).status_code == 404


def test_duplicate_version_gets_409(client, keys, bearer, version_body, penguins):
    headers = bearer(keys["deployer"])
    assert client.post(VERSIONS, json=version_body(1), headers=headers).status_code == 201
    again = client.post(VERSIONS, json=version_body(1, artifact_uri="file:///other"),
                        headers=headers)
    assert again.status_code == 409 and again.json["error"]["field"] == "version"
    assert client.get(f"{VERSIONS}/1", headers=headers).json["artifact_uri"] == \
        "file:///models/penguins/1"


def test_version_of_unknown_model_gets_404(client, keys, bearer, version_body):
    answer = client.post("/api/v1/models/absent/versions", json=version_body(1),
                         headers=bearer(keys["deployer"]))
    assert answer.status_code == 404 and answer.json["error"]["field"] == "name"


def _without_input_categories(body):
    body = copy.deepcopy(body)
    del body["input_schema"]["inputs"]["island"]["categories"]
    return body


@pytest.mark.parametrize("change, field", [
    (lambda b: {**b, "version": 0}, "version"),
    (lambda b: {**b, "version": "2"}, "version"),
    (lambda b: {k: v for k, v in b.items() if k != "artifact_uri"}, "artifact_uri"),
    (lambda b: {**b, "artifact_uri": ""}, "artifact_uri"),
    (lambda b: {k: v for k, v in b.items() if k != "input_schema"}, "input_schema"),
    (lambda b: {**b, "input_schema": {"inputs": {}}}, "input_schema.inputs"),
    (lambda b: {**b, "input_schema": {"inputs": {"x": {"dtype": "complex", "shape": [-1],
                                                        "kind": "numeric"}}}},
     "input_schema.inputs.x.dtype"),
    (_without_input_categories, "input_schema.inputs.island.categories"),
    (lambda b: {**b, "metrics": [1]}, "metrics"),
    (lambda b: {**b, "training_data_sha256": "xyz"}, "training_data_sha256"),
    (lambda b: {**b, "exported_at": "yesterday"}, "exported_at"),
    (lambda b: {**b, "status": "stable"}, "status"),
])
def test_invalid_version_bodies_get_422(client, keys, bearer, version_body, penguins, change, field):
    answer = client.post(VERSIONS, json=change(version_body(3)), headers=bearer(keys["deployer"]))
    assert answer.status_code == 422, answer.json
    assert answer.json["error"]["field"] == field


@pytest.mark.parametrize("status", ["stable", "canary", "previous", "bogus"])
def test_serving_statuses_are_not_set_by_patch(client, keys, bearer, version_body, penguins, status):
    headers = bearer(keys["deployer"])
    client.post(VERSIONS, json=version_body(1), headers=headers)
    answer = client.patch(f"{VERSIONS}/1", json={"status": status}, headers=headers)
    assert answer.status_code == 422 and answer.json["error"]["field"] == "status"


def test_versions_in_the_rollout_cannot_be_retired_or_deleted(client, keys, bearer, version_body,
                                                              penguins):
    headers = bearer(keys["admin"])
    client.post(VERSIONS, json=version_body(1), headers=headers)
    client.put("/api/v1/models/penguins/rollout", json={"stable": 1}, headers=headers)
    retire = client.patch(f"{VERSIONS}/1", json={"status": "retired"}, headers=headers)
    assert retire.status_code == 409 and retire.json["error"]["field"] == "status"
    delete = client.delete(f"{VERSIONS}/1", headers=headers)
    assert delete.status_code == 409
    assert client.get(f"{VERSIONS}/1", headers=headers).json["status"] == "stable"


def test_versions_page_by_cursor(any_client, any_keys, bearer, version_body):
    deployer = bearer(any_keys["deployer"])
    any_client.post("/api/v1/models", json={"name": "penguins"}, headers=deployer)
    for version in range(1, 6):
        any_client.post(VERSIONS, json=version_body(version), headers=deployer)
    page = any_client.get(f"{VERSIONS}?per_page=2&cursor=", headers=deployer).json
    seen = []
    while True:
        seen.append([v["version"] for v in page["items"]])
        assert page["total"] == 5 and page["page"] is None
        if "next" not in page["links"]:
            break
        page = any_client.get(page["links"]["next"], headers=deployer).json
    assert seen == [[5, 4], [3, 2], [1]]
    back = any_client.get(page["links"]["prev"], headers=deployer).json
    assert [v["version"] for v in back["items"]] == [3, 2]
    wrong = any_client.get(f"{VERSIONS}?sort=version&cursor={page['links']['prev'].split('cursor=')[1]}",
                           headers=deployer)
    assert wrong.status_code == 400 and wrong.json["error"]["field"] == "cursor"


def test_a_page_number_past_any_offset_gets_422(client, keys, bearer, penguins):
    answer = client.get(f"{VERSIONS}?page={2 ** 63}", headers=bearer(keys["reader"]))
    assert answer.status_code == 422 and answer.json["error"]["field"] == "page"
