"""The codec's fast path: orjson parses and writes, numpy converts whole columns at once.

Every function here answers None when it cannot vouch for its input: a value of another
type, a ragged list, a number near a limit, a NaN or Infinity token, a float16 output. The
codec then takes its element-by-element path, which applies TF Serving's rules and words
its errors, so both paths give the same tensors and the same answers wherever this one
answers at all (tests/model/server/test_vectorised.py holds them to that).
"""
import itertools
import operator

import numpy as np
import orjson

from model.server.dtypes import FLOAT_EXACT_INT, FLOAT_MAX, INT_RANGE

# orjson reads an integer past 64 bits as a float; the standard library (and the checking
# path's error texts) keep it an integer. Any run of 19 digits sends the body there.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_INTEGER = b"0" * 19
_NUMBERS = frozenset((int, float))
BYTES_SUFFIX = "_bytes"  # an output written as {"b64": ...} objects


def loads(body):
    """Return the JSON document in `body` (bytes), or None where the standard library must
    read it: NaN/Infinity tokens (orjson refuses them), long integers, and every error."""
    if not isinstance(body, bytes) or _LONG_INTEGER in body.translate(_DIGITS_AS_ZERO):
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _floats(dtype, exact_int, max_finite):
    """Return a converter to float `dtype`; refuses integers past `exact_int` and finite
    floats past `max_finite` (the checking path words those errors)."""
    def convert(leaves, types):
        if not types <= _NUMBERS:
            return None
        try:
            values = np.array(leaves, dtype=np.float64)
        except OverflowError:
            return None
        magnitude = np.abs(values)
        if int in types and (magnitude > exact_int).any():
            return None
        if (np.isfinite(values) & (magnitude > max_finite)).any():
            return None
        return values if dtype == np.float64 else values.astype(dtype)
    return convert


def _integers(dtype, low, high):
    def convert(leaves, types):
        if types != {int}:  # bool is a type of its own
            return None
        try:
            values = np.array(leaves, dtype=np.int64)
        except OverflowError:
            return None
        if values.min() < low or values.max() > high:
            return None
        return values if dtype == np.int64 else values.astype(dtype)
    return convert


def _bools(leaves, types):
    return np.array(leaves, dtype=np.bool_) if types == {bool} else None


def _strings(leaves, types):
    if types != {str}:
        return None
    array = np.empty(len(leaves), dtype=object)
    try:
        array[:] = list(map(str.encode, leaves))  # UTF-8
    except UnicodeEncodeError:
        return None
    return array


_BLOCK_DTYPES = frozenset(("DT_FLOAT", "DT_DOUBLE", "DT_INT32", "DT_INT64"))
CONVERTERS = {
    "DT_FLOAT": _floats(np.float32, FLOAT_EXACT_INT["DT_FLOAT"], FLOAT_MAX["DT_FLOAT"]),
    "DT_DOUBLE": _floats(np.float64, FLOAT_EXACT_INT["DT_DOUBLE"], FLOAT_MAX["DT_DOUBLE"]),
    "DT_INT32": _integers(np.int32, *INT_RANGE["DT_INT32"]),
    "DT_INT64": _integers(np.int64, *INT_RANGE["DT_INT64"]),
    "DT_BOOL": _bools,
    "DT_STRING": _strings,
}


def to_array(value, dtype):
    """Return JSON `value` (a non-empty, dense nested list) as an array of TF DataType
    `dtype`, or None."""
    convert = CONVERTERS.get(dtype)
    if convert is None or type(value) is not list or not value:
        return None
    if type(value[0]) is list:
        try:  # numpy finds the dense shape; leaves stay Python objects for the type check
            objects = np.array(value, dtype=object)
        except ValueError:
            return None
        shape, leaves = objects.shape, objects.reshape(-1)
    else:
        shape, leaves = (len(value),), value
    if not len(leaves):
        return None
    types = set(map(type, leaves))
    if list in types:  # ragged below the dense part
        return None
    array = convert(leaves, types)
    return None if array is None else array.reshape(shape)


def rows_to_arrays(instances, specs):
    """Return {input name: array} batched from a row-format `instances` list, or None."""
    if "b64" in specs:  # {"b64": ...} would be a value, not a row object
        return None
    if type(instances[0]) is dict:
        names = list(specs)
        try:  # one C-level pass: each row's values in the signature's input order
            values = list(map(operator.itemgetter(*names), instances))
        except (KeyError, TypeError):  # a row without an input, or not an object
            return None
        if sum(map(len, instances)) != len(instances) * len(specs):  # a row with extra keys
            return None
        if len(names) == 1:
            return _arrays({names[0]: values}, specs)
        return _row_arrays(dict(zip(names, map(list, zip(*values)))), specs)
    if len(specs) == 1:
        return _arrays({next(iter(specs)): instances}, specs)
    return None


