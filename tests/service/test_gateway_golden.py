"""TF Serving's golden request/response pairs (tests/model/server/golden_cases.json) through the
gateway: the API app (real SQLite registry, real keys) in front of the real local model server
serving fixture_models.py's 'multi' (version 1 stable, version 2 canary at weight 0).

Each golden case is translated from TF Serving's URL to the gateway's and lands in one class:

- ``answer``: a serving_default prediction on a pinned version (or the stable label); the
  gateway must answer exactly the golden response (and the same through the stable route).
- ``error``: a golden error; the gateway must answer the 4xx JSON error in ``EXPECTED_ERRORS``
  (its own validation 400, its registry 404, or TF Serving's 4xx passed through), never a 5xx.
- ``refused``: a golden success the gateway refuses by design with a 400 naming
  ``signature_name``: a version's registry entry describes one signature (serving_default), so
  the gateway validates and forwards only that one.
- ``not expressible``: the gateway has no URL for it (``NOT_EXPRESSIBLE`` says why).

Budget: ~25 s on 2 idle cores: exporting the two fixture versions and starting the model
server (TensorFlow import and load); the cases themselves take well under a second.
"""
import json
import os
import re

import pytest

from tests.model.server.conftest import model_config, start_server, stop_server
from tests.model.server.fixture_models import MODEL_NAME, export_versions
from tests.model.server.test_golden import CASES, same

SIGNATURE = "serving_default"
STABLE, CANARY = 1, 2
PINNED = re.compile(r"^/v1/models/([^/:]+)/versions/(\d+):predict$")
LATEST = re.compile(r"^/v1/models/([^/:]+):predict$")
LABELLED = re.compile(r"^/v1/models/([^/:]+)/labels/([^/:]+):predict$")

# Why a golden case has no gateway URL (checked against the cases, so a new case forces a choice).
NOT_EXPRESSIBLE = {
    "status of every version": "GET: the gateway forwards predictions only",
    "status by label": "GET: the gateway forwards predictions only",
    "status of an unknown model": "GET: the gateway forwards predictions only",
    "status of an unknown version": "GET: the gateway forwards predictions only",
    "malformed URL": "GET: the gateway forwards predictions only",
    "unknown label": "callers cannot name a label: the rollout state picks stable or canary",
}
# Golden successes the gateway refuses: the registry describes serving_default only.
REFUSED = {"signature_name, row format, one output is a plain list",
           "signature_name, columnar format, one output is one tensor",
           "b64 values in and *_bytes outputs as b64",
           "NaN and Infinity tokens in and out"}
# The gateway's answer to each golden error: (status, error code, field). Every one is the
# gateway's own (body parsing, registry lookup, input-schema validation): none reaches TF Serving.
EXPECTED_ERRORS = {
    "unknown model": (404, "not_found", "name"),
    "unknown version": (404, "not_found", "version"),
    "empty body": (400, "bad_request", "body"),
    "malformed JSON": (400, "bad_request", "body"),
    "signature_name not a string": (400, "invalid_input", "signature_name"),
    "unknown signature": (400, "invalid_input", "signature_name"),
    "neither inputs nor instances": (400, "invalid_input", "rows"),
    "both inputs and instances": (400, "invalid_input", "body"),
    "plain list for several inputs": (400, "invalid_input", "instances.0"),
    "missing named input (columnar)": (400, "invalid_input", "inputs.c"),
    "wrong dtype names the input": (400, "invalid_input", "instances.0.a"),
    "wrong shape names the input": (400, "invalid_input", "inputs.b.0"),
}


