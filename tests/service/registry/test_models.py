"""The /api/v1/models resource on SQLite and PostgreSQL. Budget: ~5 s (PostgreSQL start excluded)."""
import pytest

MODELS = "/api/v1/models"


def create(client, headers, name="penguins", **fields):
    return client.post(MODELS, json={"name": name, **fields}, headers=headers)


def test_crud_flow(any_client, any_keys, bearer):
    deployer, admin = bearer(any_keys["deployer"]), bearer(any_keys["admin"])
    created = create(any_client, deployer, description="Palmer penguins", owner="ml-team",
                     tags=["tabular", "demo"])
    assert created.status_code == 201, created.json
    assert created.headers["Location"] == f"{MODELS}/penguins"
    assert created.json["tags"] == ["demo", "tabular"]
    assert created.json["serving"] is False

    read = any_client.get(created.headers["Location"], headers=bearer(any_keys["reader"]))
    assert read.status_code == 200
    assert read.json == created.json
    assert read.headers["ETag"] == created.headers["ETag"]

    replaced = any_client.put(f"{MODELS}/penguins", headers={**deployer,
                              "If-Match": read.headers["ETag"]},
                              json={"description": "v2", "owner": "ops", "tags": ["x"]})
    assert replaced.status_code == 200, replaced.json
    assert (replaced.json["description"], replaced.json["owner"], replaced.json["tags"]) == \
        ("v2", "ops", ["x"])
    assert replaced.headers["ETag"] != read.headers["ETag"]

    patched = any_client.patch(f"{MODELS}/penguins", headers=deployer, json={"tags": ["y", "x"]})
    assert patched.status_code == 200
    assert patched.json["tags"] == ["x", "y"] and patched.json["owner"] == "ops"
    assert patched.headers["ETag"] != replaced.headers["ETag"]

    listed = any_client.get(MODELS, headers=deployer)
    assert [m["name"] for m in listed.json["items"]] == ["penguins"]
    assert listed.json["total"] == 1

    deleted = any_client.delete(f"{MODELS}/penguins", headers={**admin,
                                "If-Match": patched.headers["ETag"]})
    assert deleted.status_code == 204 and deleted.data == b""
    gone = any_client.get(f"{MODELS}/penguins", headers=deployer)
    assert gone.status_code == 404
    assert gone.json["error"] == {"code": "not_found", "message": "model 'penguins' does not exist",
                                  "field": "name"}


def test_stale_if_match_gets_412_and_changes_nothing(any_client, any_keys, bearer):
    headers = bearer(any_keys["admin"])
    first = create(any_client, headers, owner="a")
    update = any_client.patch(f"{MODELS}/penguins", json={"owner": "b"},
                              headers={**headers, "If-Match": first.headers["ETag"]})
    assert update.status_code == 200
    for method, body in (("patch", {"owner": "c"}),
                         ("put", {"description": "", "owner": "c", "tags": []}),
                         ("delete", None)):
        stale = getattr(any_client, method)(f"{MODELS}/penguins", json=body,
                                             headers={**headers, "If-Match": first.headers["ETag"]})
        assert stale.status_code == 412, (method, stale.json)
        assert stale.json["error"]["code"] == "precondition_failed"
        assert stale.json["error"]["field"] == "If-Match"
    now = any_client.get(f"{MODELS}/penguins", headers=headers)
    assert now.json["owner"] == "b" and now.headers["ETag"] == update.headers["ETag"]
    star = any_client.patch(f"{MODELS}/penguins", json={"owner": "d"},
                            headers={**headers, "If-Match": "*"})
    assert star.status_code == 200


def test_duplicate_name_gets_409(any_client, any_keys, bearer):
    headers = bearer(any_keys["deployer"])
    assert create(any_client, headers).status_code == 201
    again = create(any_client, headers, owner="someone else")
    assert again.status_code == 409
    assert again.json["error"]["field"] == "name"
    assert any_client.get(f"{MODELS}/penguins", headers=headers).json["owner"] == ""


