"""Parse and write JSON fast (orjson), with exactly the standard library's acceptance.

orjson parses strict JSON only; Python's json module (what Flask used) also takes the NaN,
Infinity and -Infinity tokens (the penguins schema's missing numeric values are NaN), numbers
too large for a double, and lone surrogates. :func:`loads` tries orjson and falls back to the
json module for anything orjson refuses, so the set of accepted bodies does not change. One
difference remains: an integer beyond 64 bits parses as a float with orjson (json: an int).

Both keep the last of duplicate keys.
"""
import json

import orjson


def loads(data):
    """Return the parsed JSON of data (bytes or str); ValueError when it is not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def dumps_validated(value):
    """Return value as JSON bytes, for a prediction body that passed validation.

    A validated body holds no JSON null, so a ``null`` in orjson's output can only be a NaN or
    infinity (orjson writes those as null) or text inside a string: then the json module
    writes it, keeping NaN as NaN. Integers beyond 64 bits go to the json module too.
    """
    try:
        data = orjson.dumps(value)
    except TypeError:
        return json.dumps(value).encode()
    if b"null" in data:
        return json.dumps(value).encode()
    return data
