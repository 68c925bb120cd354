"""The REST API over real HTTP against a real server process (fixture models v1 and v2).

Time budget: ~25 s with the session's server start (TF import + five loads, warmup, under
contention on 2 shared cores); each test < 1 s.
"""
import base64
import math

import numpy as np
import pytest

from .fixture_models import MODEL_NAME

ROWS = [{"a": 1.5, "b": [1.0, 2.0], "c": "hello"},
        {"a": -2.0, "b": [0.25, 0.5], "c": "tf"}]


def in_process(loaded, version, signature, **inputs):
    """Return the loaded signature's outputs as numpy, called in this process."""
    import tensorflow as tf

    function = loaded[(MODEL_NAME, version)].signatures[signature]
    outputs = function(**{name: tf.constant(value) for name, value in inputs.items()})
    return {name: tensor.numpy() for name, tensor in outputs.items()}


def columns(rows):
    return {"a": np.array([r["a"] for r in rows], np.float32),
            "b": np.array([r["b"] for r in rows], np.float32),
            "c": np.array([r["c"].encode() for r in rows])}


def test_status_lists_every_version_newest_first(server):
    response = server.get(f"/v1/models/{MODEL_NAME}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"model_version_status": [
        {"version": v, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        for v in ("2", "1")]}


@pytest.mark.parametrize("path,version", [("/versions/1", "1"), ("/labels/canary", "2")])
def test_status_of_one_version_or_label(server, path, version):
    body = server.get(f"/v1/models/{MODEL_NAME}{path}").json()
    assert [s["version"] for s in body["model_version_status"]] == [version]