def test_deleting_a_serving_model_gets_409(any_client, any_keys, bearer, version_body):
    headers = bearer(any_keys["admin"])
    create(any_client, headers)
    any_client.post(f"{MODELS}/penguins/versions", json=version_body(1), headers=headers)
    assert any_client.put(f"{MODELS}/penguins/rollout", json={"stable": 1},
                          headers=headers).status_code == 200
    refused = any_client.delete(f"{MODELS}/penguins", headers=headers)
    assert refused.status_code == 409
    assert "serving" in refused.json["error"]["message"]
    assert any_client.get(f"{MODELS}/penguins", headers=headers).json["serving"] is True
    any_client.put(f"{MODELS}/penguins/rollout", json={"stable": None}, headers=headers)
    assert any_client.delete(f"{MODELS}/penguins", headers=headers).status_code == 204
    assert any_client.get(f"{MODELS}/penguins/versions/1", headers=headers).status_code == 404


def test_name_cannot_change_through_put(client, keys, bearer):
    headers = bearer(keys["deployer"])
    create(client, headers)
    answer = client.put(f"{MODELS}/penguins", headers=headers,
                        json={"name": "other", "description": "", "owner": "", "tags": []})
    assert answer.status_code == 422 and answer.json["error"]["field"] == "name"


@pytest.mark.parametrize("body, status, field", [
    ({}, 422, "name"),
    ({"name": "Penguins"}, 422, "name"),
    ({"name": "-penguins"}, 422, "name"),
    ({"name": "a" * 64}, 422, "name"),
    ({"name": "has space"}, 422, "name"),
    ({"name": 12}, 422, "name"),
    ({"name": "ok", "tags": "tabular"}, 422, "tags"),
    ({"name": "ok", "tags": ["bad tag"]}, 422, "tags.0"),
    ({"name": "ok", "tags": ["t"] * 33}, 422, "tags"),
    ({"name": "ok", "owner": None}, 422, "owner"),
    ({"name": "ok", "unexpected": 1}, 422, "unexpected"),
])
def test_invalid_create_bodies_get_422_naming_the_field(client, keys, bearer, body, status, field):
    answer = client.post(MODELS, json=body, headers=bearer(keys["deployer"]))
    assert answer.status_code == status, answer.json
    assert answer.json["error"]["code"] == "validation_failed"
    assert answer.json["error"]["field"] == field
    assert answer.json["error"]["message"].startswith(f"{field}: ")


