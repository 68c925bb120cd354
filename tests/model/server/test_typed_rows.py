"""The typed short path decodes exactly as the general path, or not at all. Budget: < 5 s (one
tiny SavedModel saved and served in process)."""
import json

import numpy as np
import pytest

from model.server import codec, typed_rows
from model.server.errors import InvalidArgument

SPECS = {"f": codec.TensorSpec("DT_FLOAT", (None,)), "d": codec.TensorSpec("DT_DOUBLE", (None,)),
         "i": codec.TensorSpec("DT_INT64", (None,)), "j": codec.TensorSpec("DT_INT32", (None,)),
         "b": codec.TensorSpec("DT_BOOL", (None,)), "s": codec.TensorSpec("DT_STRING", (None,)),
         "t": codec.TensorSpec("DT_STRING", (None,))}
ROW = '{"f": 0.5, "d": 0.1, "i": -3, "j": 7, "b": true, "s": "Dream", "t": ""}'


def general(body):
    """The general path's answer: the arrays, or the error text."""
    try:
        request = codec.predict_request(codec.parse_body(body))
        return request.signature_name, codec.decode_inputs(request, SPECS)
    except InvalidArgument as error:
        return error.message


def with_row(**changed):
    row = json.loads(ROW)
    row.update(changed)
    return row


BODIES = [
    '{"instances": [%s]}' % ROW,
    '{"instances": [%s, %s], "signature_name": "serving_default"}' % (ROW, ROW),
    '{"signature_name": "", "instances": [%s]}' % ROW,
    '{"instances": [%s], "signature_name": "other"}' % ROW,
    '{"instances": [%s], "signature_name": 3}' % ROW,
    '{"instances": []}', '{"instances": {}}', '{"inputs": {"f": [1]}}', '[]', '', 'null',
    '{"instances": [%s], "inputs": {}}' % ROW,
    '{"instances": [%s], "extra": 1}' % ROW,
    '{"instances": [%s, 1.0]}' % ROW,
    '{"instances": [{"f": NaN, "d": 0.1, "i": -3, "j": 7, "b": true, "s": "x", "t": ""}]}',
    '{"instances": [{"f": Infinity, "d": 0.1, "i": -3, "j": 7, "b": true, "s": "x", "t": ""}]}',
    '{"instances": [{"f": 1, "d": 0.1, "i": 12345678901234567890123, "j": 7, "b": true, "s": "x", "t": ""}]}',
    '{"instances": [{"f": 1, "f": 2.5, "d": 0.1, "i": -3, "j": 7, "b": true, "s": "x", "t": ""}]}',
    '{"instances": [{"f": 1, "d": 0.1, "i": -3, "j": 7, "b": true, "s": "\\ud800", "t": ""}]}',
    '{"instances": [{"f": 1, "d": 0.1, "i": -3, "j": 7, "b": true, "s": "\\u00e9\\u2028\\"q", "t": "\\\\"}]}',
    '\ufeff{"instances": [%s]}' % ROW,
] + ['{"instances": [%s, %s]}' % (ROW, json.dumps(with_row(**changed))) for changed in (
    {"f": True}, {"f": "1.0"}, {"f": None}, {"f": [1.0]}, {"f": 2**24 - 1}, {"f": 2**24}, {"f": -2**24},
    {"f": 3.4e38}, {"f": 3.5e38}, {"f": 1e-45}, {"f": -0.0}, {"d": 2**53 - 1}, {"d": 2**53}, {"d": 1e308},
    {"i": 2**63 - 1}, {"i": -2**63}, {"i": 2**63}, {"i": 1.0}, {"i": False}, {"j": 2**31 - 1}, {"j": 2**31},
    {"j": -2**31 - 1}, {"b": 1}, {"b": None}, {"s": 1}, {"s": {"b64": "aGk="}}, {"s": ["x"]}, {"z": 1},
)] + ['{"instances": [%s]}' % json.dumps({k: v for k, v in json.loads(ROW).items() if k != "t"})]


