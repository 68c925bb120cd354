"""Row-format predict bodies decoded straight into typed rows: the common request's short path.

For a signature whose inputs each take one value per row (shape [-1]) of a float, integer,
bool or string type, msgspec decodes `{"instances": [{...}, ...], "signature_name": ...}`
into compact row structs and checks every value on the way, with TF Serving's limits as the
types' bounds: no bools for numbers, integers a float input holds exactly, finite floats in
range, no unknown or missing keys, no other top-level key. Whatever it refuses (a NaN token,
a `{"b64": ...}` value, an error of any kind, a long integer) answers None, and the request
takes the general path (codec.py), which parses it again and answers or words the error as TF
Serving does; both give the same tensors wherever this answers at all
(tests/model/server/test_typed_rows.py holds them to that).
"""
import operator
from typing import Annotated, Union

import msgspec
import numpy as np

from model.server import dtypes


def _number(dtype):
    """A float input's JSON value: an integer it holds exactly or a finite float in range."""
    exact_int, max_finite = dtypes.FLOAT_EXACT_INT[dtype], dtypes.FLOAT_MAX[dtype]
    return Union[Annotated[int, msgspec.Meta(ge=-exact_int, le=exact_int)],
                 Annotated[float, msgspec.Meta(ge=-max_finite, le=max_finite)]]


def _integer(dtype):
    low, high = dtypes.INT_RANGE[dtype]
    return Annotated[int, msgspec.Meta(ge=low, le=high)]


# DataType name -> (the JSON value's type, bounded by TF Serving's limits in dtypes.py, numpy dtype).
_TYPES = {dtype: (value_type, dtypes.DTYPES[dtype][0]) for dtype, value_type in (
    ("DT_FLOAT", _number("DT_FLOAT")), ("DT_DOUBLE", _number("DT_DOUBLE")),
    ("DT_INT32", _integer("DT_INT32")), ("DT_INT64", _integer("DT_INT64")),
    ("DT_BOOL", bool), ("DT_STRING", str))}


def decoder(specs):
    """Return decode(body bytes) -> (signature_name, {input name: array}) or None, for a
    signature's input `specs` ({name: codec.TensorSpec}); None when an input is not one value
    per row of a type above (those requests always take the general path)."""
    names = sorted(specs)
    if not names or "b64" in specs or any(
            specs[name].dtype not in _TYPES or specs[name].shape != (None,) for name in names):
        return None
    # Fields f0, f1, ... renamed to the input names: any string may name an input, not
    # only a Python identifier.
    fields = [f"f{index}" for index in range(len(names))]
    try:
        row = msgspec.defstruct("Row", [(field, _TYPES[specs[name].dtype][0])
                                        for field, name in zip(fields, names)],
                                rename=dict(zip(fields, names)), forbid_unknown_fields=True)
        request = msgspec.defstruct("Request", [("instances", list[row]), ("signature_name", str, "")],
                                    forbid_unknown_fields=True)
        decode = msgspec.json.Decoder(request).decode
    except (TypeError, ValueError):  # a signature msgspec cannot describe: the general path
        return None
    if len(names) > 1:
        get = operator.attrgetter(*fields)  # a row's values as a tuple
    else:
        def get(item):
            return (item.f0,)
    groups = {}
    for index, name in enumerate(names):
        groups.setdefault(_TYPES[specs[name].dtype][1], []).append(index)

    def decode_rows(body):
        try:
            found = decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        if not found.instances:
            return None
        columns = list(zip(*map(get, found.instances)))
        arrays = {}
        for dtype, indexes in groups.items():
            if dtype is object:
                for index in indexes:
                    array = np.empty(len(found.instances), dtype=object)
                    try:
                        array[:] = list(map(str.encode, columns[index]))  # UTF-8
                    except UnicodeEncodeError:
                        return None
                    arrays[names[index]] = array
                continue
            # One block per dtype; numbers go through float64 as the general path's do.
            block = np.array([columns[index] for index in indexes],
                             dtype=np.float64 if dtype in (np.float32, np.float64) else dtype)
            block = block if block.dtype == dtype else block.astype(dtype)
            arrays.update(zip((names[index] for index in indexes), block))
        return found.signature_name, {name: arrays[name] for name in names}

    return decode_rows

