"""TF Serving's documented REST behaviour as golden request/response pairs (golden_cases.json).

The gateway's tests can run the same file against any TF-Serving-compatible server that
serves fixture_models.py's 'multi'. Time budget: ~2 s on the session's server.
"""
import json
import math
import pathlib

import pytest

CASES = json.loads((pathlib.Path(__file__).parent / "golden_cases.json").read_text())["cases"]


def same(actual, expected):
    """Return JSON equality where NaN equals NaN."""
    if isinstance(expected, float) and math.isnan(expected):
        return isinstance(actual, float) and math.isnan(actual)
    if isinstance(expected, dict):
        return isinstance(actual, dict) and actual.keys() == expected.keys() and all(
            same(actual[k], v) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(
            same(a, e) for a, e in zip(actual, expected))
    return type(actual) is type(expected) and actual == expected


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_golden_case(server, case):
    if case["method"] == "GET":
        response = server.get(case["path"])
    else:
        response = server.post(case["path"], data=case["request"].encode("utf-8"),
                               headers={"Content-Type": "application/json"})
    assert response.status_code == case["status"], response.text
    assert response.headers["Content-Type"] == "application/json"
    body = json.loads(response.text)
    if "response" in case:
        assert same(body, json.loads(case["response"])), response.text
    elif "error" in case:
        assert body == {"error": case["error"]}
    else:
        assert set(body) == {"error"} and case["error_contains"] in body["error"], body
