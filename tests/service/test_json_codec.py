"""The fast JSON codec accepts exactly what the json module accepts. Budget: < 1 s."""
import json
import math

import pytest

from service import json_codec


@pytest.mark.parametrize("text", [
    '{"instances": [{"x": 1.5, "y": "Biscoe"}]}',
    '{"a": 1, "a": 2}',  # duplicate keys: the last wins in both
    '[NaN, Infinity, -Infinity]',  # not strict JSON: orjson refuses, the json module takes it
    '[1e400]',  # too large for a double: inf with the json module
    '"\\ud800"',  # a lone surrogate
    '{"s": "caf\\u00e9", "n": -0.0, "i": 18446744073709551615}',
])
def test_loads_gives_the_json_modules_answer(text):
    expected, got = json.loads(text), json_codec.loads(text.encode())
    assert json.dumps(got) == json.dumps(expected)


@pytest.mark.parametrize("text", ["", "{", "[1,]", "{'a': 1}", "nul"])
def test_loads_refuses_what_the_json_module_refuses(text):
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        json_codec.loads(text.encode())


@pytest.mark.parametrize("value", [
    {"instances": [{"x": 45.1, "island": "Dream", "n": 3}]},
    {"instances": [{"x": math.nan}]},  # orjson would write null
    {"instances": [{"x": 2 ** 70}]},  # orjson cannot write it
    {"instances": [{"island": "null"}]},  # "null" inside a string: safe either way
])
def test_dumps_validated_round_trips_through_the_json_module(value):
    data = json_codec.dumps_validated(value)
    assert isinstance(data, bytes)
    assert json.dumps(json.loads(data)) == json.dumps(value)