@pytest.mark.parametrize("data, content_type, status, code", [
    ('{"name": "ok"}', "text/plain", 415, "unsupported_media_type"),
    ('{"name": "ok"}', None, 415, "unsupported_media_type"),
    ("name=ok", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ('{"name": ', "application/json", 400, "bad_request"),
    ("", "application/json", 400, "bad_request"),
    ('["ok"]', "application/json", 400, "bad_request"),
    ('"ok"', "application/json", 400, "bad_request"),
])
def test_non_json_and_malformed_bodies(client, keys, bearer, data, content_type, status, code):
    headers = bearer(keys["deployer"])
    if content_type:
        headers["Content-Type"] = content_type
    answer = client.post(MODELS, data=data, headers=headers)
    assert answer.status_code == status
    assert answer.json["error"]["code"] == code
    assert answer.json["error"]["field"] in ("Content-Type", "body")


def test_patch_needs_a_field(client, keys, bearer):
    headers = bearer(keys["deployer"])
    create(client, headers)
    answer = client.patch(f"{MODELS}/penguins", json={}, headers=headers)
    assert answer.status_code == 422


def test_routing_errors_are_json(client, keys, bearer):
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"
    wrong_method = client.delete(MODELS, headers=bearer(keys["admin"]))
    assert wrong_method.status_code == 405
    assert wrong_method.json["error"]["code"] == "method_not_allowed"
    assert "POST" in wrong_method.headers["Allow"]


def test_unknown_model_routes_get_404(client, keys, bearer):
    headers = bearer(keys["admin"])
    for method in ("get", "patch", "delete"):
        answer = getattr(client, method)(f"{MODELS}/absent", json={"owner": "x"}, headers=headers)
        assert answer.status_code == 404, method


def test_concurrent_conflicting_updates_one_wins(any_app, any_keys, bearer):
    """Twenty updates with the same If-Match at once: exactly one 200, the rest 412."""
    import threading
    client = any_app.test_client()
    headers = bearer(any_keys["deployer"])
    etag = create(client, headers).headers["ETag"]
    answers, barrier = [], threading.Barrier(20)

    def update(index):
        barrier.wait(timeout=10)
        answer = any_app.test_client().patch(f"{MODELS}/penguins", json={"owner": f"o{index}"},
                                             headers={**headers, "If-Match": etag})
        answers.append((answer.status_code, index))

    threads = [threading.Thread(target=update, args=(index,)) for index in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    codes = sorted(code for code, _ in answers)
    assert codes == [200] + [412] * 19, codes
    winner = next(index for code, index in answers if code == 200)
    assert client.get(f"{MODELS}/penguins", headers=headers).json["owner"] == f"o{winner}"


def test_oversized_body_gets_413(app_factory, sqlite_url, keys, bearer):
    app = app_factory(sqlite_url, MAX_CONTENT_LENGTH=1000)
    answer = app.test_client().post(MODELS, json={"name": "big", "description": "x" * 2000},
                                    headers=bearer(keys["deployer"]))
    assert answer.status_code == 413 and answer.json["error"]["code"] == "payload_too_large"


def test_list_items_equal_each_models_own_body(any_client, any_keys, bearer, version_body):
    """The list writes its items itself (no marshmallow): they must stay the GET bodies."""
    headers = bearer(any_keys["admin"])
    create(any_client, headers, description="serving one", owner="o", tags=["b", "a"])
    create(any_client, headers, name="quiet", tags=[])
    any_client.post(f"{MODELS}/penguins/versions", json=version_body(1), headers=headers)
    any_client.put(f"{MODELS}/penguins/rollout", json={"stable": 1}, headers=headers)
    for query in ("", "?status=stable", "?cursor=", "?sort=-updated_at&tag=a"):
        listed = any_client.get(f"{MODELS}{query}", headers=headers).json["items"]
        assert listed, query
        for item in listed:
            assert item == any_client.get(f"{MODELS}/{item['name']}", headers=headers).json, query
    assert [m["serving"] for m in any_client.get(MODELS, headers=headers).json["items"]] == [True, False]
    any_client.put(f"{MODELS}/penguins/rollout", json={"stable": None}, headers=headers)


def test_the_status_filter_follows_every_version_and_owner_change(any_client, any_keys, bearer,
                                                                  version_body):
    """The status filter reads model_statuses, which database triggers keep: check it after
    each kind of write (register, retire, rollout, delete a version, new owner, delete)."""
    headers = bearer(any_keys["admin"])

    def listed(query):
        page = any_client.get(f"{MODELS}?{query}", headers=headers).json
        assert page["total"] == len(page["items"]), query
        return [m["name"] for m in page["items"]]

    create(any_client, headers, owner="a")
    create(any_client, headers, name="other", owner="a")
    for version in (1, 2, 3):
        any_client.post(f"{MODELS}/penguins/versions", json=version_body(version), headers=headers)
    assert listed("status=staged") == ["penguins"] and listed("status=stable") == []
    any_client.patch(f"{MODELS}/penguins/versions/3", json={"status": "retired"}, headers=headers)
    assert listed("status=retired&owner=a") == ["penguins"] and listed("status=staged") == ["penguins"]
    any_client.put(f"{MODELS}/penguins/rollout", json={"stable": 1, "canary": 2, "canary_weight": 0.5},
                   headers=headers)
    assert listed("status=staged") == [] and listed("status=canary&owner=a") == ["penguins"]
    any_client.put(f"{MODELS}/penguins/rollout", json={"stable": 2}, headers=headers)
    assert (listed("status=stable"), listed("status=previous"), listed("status=canary")) == \
        (["penguins"], ["penguins"], [])
    any_client.delete(f"{MODELS}/penguins/versions/3", headers=headers)
    assert listed("status=retired") == []
    any_client.patch(f"{MODELS}/penguins", json={"owner": "b"}, headers=headers)
    assert listed("status=stable&owner=a") == [] and listed("status=stable&owner=b") == ["penguins"]
    any_client.put(f"{MODELS}/penguins/rollout", json={"stable": None}, headers=headers)
    assert any_client.delete(f"{MODELS}/penguins", headers=headers).status_code == 204
    assert listed("status=previous") == [] and listed("owner=a") == ["other"]
