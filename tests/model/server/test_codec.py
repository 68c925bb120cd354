"""JSON <-> tensors with TF Serving's rules, without a model. Time budget: < 1 s."""
import numpy as np
import pytest

from model.server import codec
from model.server.errors import InvalidArgument

SPECS = {"a": codec.TensorSpec("DT_FLOAT", (None,)),
         "n": codec.TensorSpec("DT_INT64", (None, 2)),
         "s_bytes": codec.TensorSpec("DT_STRING", (None,))}


def decode(document, specs=SPECS):
    return codec.decode_inputs(codec.predict_request(document), specs)


def test_row_format_batches_named_inputs():
    arrays = decode({"instances": [{"a": 1, "n": [1, 2], "s_bytes": {"b64": "aGk="}},
                                   {"a": 2.5, "n": [3, 4], "s_bytes": "x"}]})
    assert arrays["a"].dtype == np.float32 and arrays["a"].tolist() == [1.0, 2.5]
    assert arrays["n"].dtype == np.int64 and arrays["n"].shape == (2, 2)
    assert arrays["s_bytes"].tolist() == [b"hi", b"x"]


def test_columnar_single_input_may_be_a_plain_list():
    arrays = decode({"inputs": [[1.0, 2.0]]}, {"x": codec.TensorSpec("DT_FLOAT", (None, 2))})
    assert arrays["x"].shape == (1, 2)


@pytest.mark.parametrize("value,error", [
    (1.5, "JSON Value: 1.5 Type: Number is not of expected type: int64"),
    (True, "Type: True is not of expected type: int64"),
    (2**63, "is not of expected type: int64"),
])
def test_int64_refusals(value, error):
    with pytest.raises(InvalidArgument, match=error):
        codec.to_array([value], codec.TensorSpec("DT_INT64", (None,)))


def test_float_lossy_and_tokens():
    spec = codec.TensorSpec("DT_FLOAT", (None,))
    with pytest.raises(InvalidArgument, match="without loss of precision"):
        codec.to_array([2**25], spec)
    with pytest.raises(InvalidArgument, match="without loss of precision"):
        codec.to_array([1e300], spec)
    array = codec.to_array([float("nan"), float("inf")], spec)
    assert np.isnan(array[0]) and np.isinf(array[1])


@pytest.mark.parametrize("value,error", [
    ([[1.0, 2.0], [3.0]], "Encountered list at unexpected size: 1 at level: 1"),
    ([[1.0], 2.0], "found at incorrect level"),
    ({"b64": "!!"}, "Unable to base64 decode"),
])
def test_malformed_tensors(value, error):
    spec = codec.TensorSpec("DT_STRING" if isinstance(value, dict) else "DT_FLOAT", None)
    with pytest.raises(InvalidArgument, match=error):
        codec.to_array(value, spec)


def test_shape_check_names_the_input():
    with pytest.raises(InvalidArgument, match=r"Input 'n' has shape \[1,3\]"):
        decode({"inputs": {"a": [1.0], "n": [[1, 2, 3]], "s_bytes": ["x"]}})


def test_row_instances_must_agree_in_shape():
    with pytest.raises(InvalidArgument, match=r"key: n .*Expecting shape \[2\] but got: \[3\]"):
        decode({"instances": [{"a": 1.0, "n": [1, 2], "s_bytes": "x"},
                              {"a": 1.0, "n": [1, 2, 3], "s_bytes": "x"}]})


def test_encode_row_and_columnar_shapes():
    one = {"y": np.array([[0.1, 2.0]], np.float32)}
    assert codec.encode_outputs(one, codec.ROW) == {"predictions": [[0.1, 2.0]]}
    assert codec.encode_outputs(one, codec.COLUMNAR) == {"outputs": [[0.1, 2.0]]}
    two = {"p": np.array([1, 2], np.int64), "s_bytes": np.array([b"\xff", b"a"], object),
           "t": np.array([b"ok", b"no"], object)}
    assert codec.encode_outputs(two, codec.ROW) == {"predictions": [
        {"p": 1, "s_bytes": {"b64": "/w=="}, "t": "ok"},
        {"p": 2, "s_bytes": {"b64": "YQ=="}, "t": "no"}]}
    assert codec.encode_outputs(two, codec.COLUMNAR)["outputs"]["p"] == [1, 2]


def test_encode_refuses_inconsistent_batches_in_row_format():
    outputs = {"a": np.zeros(2, np.float32), "b": np.zeros(3, np.float32)}
    with pytest.raises(InvalidArgument, match="inconsistent batch size"):
        codec.encode_outputs(outputs, codec.ROW)


def test_dumps_writes_json_tokens_for_non_finite_floats():
    text = codec.dumps(codec.encode_outputs(
        {"y": np.array([np.nan, np.inf, -np.inf], np.float32)}, codec.COLUMNAR))
    assert text == '{"outputs": [NaN, Infinity, -Infinity]}'


def test_a_b64_row_for_several_inputs_is_a_plain_list_error():
    specs = {"a_bytes": codec.TensorSpec("DT_STRING", (None,)),
             "b": codec.TensorSpec("DT_STRING", (None,))}
    with pytest.raises(InvalidArgument, match="instances is a plain list"):
        decode({"instances": [{"b64": "AA=="}]}, specs)


def test_a_deeply_nested_body_is_a_client_error():
    with pytest.raises(InvalidArgument, match="nested too deeply"):
        codec.parse_body(b"[" * 100_000 + b"]" * 100_000)
