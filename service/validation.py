"""Check a prediction body against a version's input schema before it reaches the model server.

The body is TF Serving's: ``{"instances": [{name: value, ...}, ...]}`` (rows) or
``{"inputs": {name: [value, ...], ...}}`` (columns), with an optional ``signature_name``.
The schema is the ``input_schema`` an export writes and the registry stores (data, never an
import from ``model/``): each input has a ``dtype``, a ``shape`` whose first dimension is the
batch, a ``kind`` and, for categorical inputs, its ``categories`` and ``missing`` token.

Rules: every input present and no unknown one; values of the input's dtype and per-row shape;
categorical values among the categories or the missing token (""); numeric values finite, or
NaN (the JSON token) where the input's missing token is "NaN"; at most ``max_rows`` rows. A
violation raises :class:`service.errors.BadRequest` naming the input (``field``) and the rule.
"""
import base64
import binascii
import math
from dataclasses import dataclass, field

from service.errors import BadRequest

FLOAT_DTYPES = frozenset({"float16", "bfloat16", "float32", "float64", "half", "float", "double"})
INT_DTYPES = frozenset({"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"})
STRING_DTYPES = frozenset({"string"})
BOOL_DTYPES = frozenset({"bool"})
BODY_KEYS = frozenset({"signature_name", "instances", "inputs"})


class InvalidInput(BadRequest):
    """A prediction body that does not fit the version's input schema."""

    code = "invalid_input"


@dataclass
class ValidatedBody:
    """What validation learnt: the format, the number of rows and each scalar input's values."""

    format: str
    rows: int
    columns: dict = field(default_factory=dict)


def _fail(message, where, **details):
    raise InvalidInput(message, field=where, details=details or None)


def _describe(value):
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _decode_b64(text, spec, where):
    """Return a {"b64": ...} value's text where the input has categories (None: no categories).

    TF Serving decodes b64 into the string tensor, so a category sent base64-encoded must be
    checked like the plain one.
    """
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        _fail(f"{where}.b64 is not valid base64", where)
    if spec.get("categories") is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        _fail(f"{where}.b64 does not decode to UTF-8 text, so it cannot be one of the input's "
              "categories", where)


def _check_scalar(value, spec, where):
    dtype = spec.get("dtype", "")
    if dtype in STRING_DTYPES:
        if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
            value = _decode_b64(value["b64"], spec, where)
            if value is None:
                return  # binary content of a free-form string input: nothing more to check
        if not isinstance(value, str):
            _fail(f"{where} must be a string, got {_describe(value)}", where)
        categories = spec.get("categories")
        if categories is not None and value not in categories and value != spec.get("missing"):
            allowed = list(categories) + ([spec["missing"]] if "missing" in spec else [])
            _fail(f"{where} must be one of {allowed}, got {_describe(value)}", where, allowed=allowed)
    elif dtype in FLOAT_DTYPES:
        if type(value) is float and value - value == 0.0:  # a finite float: the usual case
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(f"{where} must be a number, got {_describe(value)}", where)
        if isinstance(value, float) and math.isnan(value):
            if spec.get("missing") != "NaN":
                _fail(f"{where} may not be NaN", where)
        elif isinstance(value, float) and math.isinf(value):
            _fail(f"{where} must be finite, got {_describe(value)}", where)
    elif dtype in INT_DTYPES:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(f"{where} must be an integer, got {_describe(value)}", where)
    elif dtype in BOOL_DTYPES:
        if not isinstance(value, bool):
            _fail(f"{where} must be true or false, got {_describe(value)}", where)
    else:
        raise ValueError(f"input schema: unsupported dtype {dtype!r}")


def _check_value(value, dims, spec, where):
    """Check value against the per-row dims (-1 = any length) and the scalar rules."""
    if not dims:
        if isinstance(value, list):
            _fail(f"{where} must be a single value, got a list", where)
        _check_scalar(value, spec, where)
        return
    if not isinstance(value, list):
        _fail(f"{where} must be a list of shape {list(dims)}, got {_describe(value)}", where)
    if dims[0] != -1 and len(value) != dims[0]:
        _fail(f"{where} must have {dims[0]} elements, got {len(value)}", where)
    for index, item in enumerate(value):
        _check_value(item, dims[1:], spec, f"{where}.{index}")


def _row_dims(spec):
    return list(spec.get("shape", [-1]))[1:]


