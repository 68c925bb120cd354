"""Turn TF Serving's REST JSON into numpy tensors and back, with its rules and error texts.

Follows tensorflow_serving/util/json_tensor.cc: row (`instances`) and columnar (`inputs`)
requests, `{"b64": ...}` binary values, NaN/Infinity tokens, float32 written with the shortest
text that round-trips, and `*_bytes` string outputs written as base64 objects. Well-formed
requests and answers take vectorised.py's fast path (orjson, whole numpy columns); this module
keeps the element-by-element path that checks every value and words TF Serving's errors.
"""
import base64
import binascii
import dataclasses
import json

import numpy as np

from model.server import vectorised
from model.server.dtypes import DTYPES, FLOAT_EXACT_INT, FLOAT_MAX, INT_RANGE
from model.server.errors import InvalidArgument

ROW = "row"
COLUMNAR = "columnar"
BYTES_SUFFIX = vectorised.BYTES_SUFFIX

@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """An input or output of a signature: its DataType name and shape (None: any size)."""

    dtype: str
    shape: tuple | None  # None: unknown rank.

    @property
    def type_name(self):
        return DTYPES.get(self.dtype, (None, self.dtype.removeprefix("DT_").lower()))[1]


@dataclasses.dataclass(frozen=True)
class PredictRequest:
    """A parsed predict body: the signature asked for, the format and the raw JSON tensors."""

    signature_name: str
    format: str
    payload: object


def json_type(value):
    """Return rapidjson's name for the JSON type of `value`."""
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def json_text(value):
    """Return compact JSON for `value`, for error messages."""
    return json.dumps(value, separators=(",", ":"), allow_nan=True)


def parse_body(body):
    """Return the JSON object in request `body` (bytes), or raise TF Serving's parse errors."""
    if not body:
        raise InvalidArgument("JSON Parse error: The document is empty")
    document = vectorised.loads(body)
    if document is None:
        document = _stdlib_loads(body)
    if not isinstance(document, dict):
        raise InvalidArgument(f"JSON Value: {json_text(document)} Is not object")
    return document


def _stdlib_loads(body):
    """Parse with the standard library: NaN/Infinity tokens, long integers, error texts."""
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise InvalidArgument("JSON Parse error: Invalid encoding in string.") from None
    except json.JSONDecodeError as error:
        raise InvalidArgument(
            f"JSON Parse error: {error.msg} at offset: {error.pos}") from None
    except RecursionError:
        raise InvalidArgument("JSON Parse error: The document is nested too deeply") from None


def signature_name(document):
    """Return the request's `signature_name` ('' when absent)."""
    name = document.get("signature_name", "")
    if not isinstance(name, str):
        raise InvalidArgument(
            f"JSON Value: {json_text(document)} not formatted correctly. "
            "'signature_name' key must be a string value.")
    return name


def predict_request(document):
    """Return the PredictRequest in a parsed predict body."""
    name = signature_name(document)
    has_instances, has_inputs = "instances" in document, "inputs" in document
    if has_instances and has_inputs:
        raise InvalidArgument(
            f"JSON Value: {json_text(document)} Not formatted correctly expecting only one "
            "of 'inputs' or 'instances' keys to exist ")
    if has_instances:
        instances = document["instances"]
        if not isinstance(instances, list):
            raise InvalidArgument(f"JSON Value: {json_text(document)} Excepting "
                                  "'instances' to be an list/array")
        if not instances:
            raise InvalidArgument(f"JSON Value: {json_text(document)} No values in "
                                  "'instances' array")
        return PredictRequest(name, ROW, instances)
    if has_inputs:
        return PredictRequest(name, COLUMNAR, document["inputs"])
    raise InvalidArgument("Missing 'inputs' or 'instances' key")


def _is_b64(value):
    return (isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str))


def _type_error(value, spec):
    return InvalidArgument(f"JSON Value: {json_text(value)} Type: {json_type(value)} "
                           f"is not of expected type: {spec.type_name}")