def test_metadata_has_tf_serving_shape(server):
    body = server.get(f"/v1/models/{MODEL_NAME}/versions/1/metadata").json()
    assert body["model_spec"] == {"name": MODEL_NAME, "signature_name": "", "version": "1"}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    default = signatures["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    assert set(default["inputs"]) == {"a", "b", "c"}
    assert default["inputs"]["b"]["dtype"] == "DT_FLOAT"
    assert default["inputs"]["b"]["tensor_shape"] == {
        "dim": [{"size": "-1", "name": ""}, {"size": "2", "name": ""}], "unknown_rank": False}
    assert default["outputs"]["length"]["dtype"] == "DT_INT64"
    assert {"scale", "binary"} <= set(signatures)


def test_metadata_without_version_is_the_latest(server):
    body = server.get(f"/v1/models/{MODEL_NAME}/metadata").json()
    assert body["model_spec"]["version"] == "2"


@pytest.mark.parametrize("path,version", [("", 2), ("/versions/1", 1), ("/labels/stable", 1),
                                          ("/labels/canary", 2)])
def test_row_predict_equals_in_process_model(server, loaded, path, version):
    response = server.post(f"/v1/models/{MODEL_NAME}{path}:predict", json={"instances": ROWS})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    expected = in_process(loaded, version, "serving_default", **columns(ROWS))
    assert [set(p) for p in predictions] == [{"total", "length", "shout"}] * 2
    assert np.allclose([p["total"] for p in predictions], expected["total"])
    assert [p["length"] for p in predictions] == expected["length"].tolist()
    assert [p["shout"] for p in predictions] == [s.decode() for s in expected["shout"]]


@pytest.mark.parametrize("path,version", [("", 2), ("/versions/1", 1), ("/labels/stable", 1)])
def test_columnar_predict_equals_in_process_model(server, loaded, path, version):
    inputs = {"a": [r["a"] for r in ROWS], "b": [r["b"] for r in ROWS],
              "c": [r["c"] for r in ROWS]}
    response = server.post(f"/v1/models/{MODEL_NAME}{path}:predict", json={"inputs": inputs})
    assert response.status_code == 200, response.text
    outputs = response.json()["outputs"]
    expected = in_process(loaded, version, "serving_default", **columns(ROWS))
    assert np.allclose(outputs["total"], expected["total"])
    assert outputs["length"] == expected["length"].tolist()
    assert outputs["shout"] == ["HELLO", "TF"]


def test_signature_name_with_one_output_answers_plain_lists(server, loaded):
    x = [[1.0, 2.0, 3.0], [0.5, 0.25, 0.125]]
    rows = server.post(f"/v1/models/{MODEL_NAME}:predict",
                       json={"signature_name": "scale", "instances": x}).json()
    cols = server.post(f"/v1/models/{MODEL_NAME}:predict",
                       json={"signature_name": "scale", "inputs": x}).json()
    expected = in_process(loaded, 2, "scale", x=np.array(x, np.float32))["y"]
    assert np.allclose(rows["predictions"], expected)
    assert np.allclose(cols["outputs"], expected)


def test_b64_values_in_and_out(server):
    raw = bytes(range(256))
    encoded = base64.b64encode(raw).decode()
    body = server.post(f"/v1/models/{MODEL_NAME}:predict",
                       json={"signature_name": "binary", "instances": [{"b64": encoded}]}).json()
    assert body == {"predictions": [{"size": 256, "echo_bytes": {"b64": encoded}}]}


def test_nan_and_infinity_tokens_in_and_out(server):
    text = ('{"signature_name": "scale", "instances": [[NaN, Infinity, -Infinity]]}')
    response = server.post(f"/v1/models/{MODEL_NAME}:predict", data=text)
    assert response.status_code == 200, response.text
    assert "NaN" in response.text and "-Infinity" in response.text
    y = response.json()["predictions"][0]
    assert math.isnan(y[0]) and y[1] == math.inf and y[2] == -math.inf


def test_floats_are_written_as_shortest_float32_text(server):
    response = server.post(f"/v1/models/{MODEL_NAME}/versions/1:predict",
                           json={"signature_name": "scale", "inputs": [[0.1, 1.0, 3.0]]})
    assert response.json() == {"outputs": [[0.1, 1.0, 3.0]]}
    assert "0.1," in response.text.replace(" ", "")


@pytest.mark.parametrize("path,status,error", [
    ("/v1/models/nope", 404, "Could not find any versions of model nope"),
    (f"/v1/models/{MODEL_NAME}/versions/7", 404, f"Could not find version 7 of model {MODEL_NAME}"),
    (f"/v1/models/{MODEL_NAME}/labels/nope", 400, "Unrecognized servable version label: nope"),
    ("/v1/models/nope/metadata", 404, "Servable not found for request: Latest(nope)"),
    (f"/v1/models/{MODEL_NAME}/versions/7/metadata", 404,
     f"Servable not found for request: Specific({MODEL_NAME}, 7)"),
    ("/v1/models", 400, "Missing model name in request."),
    ("/v1/foo", 400, "Malformed request: GET /v1/foo"),
])
def test_get_errors(server, path, status, error):
    response = server.get(path)
    assert (response.status_code, response.json()) == (status, {"error": error})


PREDICT = f"/v1/models/{MODEL_NAME}:predict"


@pytest.mark.parametrize("path,body,status,error", [
    ("/v1/models/nope:predict", {"instances": [1.0]}, 404,
     "Servable not found for request: Latest(nope)"),
    (f"/v1/models/{MODEL_NAME}/versions/3:predict", {"instances": ROWS}, 404,
     f"Servable not found for request: Specific({MODEL_NAME}, 3)"),
    (f"/v1/models/{MODEL_NAME}/labels/nope:predict", {"instances": ROWS}, 400,
     "Unrecognized servable version label: nope"),
    (PREDICT, "", 400, "JSON Parse error: The document is empty"),
    (PREDICT, "instances = [1, 2]", 400, "JSON Parse error"),
    (PREDICT, "[1, 2]", 400, "Is not object"),
    (PREDICT, {"signature_name": 100, "instances": ROWS}, 400,
     "'signature_name' key must be a string value."),
    (PREDICT, {"signature_name": "nope", "instances": ROWS}, 400,
     'Serving signature name: "nope" not found in signature def'),
    (PREDICT, {"rows": ROWS}, 400, "Missing 'inputs' or 'instances' key"),
    (PREDICT, {"instances": ROWS, "inputs": {}}, 400, "expecting only one of"),
    (PREDICT, {"instances": []}, 400, "No values in 'instances' array"),
    (PREDICT, {"instances": [1.0, 2.0]}, 400, "instances is a plain list"),
])
def test_predict_request_errors(server, path, body, status, error):
    kwargs = {"data": body} if isinstance(body, str) else {"json": body}
    response = server.post(path, **kwargs)
    assert response.status_code == status, response.text
    assert error in response.json()["error"]


@pytest.mark.parametrize("body,name", [
    ({"instances": [{**ROWS[0], "a": "x"}]}, "a"),
    ({"inputs": {"a": ["x"], "b": [[1.0, 2.0]], "c": ["s"]}}, "a"),
    ({"instances": [{**ROWS[0], "c": 3}]}, "c"),
    ({"inputs": {"a": [1.0], "b": [[1.0, 2.0]], "c": [True]}}, "c"),
    ({"instances": [{**ROWS[0], "b": [1.0, 2.0, 3.0]}]}, "b"),
    ({"inputs": {"a": [1.0], "b": [1.0, 2.0], "c": ["s"]}}, "b"),
    ({"inputs": {"a": [[1.0]], "b": [[1.0, 2.0]], "c": ["s"]}}, "a"),
    ({"inputs": {"a": [1.0], "b": [[1.0, 2.0]]}}, "c"),
    ({"instances": [{"a": 1.0, "b": [1.0, 2.0]}]}, "c"),
    ({"instances": [{**ROWS[0], "z": 1.0}]}, "z"),
    ({"inputs": {"a": [1.0], "b": [[1.0, 2.0], [3.0]], "c": ["s"]}}, "b"),
])
def test_wrong_input_name_dtype_or_shape_is_a_400_naming_it(server, body, name):
    response = server.post(PREDICT, json=body)
    assert response.status_code == 400, response.text
    assert name in response.json()["error"]


def test_classify_on_a_predict_signature_is_a_clear_error(server):
    response = server.post(f"/v1/models/{MODEL_NAME}:classify", json={"examples": [{"a": 1.0}]})
    assert response.status_code == 400
    assert "Expected classification signature method_name" in response.json()["error"]


def test_unknown_paths_are_json_errors(server):
    response = server.post(f"/v1/models/{MODEL_NAME}/versions/x:predict", json={})
    assert response.status_code == 400
    assert response.json()["error"].startswith("Malformed request: POST")
    response = server.get("/nothing/here")
    assert response.status_code == 404 and "error" in response.json()