def gateway_path(case):
    """Return (gateway path, routed label or None), or (None, why) when the gateway has none."""
    path = case["path"]
    if case["method"] != "POST":
        return None, "GET: the gateway forwards predictions only"
    if match := PINNED.match(path):
        return f"/api/v1/models/{match[1]}/versions/{match[2]}:predict", None
    if match := LATEST.match(path):
        return f"/api/v1/models/{match[1]}:predict", "stable"
    if (match := LABELLED.match(path)) and match[2] == "stable":
        return f"/api/v1/models/{match[1]}:predict", "stable"
    return None, "callers cannot name a label: the rollout state picks stable or canary"


def body_of(case):
    """Return the golden request as JSON, or None when it is not JSON (a golden parse error)."""
    try:
        return json.loads(case.get("request", ""))
    except ValueError:
        return None


def kind_of(case):
    path, _ = gateway_path(case)
    if path is None:
        return "not expressible"
    if "response" not in case:
        return "error"
    body = body_of(case)
    return "answer" if body.get("signature_name", SIGNATURE) == SIGNATURE else "refused"


def string_values(name):
    """Return the values the golden serving_default requests send for string input `name`."""
    values = set()
    for case in CASES:
        body = body_of(case)
        if not isinstance(body, dict) or body.get("signature_name", SIGNATURE) != SIGNATURE:
            continue
        rows = body.get("instances") if isinstance(body.get("instances"), list) else []
        columns = body.get("inputs") if isinstance(body.get("inputs"), dict) else {}
        found = [row.get(name) for row in rows if isinstance(row, dict)] + list(
            columns.get(name) or [])
        values.update(value for value in found if isinstance(value, str))
    return sorted(values)


def multi_input_schema():
    """The registry's input schema for multi's serving_default (fixture_models.build_module)."""
    return {
        "signature_name": SIGNATURE,
        "inputs": {
            "a": {"dtype": "float32", "shape": [-1], "kind": "numeric"},
            "b": {"dtype": "float32", "shape": [-1, 2], "kind": "numeric"},
            "c": {"dtype": "string", "shape": [-1], "kind": "categorical",
                  "categories": string_values("c")},
        },
        "outputs": {"total": {"dtype": "float32", "shape": [-1]},
                    "length": {"dtype": "int64", "shape": [-1]},
                    "shout": {"dtype": "string", "shape": [-1]}},
    }


@pytest.fixture(scope="module")
def multi_server(tmp_path_factory):
    """The local model server serving multi 1 (stable) and 2 (canary) for this module."""
    root = tmp_path_factory.mktemp("gateway-golden")
    base = export_versions(str(root / MODEL_NAME), {1: 1.0, 2: 2.0})
    config = root / "models.config"
    config.write_text(model_config({MODEL_NAME: (base, "all {}",
                                                 {"stable": STABLE, "canary": CANARY})}))
    server = start_server([f"--model_config_file={config}"], str(root / "server.log"), MODEL_NAME)
    try:
        server.wait_until(lambda: sorted(
            v["version"] for v in server.get(f"/v1/models/{MODEL_NAME}").json()[
                "model_version_status"] if v["state"] == "AVAILABLE") == ["1", "2"],
            what="both versions to load")
        yield server, base
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def gateway(multi_server, build_app, sqlite_url, keys_for, empty_and_close):
    """(test client, predictor headers): the API with multi 1 and 2 registered, 1 stable."""
    server, base = multi_server
    app = build_app(sqlite_url, MODEL_SERVER_URL=server.url)
    client, keys = app.test_client(), keys_for(app)
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    try:
        assert client.post("/api/v1/models", json={"name": MODEL_NAME},
                           headers=admin).status_code == 201
        for version in (STABLE, CANARY):
            answer = client.post(f"/api/v1/models/{MODEL_NAME}/versions", headers=admin, json={
                "version": version, "artifact_uri": f"file://{os.path.join(base, str(version))}",
                "input_schema": multi_input_schema()})
            assert answer.status_code == 201, answer.get_json()
        answer = client.put(f"/api/v1/models/{MODEL_NAME}/rollout", json={
            "stable": STABLE, "canary": CANARY, "canary_weight": 0.0},
            headers={"Authorization": f"Bearer {keys['deployer']}"})
        assert answer.status_code == 200, answer.get_json()
        yield client, {"Authorization": f"Bearer {keys['predictor']}",
                       "Content-Type": "application/json"}
    finally:
        empty_and_close(app)