def _leaf(value, spec):
    """Return one JSON scalar converted to `spec`'s dtype, or raise TF Serving's error."""
    dtype = spec.dtype
    if dtype == "DT_STRING":
        if isinstance(value, str):
            try:
                return value.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate escape, which rapidjson refuses
                raise InvalidArgument("JSON Parse error: The surrogate pair in string is "
                                      "invalid.") from None
        if isinstance(value, dict):
            if not _is_b64(value):
                raise InvalidArgument(f"JSON Value: {json_text(value)} not formatted "
                                      "correctly for base64 data")
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (binascii.Error, ValueError):
                raise InvalidArgument("Unable to base64 decode") from None
        raise _type_error(value, spec)
    if dtype == "DT_BOOL":
        if isinstance(value, bool):
            return value
        raise _type_error(value, spec)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _type_error(value, spec)
    if dtype in FLOAT_EXACT_INT:
        lossy = (abs(value) > FLOAT_EXACT_INT[dtype] if isinstance(value, int)
                 else np.isfinite(value) and abs(value) > FLOAT_MAX[dtype])
        if lossy:
            raise InvalidArgument(f"Cannot convert JSON value: {json_text(value)} to "
                                  f"{spec.type_name} without loss of precision.")
        return value
    if dtype in INT_RANGE:
        low, high = INT_RANGE[dtype]
        if isinstance(value, float) or not low <= value <= high:
            raise _type_error(value, spec)
        return value
    raise InvalidArgument(f"Conversion of JSON Value: {json_text(value)} to type: "
                          f"{spec.type_name} is not supported")


def _dense_shape(value):
    """Return the shape implied by the first element at each level, as TF Serving does."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return tuple(shape)


def _fill(value, level, shape, spec, out):
    """Append the leaves of `value` to `out`, checking that it is dense with `shape`."""
    if not isinstance(value, list):
        if level != len(shape):
            raise InvalidArgument(f"JSON Value: {json_text(value)} found at incorrect level: "
                                  f"{level + 1} in the JSON DOM. Expected at level: "
                                  f"{len(shape)}")
        out.append(_leaf(value, spec))
        return
    if level >= len(shape):
        raise InvalidArgument(f"Encountered list at unexpected level: {level} expected < "
                              f"{len(shape)}")
    if len(value) != shape[level]:
        raise InvalidArgument(f"Encountered list at unexpected size: {len(value)} at level: "
                              f"{level} expected size: {shape[level]}")
    for item in value:
        _fill(item, level + 1, shape, spec, out)


def to_array(value, spec):
    """Return JSON `value` (a scalar or nested lists) as a numpy array of `spec`'s dtype."""
    shape = _dense_shape(value)
    leaves = []
    _fill(value, 0, shape, spec, leaves)
    np_dtype = DTYPES[spec.dtype][0]
    if np_dtype is object:
        array = np.empty(len(leaves), dtype=object)
        array[:] = leaves
        return array.reshape(shape)
    return np.asarray(leaves, dtype=np_dtype).reshape(shape)


def _describe(error, where):
    return InvalidArgument(f"{where}. Error: INVALID_ARGUMENT: {error.message}")


def decode_inputs(request, specs):
    """Return {input name: numpy array} for a PredictRequest against a signature's inputs."""
    if not specs:
        raise InvalidArgument(
            f"Failed to get input map for signature: {request.signature_name or 'DEFAULT'}")
    if request.format == ROW:
        fast, checked = vectorised.rows_to_arrays, _decode_rows
    else:
        fast, checked = vectorised.columns_to_arrays, _decode_columns
    arrays = fast(request.payload, specs)
    if arrays is None:  # something to check element by element, or an error to word
        arrays = checked(request.payload, specs)
    for name, array in arrays.items():
        check_shape(name, array, specs[name])
    return arrays


def _decode_rows(instances, specs):
    """Return the tensors of a row-format `instances` list, batched on dimension 0."""
    first = instances[0]
    objects = isinstance(first, dict) and not _is_b64(first)
    if not objects and len(specs) > 1:
        raise InvalidArgument("instances is a plain list, but expecting list of objects as "
                              "multiple input tensors required as per tensorinfo_map")
    names = sorted(specs)
    columns = {name: [] for name in names}
    shapes = {}
    for index, item in enumerate(instances):
        is_object = isinstance(item, dict) and not _is_b64(item)
        if objects and not is_object:
            raise InvalidArgument(f"Expecting object but got list at item {index} of input "
                                  "list")
        if not objects and is_object:
            raise InvalidArgument(f"Expecting value/list but got object at item {index} of "
                                  "input list")
        row = item if objects else {names[0]: item}
        for key, value in row.items():
            if key not in specs:
                raise InvalidArgument(
                    f"Failed to process element: {index} key: {key} of 'instances' list. "
                    f"Error: INVALID_ARGUMENT: JSON object: does not have named input: {key}")
            try:
                array = to_array(value, specs[key])
            except InvalidArgument as error:
                raise _describe(error, f"Failed to process element: {index} key: {key} of "
                                       "'instances' list") from None
            if key in shapes and shapes[key] != array.shape:
                raise InvalidArgument(
                    f"Failed to process element: {index} key: {key} of 'instances' list. "
                    f"Error: INVALID_ARGUMENT: Expecting shape {_shape_text(shapes[key])} but "
                    f"got: {_shape_text(array.shape)}")
            shapes[key] = array.shape
            columns[key].append(array)
        if objects and set(row) != set(names):
            raise InvalidArgument(
                f"Failed to process element: {index} of 'instances' list. JSON object: "
                f"{json_text(item)} keys must be equal to: {','.join(names)}")
    return {name: np.stack(values) for name, values in columns.items()}


