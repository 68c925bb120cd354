"""The codec's fast path answers exactly as the checking path, or not at all. Budget: < 2 s."""
import json
import math

import numpy as np
import pytest

from model.server import codec, vectorised
from model.server.errors import InvalidArgument

FLOAT = codec.TensorSpec("DT_FLOAT", None)


def checked(value, spec):
    """The element-by-element path's answer: an array, or the error text."""
    try:
        return codec.to_array(value, spec)
    except InvalidArgument as error:
        return error.message


def same_array(fast, slow):
    return (isinstance(slow, np.ndarray) and fast.dtype == slow.dtype
            and fast.shape == slow.shape
            and np.array_equal(fast, slow, equal_nan=fast.dtype.kind == "f"))


CASES = [  # (dtype, JSON value): well formed, malformed, at and past every limit
    ("DT_FLOAT", [1, 2.5, -3]), ("DT_FLOAT", [[1.0, 2.0], [3.0, 4.0]]),
    ("DT_FLOAT", [float("nan"), float("inf"), 1.0]), ("DT_FLOAT", [2**24 - 1, 0.5]),
    ("DT_FLOAT", [2**24, 0.5]), ("DT_FLOAT", [3.4e38, 1e-45]), ("DT_FLOAT", [3.5e38]),
    ("DT_FLOAT", [1e300]), ("DT_FLOAT", [2**70]), ("DT_FLOAT", [True, 1.0]),
    ("DT_FLOAT", ["1.0"]), ("DT_FLOAT", [None]), ("DT_FLOAT", [[1.0, 2.0], [3.0]]),
    ("DT_FLOAT", [[1.0], 2.0]), ("DT_FLOAT", [1.0, [2.0]]), ("DT_FLOAT", [[[1.0]], [[2.0]]]),
    ("DT_FLOAT", [[], []]), ("DT_FLOAT", []), ("DT_FLOAT", 1.0), ("DT_FLOAT", [{"b64": "AA=="}]),
    ("DT_DOUBLE", [0.1, 2**53 - 1]), ("DT_DOUBLE", [2**53]), ("DT_DOUBLE", [1e308, -1e308]),
    ("DT_INT64", [1, -2, 2**63 - 1, -2**63]), ("DT_INT64", [2**63]), ("DT_INT64", [1.0]),
    ("DT_INT64", [True]), ("DT_INT64", [[1, 2], [3, 4]]), ("DT_INT64", [2**64 + 1]),
    ("DT_INT32", [2**31 - 1, -2**31]), ("DT_INT32", [2**31]), ("DT_INT32", [-2**31 - 1]),
    ("DT_BOOL", [True, False]), ("DT_BOOL", [1, 0]), ("DT_BOOL", [[True], [False]]),
    ("DT_STRING", ["a", "é", ""]), ("DT_STRING", [["a", "b"], ["c", "d"]]),
    ("DT_STRING", [{"b64": "aGk="}, "x"]), ("DT_STRING", [1]), ("DT_STRING", ["\ud800"]),
    ("DT_HALF", [1.0]), ("DT_UINT8", [1]), ("DT_INT8", [1]),
]


@pytest.mark.parametrize("dtype,value", CASES, ids=[f"{d}-{json.dumps(v)[:30]}" for d, v in CASES])
def test_a_fast_conversion_equals_the_checked_one(dtype, value):
    fast = vectorised.to_array(value, dtype)
    if fast is not None:
        assert same_array(fast, checked(value, codec.TensorSpec(dtype, None)))


def test_the_fast_path_takes_the_well_formed_common_cases():
    for dtype, value in [("DT_FLOAT", [1, 2.5]), ("DT_FLOAT", [float("nan")]),
                         ("DT_INT64", [[1, 2]]), ("DT_BOOL", [True]), ("DT_STRING", ["a"])]:
        assert vectorised.to_array(value, dtype) is not None, (dtype, value)


SPECS = {"a": codec.TensorSpec("DT_FLOAT", (None,)),
         "n": codec.TensorSpec("DT_INT64", (None, 2)),
         "s": codec.TensorSpec("DT_STRING", (None,))}


@pytest.mark.parametrize("instances", [
    [{"a": 1, "n": [1, 2], "s": "x"}, {"a": 2.5, "n": [3, 4], "s": "y"}],
    [{"a": 1, "n": [1, 2], "s": "x"}, {"a": 2.5, "n": [3, 4, 5], "s": "y"}],
    [{"a": 1, "n": [1, 2], "s": "x"}, {"a": 2.5, "n": [3, 4]}],
    [{"a": 1, "n": [1, 2], "s": "x"}, {"a": 2.5, "n": [3, 4], "s": "y", "z": 1}],
    [{"a": 1, "n": [1, 2], "s": "x"}, [1.0]],
    [{"a": 1, "n": [1, 2], "s": {"b64": "eA=="}}],
])
def test_rows_batch_as_the_checking_path_does(instances):
    fast = vectorised.rows_to_arrays(instances, SPECS)
    if fast is None:
        return
    slow = codec._decode_rows(instances, SPECS)
    assert fast.keys() == slow.keys() and all(same_array(fast[k], slow[k]) for k in fast)