def same(fast, slow):
    return (isinstance(slow, tuple) and fast[0] == slow[0] and fast[1].keys() == slow[1].keys()
            and all(fast[1][k].dtype == slow[1][k].dtype and fast[1][k].shape == slow[1][k].shape
                    and np.array_equal(fast[1][k], slow[1][k]) for k in slow[1]))


@pytest.mark.parametrize("body", BODIES)
def test_a_typed_decode_equals_the_general_one(body):
    body = body.encode("utf-8", "surrogatepass")
    fast = typed_rows.decoder(SPECS)(body)
    if fast is not None:
        assert same(fast, general(body)), general(body)


def test_well_formed_rows_take_the_typed_path():
    decode = typed_rows.decoder(SPECS)
    taken = [body for body in BODIES if decode(body.encode("utf-8", "surrogatepass")) is not None]
    assert len(taken) >= 10, taken
    signature, arrays = decode(('{"instances": [%s, %s]}' % (ROW, ROW)).encode())
    assert signature == "" and arrays["f"].dtype == np.float32 and arrays["j"].dtype == np.int32
    assert arrays["s"].tolist() == [b"Dream", b"Dream"] and arrays["b"].tolist() == [True, True]


def test_input_names_need_not_be_python_identifiers():
    specs = {name: codec.TensorSpec("DT_FLOAT", (None,)) for name in ("input-1", "class", "__slots__", "a/b", "f0")}
    body = json.dumps({"instances": [{name: i for i, name in enumerate(specs)}]}).encode()
    signature, arrays = typed_rows.decoder(specs)(body)
    expected = codec.decode_inputs(codec.predict_request(codec.parse_body(body)), specs)
    assert arrays.keys() == expected.keys() and all(np.array_equal(arrays[k], expected[k]) for k in specs)
    assert arrays["a/b"].tolist() == [3.0]


def test_one_input_signatures_decode_too():
    decode = typed_rows.decoder({"x": codec.TensorSpec("DT_FLOAT", (None,))})
    assert decode(b'{"instances": [{"x": 1}, {"x": 2.5}]}')[1]["x"].tolist() == [1.0, 2.5]
    assert decode(b'{"instances": [1, 2.5]}') is None  # plain values: the general path


@pytest.mark.parametrize("specs", [
    {"x": codec.TensorSpec("DT_FLOAT", (None, 2))},  # several values per row
    {"x": codec.TensorSpec("DT_FLOAT", None)},  # unknown rank
    {"x": codec.TensorSpec("DT_HALF", (None,))},
    {"b64": codec.TensorSpec("DT_STRING", (None,))},
    {},
])
def test_signatures_it_does_not_cover_have_no_typed_decoder(specs):
    assert typed_rows.decoder(specs) is None


def test_the_server_answers_on_the_typed_path_as_on_the_general_one(tmp_path):
    # A real SavedModel whose default signature takes one float per row (y = 2x), served by the
    # WSGI app in this process: the typed path is taken, and its answer is the general path's.
    import io

    from model.server import main
    from model.server import flags as server_flags

    from .fixture_models import export_tiny

    export_tiny(str(tmp_path / "tiny" / "1"))
    _, app, _ = main.build(server_flags.parse(["--model_name=tiny", f"--model_base_path={tmp_path / 'tiny'}"]))
    servable = app.manager.snapshot.model("tiny").resolve(None, None)

    def predict(body):
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/v1/models/tiny:predict",
                   "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}
        return b"".join(app(environ, lambda status, headers: None))

    body = b'{"instances": [{"x": 1.5}, {"x": -2}]}'
    decode, decoded = servable._decode_rows, []
    servable._decode_rows = lambda raw: decoded.append(decode(raw)) or decoded[-1]
    typed = predict(body)
    assert decoded and decoded[0] is not None  # the app took the typed path
    servable._decode_rows = None  # the general path alone
    assert predict(body) == typed and json.loads(typed) == {"predictions": [3.0, -4.0]}
    assert servable.decode_rows(body) is None