def send(gateway, path, case):
    client, headers = gateway
    return client.post(path, data=case.get("request", "").encode("utf-8"), headers=headers)


def by_kind(kind):
    chosen = [case for case in CASES if kind_of(case) == kind]
    return pytest.mark.parametrize("case", chosen, ids=[case["name"] for case in chosen])


def test_every_golden_case_is_classified():
    kinds = {case["name"]: kind_of(case) for case in CASES}
    assert {n for n, k in kinds.items() if k == "not expressible"} == set(NOT_EXPRESSIBLE)
    assert {n for n, k in kinds.items() if k == "refused"} == REFUSED
    assert {n for n, k in kinds.items() if k == "error"} == set(EXPECTED_ERRORS)
    assert {n for n, k in kinds.items() if k == "answer"}, "no golden case reaches the model"
    for case in CASES:
        if case["name"] in NOT_EXPRESSIBLE:
            assert gateway_path(case)[1] == NOT_EXPRESSIBLE[case["name"]]


def test_the_input_schema_holds_the_golden_categories():
    assert string_values("c") == ["hello", "s", "tf"]


@by_kind("answer")
def test_golden_answer_through_the_gateway(gateway, case):
    path, _ = gateway_path(case)
    answer = send(gateway, path, case)
    assert answer.status_code == case["status"], answer.get_data(as_text=True)
    assert answer.headers["Content-Type"] == "application/json"
    assert same(json.loads(answer.get_data(as_text=True)), json.loads(case["response"])), (
        answer.get_data(as_text=True))
    version = int(PINNED.match(case["path"])[2])
    assert answer.headers["X-Model-Version"] == str(version)
    if version == STABLE:  # the same answer through the rollout's stable route
        routed = send(gateway, f"/api/v1/models/{MODEL_NAME}:predict", case)
        assert routed.status_code == 200, routed.get_data(as_text=True)
        assert (routed.headers["X-Model-Version"], routed.headers["X-Model-Label"]) == (
            str(STABLE), "stable")
        assert same(json.loads(routed.get_data(as_text=True)), json.loads(case["response"]))


@by_kind("error")
def test_golden_error_through_the_gateway(gateway, case):
    path, _ = gateway_path(case)
    answer = send(gateway, path, case)
    status, code, where = EXPECTED_ERRORS[case["name"]]
    assert 400 <= answer.status_code < 500 and answer.status_code == status, (
        answer.get_data(as_text=True))
    assert answer.is_json, answer.get_data(as_text=True)
    error = answer.get_json()["error"]
    assert (error["code"], error.get("field")) == (code, where), error
    assert error["message"]


@by_kind("refused")
def test_other_signatures_are_refused_naming_signature_name(gateway, case):
    path, _ = gateway_path(case)
    answer = send(gateway, path, case)
    assert answer.status_code == 400, answer.get_data(as_text=True)
    error = answer.get_json()["error"]
    assert (error["code"], error["field"]) == ("invalid_input", "signature_name"), error
    assert SIGNATURE in error["message"]


def test_a_malformed_version_in_the_url_is_a_json_4xx(gateway):
    """The gateway's analogue of the golden 'malformed URL' (a version that is not a number)."""
    client, headers = gateway
    answer = client.post(f"/api/v1/models/{MODEL_NAME}/versions/x:predict", headers=headers,
                         data=b'{"instances": [{"a": 1.0, "b": [1.0, 2.0], "c": "tf"}]}')
    assert answer.status_code == 404 and answer.is_json, answer.get_data(as_text=True)
    assert answer.get_json()["error"]["code"] == "not_found", answer.get_json()