NUMERIC_SPECS = {"a": codec.TensorSpec("DT_FLOAT", (None,)), "b": codec.TensorSpec("DT_FLOAT", (None,)),
                 "i": codec.TensorSpec("DT_INT64", (None,)), "j": codec.TensorSpec("DT_INT64", (None,)),
                 "v": codec.TensorSpec("DT_FLOAT", (None, 2))}


@pytest.mark.parametrize("changed", [
    {}, {"a": True}, {"b": "1.5"}, {"a": None}, {"b": [1.0]}, {"a": 2**24}, {"b": 3.5e38},
    {"i": 1.0}, {"j": 2**63}, {"i": False}, {"v": [1.0]}, {"v": [1.0, "x"]},
])
def test_numeric_inputs_converted_as_one_block_match_the_checking_path(changed):
    # The one-dimensional float and integer inputs of row objects are converted per dtype as
    # one block: a bad value in any of them must still send the batch to the checking path.
    rows = [{"a": 0.5, "b": 1, "i": 3, "j": -4, "v": [1.0, 2.0]},
            {"a": 1.5, "b": 2.25, "i": 5, "j": 6, "v": [3.0, 4.0]}]
    rows[1].update(changed)
    fast = vectorised.rows_to_arrays(rows, NUMERIC_SPECS)
    try:
        slow = codec._decode_rows(rows, NUMERIC_SPECS)
    except InvalidArgument:
        assert fast is None
        return
    if fast is not None:
        assert list(fast) == list(slow) or fast.keys() == slow.keys()
        assert all(same_array(fast[k], slow[k]) for k in slow)
    if not changed:
        assert fast is not None and fast["a"].dtype == np.float32 and fast["j"].dtype == np.int64


def test_well_formed_rows_take_the_fast_path():
    rows = [{"a": 1, "n": [1, 2], "s": "x"}, {"a": 2.5, "n": [3, 4], "s": "y"}]
    arrays = vectorised.rows_to_arrays(rows, SPECS)
    assert arrays["a"].dtype == np.float32 and arrays["n"].shape == (2, 2)
    assert arrays["s"].tolist() == [b"x", b"y"]


def test_a_lone_surrogate_is_a_client_error():
    with pytest.raises(InvalidArgument, match="surrogate pair in string is invalid"):
        codec.decode_inputs(codec.predict_request(codec.parse_body(
            b'{"instances": [{"a": 1, "n": [1, 2], "s": "\\ud800"}]}')), SPECS)


def test_rows_and_columns_of_one_input_may_be_plain_lists():
    specs = {"x": codec.TensorSpec("DT_FLOAT", (None, 2))}
    assert vectorised.rows_to_arrays([[1, 2], [3, 4]], specs)["x"].shape == (2, 2)
    assert vectorised.columns_to_arrays([[1, 2]], specs)["x"].shape == (1, 2)
    assert vectorised.columns_to_arrays({"x": [[1, 2]]}, specs)["x"].shape == (1, 2)
    assert vectorised.columns_to_arrays({"y": [[1, 2]]}, specs) is None  # error: checked path
    assert vectorised.rows_to_arrays([[1.0]], SPECS) is None  # several inputs need objects


def test_an_input_named_b64_is_left_to_the_checking_path():
    specs = {"b64": codec.TensorSpec("DT_STRING", (None,))}
    assert vectorised.rows_to_arrays([{"b64": "AA=="}], specs) is None


@pytest.mark.parametrize("body,fast", [
    (b'{"instances": [1.5, 2]}', True),
    (b'{"instances": [NaN]}', False),
    (b'{"instances": [-Infinity]}', False),
    (b'{"instances": [12345678901234567890123]}', False),  # orjson would make it a float
    (b'{"instances": [1.5,', False),
    (b'\xef\xbb\xbf{"instances": [1]}', False),
])
def test_loads_leaves_tokens_long_integers_and_errors_to_the_standard_library(body, fast):
    document = vectorised.loads(body)
    assert (document is not None) == fast
    if fast:
        assert document == json.loads(body)


def test_parse_body_keeps_long_integers_exact():
    document = codec.parse_body(b'{"instances": [12345678901234567890123]}')
    assert document["instances"] == [12345678901234567890123]