def _check_rows(instances, inputs, max_rows):
    if not isinstance(instances, list):
        _fail("instances must be a list of rows", "instances")
    _check_batch(len(instances), max_rows, "instances")
    plan = [(name, spec, _row_dims(spec)) for name, spec in inputs.items()]  # once per body
    columns = {name: [] for name, _, dims in plan if not dims}
    single = next(iter(inputs)) if len(inputs) == 1 else None
    for index, row in enumerate(instances):
        if single is not None and not isinstance(row, dict):
            row = {single: row}
        if not isinstance(row, dict):
            _fail(f"instances.{index} must be an object keyed by input name", f"instances.{index}")
        _check_names(row, inputs, f"instances.{index}")
        for name, spec, dims in plan:
            value = row[name]
            _check_value(value, dims, spec, f"instances.{index}.{name}")
            if not dims:
                columns[name].append(value)
    return ValidatedBody("instances", len(instances), columns)


def _check_columns(tensors, inputs, max_rows):
    if len(inputs) == 1 and not isinstance(tensors, dict):
        tensors = {next(iter(inputs)): tensors}
    if not isinstance(tensors, dict):
        _fail("inputs must be an object keyed by input name", "inputs")
    _check_names(tensors, inputs, "inputs")
    rows = None
    for name, spec in inputs.items():
        values, where = tensors[name], f"inputs.{name}"
        if not isinstance(values, list):
            _fail(f"{where} must be a list with one entry per row", where)
        if rows is None:
            rows = len(values)
            _check_batch(rows, max_rows, where)
        elif len(values) != rows:
            _fail(f"{where} has {len(values)} rows, other inputs have {rows}", where)
        for index, value in enumerate(values):
            _check_value(value, _row_dims(spec), spec, f"{where}.{index}")
    columns = {name: tensors[name] for name, spec in inputs.items() if not _row_dims(spec)}
    return ValidatedBody("inputs", rows or 0, columns)


def _check_names(given, inputs, where):
    if len(given) == len(inputs) and all(name in given for name in inputs):
        return  # the same names (dict keys are unique)
    unknown = sorted(set(given) - set(inputs))
    if unknown:
        _fail(f"unknown input {unknown[0]!r}; the inputs are {sorted(inputs)}",
              f"{where}.{unknown[0]}", unknown=unknown, expected=sorted(inputs))
    missing = [name for name in inputs if name not in given]
    if missing:
        _fail(f"missing input {missing[0]!r}", f"{where}.{missing[0]}", missing=missing)


def _check_batch(rows, max_rows, where):
    if rows == 0:
        _fail("the batch is empty: send at least one row", where)
    if rows > max_rows:
        _fail(f"the batch has {rows} rows; the limit is {max_rows}", where, max_rows=max_rows)


def validate_predict_body(body, input_schema, *, max_rows):
    """Return a ValidatedBody for body, or raise InvalidInput naming what is wrong and where."""
    if not isinstance(body, dict):
        _fail("the body must be a JSON object with 'instances' or 'inputs'", "body")
    unknown = sorted(set(body) - BODY_KEYS)
    if unknown:
        _fail(f"unknown body field {unknown[0]!r}; allowed: {sorted(BODY_KEYS)}", unknown[0])
    signature = input_schema.get("signature_name", "serving_default")
    if "signature_name" in body and body["signature_name"] != signature:
        _fail(f"signature_name must be {signature!r}", "signature_name")
    if ("instances" in body) == ("inputs" in body):
        _fail("send exactly one of 'instances' (rows) or 'inputs' (columns)", "body")
    inputs = input_schema["inputs"]
    if "instances" in body:
        return _check_rows(body["instances"], inputs, max_rows)
    return _check_columns(body["inputs"], inputs, max_rows)


def out_of_range_counts(columns, input_schema, feature_statistics):
    """Count, per feature, the values outside the training data.

    Numeric values outside [min, max] and categories the training set never held count;
    missing values (NaN, the missing token) do not.
    """
    counts = {}
    inputs = input_schema.get("inputs", {})
    feature_statistics = feature_statistics or {}
    for name, values in columns.items():  # plain loops: a generator per feature cost more
        stats = feature_statistics.get(name)
        if not stats:
            continue
        count = 0
        if "min" in stats and "max" in stats:
            low, high = stats["min"], stats["max"]
            for v in values:
                if isinstance(v, (int, float)) and not isinstance(v, bool) and \
                        not math.isnan(v) and (v < low or v > high):
                    count += 1
        elif "categories" in stats:
            seen, missing = stats["categories"], inputs.get(name, {}).get("missing")
            for v in values:
                if isinstance(v, str) and v != missing and v not in seen:
                    count += 1
        if count:
            counts[name] = count
    return counts