def columns_to_arrays(inputs, specs):
    """Return {input name: array} of a columnar `inputs` value, or None."""
    if type(inputs) is dict:
        if inputs.keys() != specs.keys() or "b64" in specs:
            return None
        return _arrays(inputs, specs)
    if len(specs) != 1:
        return None
    return _arrays({next(iter(specs)): inputs}, specs)


def _arrays(columns, specs):
    arrays = {}
    for name, column in columns.items():
        array = to_array(column, specs[name].dtype)
        if array is None:
            return None
        arrays[name] = array
    return arrays


def _row_arrays(columns, specs):
    """_arrays for columns of equal length (from rows): the one-dimensional columns of each
    numeric dtype are converted and checked together, as the rows of one block."""
    groups = {}
    for name, column in columns.items():
        dtype = specs[name].dtype
        if dtype in _BLOCK_DTYPES and type(column[0]) is not list:
            groups.setdefault(dtype, []).append(name)
    arrays = {}
    for dtype, names in groups.items():
        if len(names) > 1:
            leaves = [columns[name] for name in names]
            types = set(map(type, itertools.chain.from_iterable(leaves)))
            block = None if list in types else CONVERTERS[dtype](leaves, types)
            if block is None:
                return None
            arrays.update(zip(names, block))
    for name, column in columns.items():
        if name not in arrays:
            array = to_array(column, specs[name].dtype)
            if array is None:
                return None
            arrays[name] = array
    return {name: arrays[name] for name in columns}


def float_output(array):
    """Return a float output as orjson writes it (float32 in its own shortest text, as TF
    Serving writes it), or None when it holds NaN/Infinity or is not float32/64."""
    if array.dtype not in (np.float32, np.float64) or not np.isfinite(array).all():
        return None
    return array[()] if array.ndim == 0 else np.ascontiguousarray(array)


def text_values(items):
    """Return string tensor elements as JSON text values: UTF-8 decoded (invalid bytes
    replaced), anything else as str()."""
    try:  # the common case, all valid UTF-8 bytes: one C-level pass
        return list(map(bytes.decode, items))
    except (TypeError, UnicodeDecodeError):
        return [item.decode("utf-8", errors="replace") if type(item) is bytes else str(item)
                for item in items]


def row_answer(outputs):
    """Return the row-format answer for several outputs as JSON bytes, or None.

    Each output is written whole by orjson (numpy natively: float32 in its shortest text) and
    its text cut at the row boundaries, then each row's object is formatted from the cut
    pieces: no per-element Python objects. Takes outputs of one or two dimensions (batch
    first) of finite float32/64, integer, bool or (one-dimensional) string type with a common
    batch size; anything else answers None, for the general path.
    """
    batch, cells, fields = None, [], []
    for name, array in outputs.items():
        if array.ndim not in (1, 2) or not array.shape[0] or (batch is not None and array.shape[0] != batch):
            return None
        batch = array.shape[0]
        kind = array.dtype.kind
        if kind == "f":
            array = float_output(array)
            if array is None:
                return None
        if kind in "fiub":
            text = orjson.dumps(array, option=orjson.OPT_SERIALIZE_NUMPY)
            if array.ndim == 1:  # [1,2,3]: numbers hold no comma
                cells.append(text[1:-1].split(b","))
                wrap = b"%b"
            else:  # [[1,2],[3,4]]: nor brackets
                cells.append(text[2:-2].split(b"],["))
                wrap = b"[%b]"
        elif kind in "OSU" and array.ndim == 1 and not name.endswith(BYTES_SUFFIX):
            # ["a","b"]: inside a JSON string every quote is escaped, so '","' only
            # ever separates two elements.
            text = orjson.dumps(text_values(array.tolist()))
            cells.append(text[2:-2].split(b'","'))
            wrap = b'"%b"'
        else:
            return None
        fields.append(orjson.dumps(name).replace(b"%", b"%%") + b":" + wrap)
    row = b"{" + b",".join(fields) + b"}"
    return b'{"predictions":[' + b",".join([row % values for values in zip(*cells)]) + b"]}"


def dumps(document):
    """Return `document` as JSON bytes; numpy arrays and scalars are written natively."""
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
