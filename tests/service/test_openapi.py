"""The OpenAPI document is generated from the code and matches real responses. Budget: ~3 s.

Real responses of a full registry flow (successes and errors) are validated with jsonschema
against the schema the document gives for their operation and status.
"""
import re

import jsonschema
import pytest

from service import auth


@pytest.fixture
def spec(client):
    answer = client.get("/api/v1/openapi.json")
    assert answer.status_code == 200
    return answer.json


def openapi_path(app, url, method):
    rule, _ = app.url_map.bind("localhost").match(url.split("?")[0], method, return_rule=True)
    return rule, re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)


def check(app, spec, method, url, response):
    """Assert the response's status is documented for its operation and its body fits the schema."""
    _, path = openapi_path(app, url, method)
    operation = spec["paths"][path][method.lower()]
    documented = operation["responses"]
    status = str(response.status_code)
    assert status in documented or (response.status_code >= 400 and "default" in documented), \
        f"{method} {path} answered {status}, documented: {sorted(documented)}"
    doc = documented.get(status, documented.get("default"))
    if "$ref" in doc:
        doc = spec["components"]["responses"][doc["$ref"].rsplit("/", 1)[1]]
    if response.status_code == 204:
        assert response.data == b"" and "content" not in doc
        return
    schema = doc["content"]["application/json"]["schema"]
    jsonschema.validate(response.json, {**schema, "components": spec["components"]},
                        cls=jsonschema.Draft202012Validator)


def test_document_basics(spec):
    assert spec["openapi"].startswith("3.1")
    assert spec["components"]["securitySchemes"] == auth.SECURITY_SCHEMES
    assert spec["components"]["schemas"]["Error"]["required"] == ["error"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            assert operation["security"] == auth.SECURITY, f"{method} {path} documents no security"
            assert {"401", "403"} <= set(operation["responses"]), f"{method} {path}"


def test_swagger_ui_is_served(client):
    answer = client.get("/api/v1/docs")
    assert answer.status_code == 200 and b"swagger" in answer.data.lower()
    assert b"/api/v1/openapi.json" in answer.data


def test_real_responses_match_the_document(app, client, keys, bearer, spec, version_body):
    admin, reader, predictor = bearer(keys["admin"]), bearer(keys["reader"]), bearer(keys["predictor"])
    calls = [
        ("POST", "/api/v1/models", {"name": "penguins", "tags": ["t"]}, admin),
        ("POST", "/api/v1/models", {"name": "penguins"}, admin),  # 409
        ("POST", "/api/v1/models", {"name": "Bad"}, admin),  # 422
        ("GET", "/api/v1/models?per_page=1&tag=t", None, reader),
        ("GET", "/api/v1/models?per_page=0", None, reader),  # 422
        ("GET", "/api/v1/models/penguins", None, reader),
        ("GET", "/api/v1/models/absent", None, reader),  # 404
        ("GET", "/api/v1/models", None, None),  # 401
        ("POST", "/api/v1/models", {"name": "x"}, reader),  # 403
        ("PUT", "/api/v1/models/penguins", {"description": "d", "owner": "o", "tags": []}, admin),
        ("PATCH", "/api/v1/models/penguins", {"owner": "p"}, admin),
        ("POST", "/api/v1/models/penguins/versions", version_body(1), admin),
        ("POST", "/api/v1/models/penguins/versions", version_body(2), admin),
        ("POST", "/api/v1/models/penguins/versions", version_body(2), admin),  # 409
        ("GET", "/api/v1/models/penguins/versions", None, reader),
        ("GET", "/api/v1/models/penguins/versions/1", None, reader),
        ("PATCH", "/api/v1/models/penguins/versions/2", {"metrics": {"a": 1}}, admin),
        ("GET", "/api/v1/models/penguins/rollout", None, reader),
        ("PUT", "/api/v1/models/penguins/rollout", {"stable": 1}, admin),
        ("PUT", "/api/v1/models/penguins/rollout", {"stable": 7}, admin),  # 422
        ("DELETE", "/api/v1/models/penguins", None, admin),  # 409 serving
        ("DELETE", "/api/v1/models/penguins/versions/2", None, admin),
        ("POST", "/api/v1/models/absent:predict", {"instances": []}, predictor),  # 404
        ("PUT", "/api/v1/models/penguins/rollout", {"stable": None}, admin),
        ("DELETE", "/api/v1/models/penguins", None, admin),
    ]
    statuses = set()
    for method, url, body, headers in calls:
        response = client.open(url, method=method, json=body, headers=headers or {})
        check(app, spec, method, url, response)
        statuses.add(response.status_code)
    assert statuses >= {200, 201, 204, 401, 403, 404, 409, 422}


def test_412_and_415_match_the_document(app, client, keys, bearer, spec):
    admin = bearer(keys["admin"])
    client.post("/api/v1/models", json={"name": "penguins"}, headers=admin)
    stale = client.patch("/api/v1/models/penguins", json={"owner": "x"},
                         headers={**admin, "If-Match": '"stale"'})
    assert stale.status_code == 412
    check(app, spec, "PATCH", "/api/v1/models/penguins", stale)
    not_json = client.post("/api/v1/models", data="name=x", headers={
        **admin, "Content-Type": "application/x-www-form-urlencoded"})
    assert not_json.status_code == 415
    check(app, spec, "POST", "/api/v1/models", not_json)