def _decode_columns(inputs, specs):
    """Return the tensors of a columnar-format `inputs` value."""
    if not isinstance(inputs, dict) or _is_b64(inputs):
        if len(specs) > 1:
            raise InvalidArgument("inputs is a plain value/list, but expecting an object as "
                                  "multiple input tensors required as per tensorinfo_map")
        name = next(iter(specs))
        return {name: _column(name, inputs, specs[name])}
    arrays = {}
    for name in sorted(specs):
        if name not in inputs:
            raise InvalidArgument(f"Missing named input: {name} in 'inputs' object.")
        arrays[name] = _column(name, inputs[name], specs[name])
    extra = sorted(set(inputs) - set(specs))
    if extra:
        raise InvalidArgument(f"Unknown named input: {', '.join(extra)} in 'inputs' object; "
                              f"the signature's inputs are: {', '.join(sorted(specs))}")
    return arrays


def _column(name, value, spec):
    try:
        return to_array(value, spec)
    except InvalidArgument as error:
        raise _describe(error, f"Failed to process input: {name} of 'inputs' object") from None


def _shape_text(shape):
    return "[" + ",".join(str(-1 if size is None else size) for size in shape) + "]"


def check_shape(name, array, spec):
    """Refuse an array whose shape the signature's TensorSpec does not accept, naming it."""
    if spec.shape is None:
        return
    expected = spec.shape
    fits = len(expected) == array.ndim and all(
        size is None or size == actual for size, actual in zip(expected, array.shape))
    if not fits:
        raise InvalidArgument(
            f"Input '{name}' has shape {_shape_text(array.shape)} but the signature expects "
            f"{_shape_text(expected)} (dtype {spec.type_name}; -1 is any size)")


def _json_values(name, array):
    """Return `array` as nested Python lists/scalars ready for json.dumps."""
    if array.dtype == object or array.dtype.kind in "SU":
        items = array.reshape(-1).tolist()
        if name.endswith(BYTES_SUFFIX):
            flat = [_b64_out(item) for item in items]
        else:
            flat = vectorised.text_values(items)
        if array.ndim == 1:
            return flat
        nested = np.empty(len(flat), dtype=object)
        nested[:] = flat
        return nested.reshape(array.shape).tolist()
    if array.dtype.kind == "f":
        # The shortest text that reads back as the same float32, as TF Serving writes.
        return array.astype(str).astype(np.float64).tolist()
    return array.tolist()


def _b64_out(item):
    raw = item if isinstance(item, bytes) else str(item).encode("utf-8")
    return {"b64": base64.b64encode(raw).decode("ascii")}


def encode_response(outputs, request_format):
    """Return the answer's JSON bytes: written by orjson when every float output is finite
    float32/64 (numpy's float32 text is TF Serving's), else by the standard library, which
    writes NaN and Infinity as tokens. A row answer of several outputs is cut from each
    output's whole text where it can be (vectorised.row_answer)."""
    if request_format == ROW and len(outputs) > 1:
        body = vectorised.row_answer(outputs)
        if body is not None:
            return body
    floats = {name: vectorised.float_output(array) for name, array in outputs.items()
              if array.dtype.kind == "f"}
    if any(value is None for value in floats.values()):
        return dumps(encode_outputs(outputs, request_format)).encode("utf-8")

    def to_values(name, array):
        return floats[name] if name in floats else _json_values(name, array)

    return vectorised.dumps(encode_outputs(outputs, request_format, to_values))


def encode_outputs(outputs, request_format, to_values=_json_values):
    """Return the response object for {output name: array}, shaped as TF Serving shapes it."""
    if not outputs:
        raise InvalidArgument("Cannot convert empty tensor map to JSON")
    if request_format == COLUMNAR:
        values = {name: to_values(name, array) for name, array in outputs.items()}
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    batch = None
    for name, array in outputs.items():
        if array.ndim == 0:
            raise InvalidArgument(f"Tensor name: {name} has no shape information ")
        if batch is not None and array.shape[0] != batch:
            raise InvalidArgument(f"Tensor name: {name} has inconsistent batch size: "
                                  f"{array.shape[0]} expecting: {batch}")
        batch = array.shape[0]
    values = {name: to_values(name, array) for name, array in outputs.items()}
    if len(values) == 1:
        return {"predictions": next(iter(values.values()))}
    names = list(values)
    return {"predictions": [{name: values[name][i] for name in names} for i in range(batch)]}


def dumps(document):
    """Return the response text; NaN and infinities as the JSON tokens TF Serving writes."""
    return json.dumps(document, allow_nan=True)