def test_float32_text_is_the_shortest_that_reads_back():
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**32, 20000, dtype=np.uint64).astype(np.uint32)
    values = bits.view(np.float32)
    values = values[np.isfinite(values)]
    written = json.loads(vectorised.dumps(vectorised.float_output(values)))
    assert written == values.astype(str).astype(np.float64).tolist()
    assert np.array_equal(np.array(written, np.float32), values)


OUTPUTS = [
    {"y": np.array([[0.1, 2.0], [1 / 3, 1e-7]], np.float32)},
    {"p": np.array([1, 2], np.int64), "s_bytes": np.array([b"\xff", b"a"], object),
     "t": np.array([b"ok", b"no"], object), "f": np.array([0.5, 1e30], np.float32)},
    {"d": np.array([[0.1], [0.2]], np.float64), "b": np.array([True, False])},
    {"scalar": np.array(2.5, np.float32)},
]


@pytest.mark.parametrize("outputs", OUTPUTS)
@pytest.mark.parametrize("request_format", [codec.ROW, codec.COLUMNAR])
def test_the_fast_answer_reads_as_the_checked_one(outputs, request_format):
    try:
        slow = json.loads(codec.dumps(codec.encode_outputs(outputs, request_format)))
    except InvalidArgument as error:
        with pytest.raises(InvalidArgument, match=error.message):
            codec.encode_response(outputs, request_format)
        return
    assert json.loads(codec.encode_response(outputs, request_format)) == slow


def general_row_answer(outputs):
    """The answer as encode_response wrote it before row_answer: one orjson document."""
    def to_values(name, array):
        return vectorised.float_output(array) if array.dtype.kind == "f" else codec._json_values(name, array)
    return vectorised.dumps(codec.encode_outputs(outputs, codec.ROW, to_values))


ROW_OUTPUTS = [
    {"p": np.array([[0.1, 1 / 3, 2.0], [1e-7, 3e38, -0.0]], np.float32),
     "c": np.array([b"Gentoo", b""], object), "i": np.array([2, -2**63], np.int64)},
    {"x": np.array([[0.5]], np.float64), "ok": np.array([True]), "u": np.array([2**64 - 1], np.uint64)},
    {"empty": np.zeros((3, 0), np.float32), "n": np.array([1, 2, 3], np.int8)},
    {"s": np.array(['a","b', 'q"', "back\\", "é\u2028", "\x00", '","'], object),
     "t": np.array([b"\xff\xfe", b'","', b"%s", b"%", b"x", b"y"], object),
     "%b name\"": np.arange(6, dtype=np.int32)},
]


@pytest.mark.parametrize("outputs", ROW_OUTPUTS)
def test_a_row_answer_cut_from_whole_columns_is_byte_for_byte_the_general_one(outputs):
    body = vectorised.row_answer(outputs)
    assert body is not None
    assert body == general_row_answer(outputs)
    assert json.loads(body) == json.loads(codec.dumps(codec.encode_outputs(outputs, codec.ROW)))


@pytest.mark.parametrize("outputs", [
    {"p": np.array([[np.nan], [1.0]], np.float32), "c": np.array([1, 2])},  # NaN: token path
    {"h": np.array([0.5, 1.0], np.float16), "c": np.array([1, 2])},
    {"s_bytes": np.array([b"a", b"b"], object), "c": np.array([1, 2])},  # base64 objects
    {"cube": np.zeros((2, 1, 1), np.float32), "c": np.array([1, 2])},
    {"a": np.array([1, 2]), "b": np.array([1, 2, 3])},  # inconsistent batch: the error's path
    {"a": np.array(1.0, np.float32), "b": np.array([1])},
    {"s2d": np.array([[b"a"], [b"b"]], object), "c": np.array([1, 2])},
])
def test_row_answer_leaves_what_it_does_not_cover_to_the_general_path(outputs):
    assert vectorised.row_answer(outputs) is None


def test_non_finite_or_half_floats_take_the_token_writing_path():
    text = codec.encode_response({"y": np.array([np.nan, 1.0], np.float32)}, codec.COLUMNAR)
    assert text == b'{"outputs": [NaN, 1.0]}'
    half = codec.encode_response({"y": np.array([0.1], np.float16)}, codec.COLUMNAR)
    assert json.loads(half) == {"outputs": [0.1]}  # float16's own shortest text
    assert math.isinf(json.loads(codec.encode_response(
        {"y": np.array([np.inf], np.float32)}, codec.ROW))["predictions"][0])


def test_string_outputs_are_utf8_decoded_with_invalid_bytes_replaced():
    assert vectorised.text_values([b"Gentoo", "\u00e9t\u00e9".encode()]) == ["Gentoo", "\u00e9t\u00e9"]
    assert vectorised.text_values([b"\xff\xfe", b"ok"]) == ["\ufffd\ufffd", "ok"]
    assert vectorised.text_values(["s", 3, b"b"]) == ["s", "3", "b"]  # not bytes: str()
