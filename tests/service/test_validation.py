"""Prediction bodies against the input-schema contract (rows and columns). Budget: < 1 s."""
import copy
import json

import pytest

from service.errors import BadRequest
from service.validation import out_of_range_counts, validate_predict_body

NUMERIC = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")
SCHEMA = {
    "signature_name": "serving_default",
    "inputs": {
        "island": {"dtype": "string", "shape": [-1], "kind": "categorical",
                   "categories": ["Biscoe", "Dream", "Torgersen"], "missing": ""},
        "sex": {"dtype": "string", "shape": [-1], "kind": "categorical",
                "categories": ["female", "male"], "missing": ""},
        **{name: {"dtype": "float32", "shape": [-1], "kind": "numeric", "missing": "NaN"}
           for name in NUMERIC},
    },
    "classes": ["Adelie", "Chinstrap", "Gentoo"],
}
STATISTICS = {
    "bill_length_mm": {"min": 32.1, "max": 59.6, "mean": 43.9, "std": 5.4, "missing_rate": 0.006},
    "island": {"categories": {"Biscoe": 0.49, "Dream": 0.36}, "missing_rate": 0.0},
}
ROW = {"island": "Biscoe", "sex": "male", "bill_length_mm": 39.1, "bill_depth_mm": 18.7,
       "flipper_length_mm": 181, "body_mass_g": 3750.0}


def rows(*changes, count=1):
    body = {"instances": [dict(ROW) for _ in range(count)]}
    for index, name, value in changes:
        if value is KeyError:
            del body["instances"][index][name]
        else:
            body["instances"][index][name] = value
    return body


def columns(**changes):
    body = {"inputs": {name: [value, value] for name, value in ROW.items()}}
    body["inputs"].update(changes)
    return body


def test_valid_rows_and_columns_are_accepted():
    checked = validate_predict_body(rows(count=3), SCHEMA, max_rows=10)
    assert (checked.format, checked.rows) == ("instances", 3)
    assert checked.columns["island"] == ["Biscoe"] * 3
    checked = validate_predict_body(columns(), SCHEMA, max_rows=10)
    assert (checked.format, checked.rows) == ("inputs", 2)
    assert checked.columns["body_mass_g"] == [3750.0, 3750.0]


def test_missing_tokens_are_accepted():
    body = json.loads('{"instances": [{"island": "", "sex": "", "bill_length_mm": NaN, '
                      '"bill_depth_mm": NaN, "flipper_length_mm": NaN, "body_mass_g": NaN}], '
                      '"signature_name": "serving_default"}')
    assert validate_predict_body(body, SCHEMA, max_rows=10).rows == 1


@pytest.mark.parametrize("body, field, words", [
    (rows((0, "island", "Atlantis")), "instances.0.island", "one of"),
    (rows((0, "island", KeyError)), "instances.0.island", "missing input"),
    (rows((0, "beak_colour", "red")), "instances.0.beak_colour", "unknown input"),
    (rows((1, "bill_length_mm", "long"), count=2), "instances.1.bill_length_mm", "must be a number"),
    (rows((0, "bill_length_mm", True)), "instances.0.bill_length_mm", "must be a number"),
    (rows((0, "bill_length_mm", [39.1])), "instances.0.bill_length_mm", "single value"),
    (rows((0, "bill_length_mm", float("inf"))), "instances.0.bill_length_mm", "finite"),
    (rows((0, "sex", 1)), "instances.0.sex", "must be a string"),
    (rows((0, "sex", None)), "instances.0.sex", "must be a string"),
    ({"instances": [ROW, "Biscoe"]}, "instances.1", "object keyed by input name"),
    ({"instances": {"island": "Biscoe"}}, "instances", "list of rows"),
    ({"instances": []}, "instances", "empty"),
    (columns(sex=["male"]), "inputs.sex", "has 1 rows"),
    (columns(island="Biscoe"), "inputs.island", "one entry per row"),
    (columns(island=["Biscoe", "Mars"]), "inputs.island.1", "one of"),
    ({"inputs": ["Biscoe"]}, "inputs", "object keyed by input name"),
    ({"instances": [ROW], "inputs": {}}, "body", "exactly one"),
    ({}, "body", "exactly one"),
    ({"instances": [ROW], "signature_name": "other"}, "signature_name", "serving_default"),
    ({"instances": [ROW], "extra": 1}, "extra", "unknown body field"),
    ([ROW], "body", "JSON object"),
])
def test_bad_bodies_get_400_naming_the_input(body, field, words):
    with pytest.raises(BadRequest) as caught:
        validate_predict_body(body, SCHEMA, max_rows=10)
    assert caught.value.status_code == 400
    assert caught.value.field == field
    assert words in caught.value.message


def test_unknown_category_lists_the_allowed_values():
    with pytest.raises(BadRequest) as caught:
        validate_predict_body(rows((0, "island", "Atlantis")), SCHEMA, max_rows=10)
    assert caught.value.details["allowed"] == ["Biscoe", "Dream", "Torgersen", ""]
    assert caught.value.to_dict()["error"]["code"] == "invalid_input"


def test_nan_is_refused_where_the_schema_has_no_missing_token():
    schema = copy.deepcopy(SCHEMA)
    del schema["inputs"]["body_mass_g"]["missing"]
    with pytest.raises(BadRequest, match="may not be NaN"):
        validate_predict_body(rows((0, "body_mass_g", float("nan"))), schema, max_rows=10)


def test_batch_limit():
    assert validate_predict_body(rows(count=5), SCHEMA, max_rows=5).rows == 5
    with pytest.raises(BadRequest) as caught:
        validate_predict_body(rows(count=6), SCHEMA, max_rows=5)
    assert caught.value.field == "instances" and caught.value.details == {"max_rows": 5}
    with pytest.raises(BadRequest, match="limit is 1"):
        validate_predict_body(columns(), SCHEMA, max_rows=1)


def test_shapes_dtypes_and_single_input_models():
    schema = {"inputs": {"x": {"dtype": "float32", "shape": [-1, 3]}}}
    assert validate_predict_body({"instances": [[1, 2, 3], [4, 5, 6]]}, schema, max_rows=5).rows == 2
    assert validate_predict_body({"inputs": [[1, 2, 3]]}, schema, max_rows=5).rows == 1
    with pytest.raises(BadRequest, match="3 elements"):
        validate_predict_body({"instances": [[1, 2]]}, schema, max_rows=5)
    schema = {"inputs": {"n": {"dtype": "int64", "shape": [-1]},
                         "flag": {"dtype": "bool", "shape": [-1]}}}
    assert validate_predict_body({"instances": [{"n": 3, "flag": True}]}, schema, max_rows=5)
    with pytest.raises(BadRequest, match="integer"):
        validate_predict_body({"instances": [{"n": 3.5, "flag": True}]}, schema, max_rows=5)
    with pytest.raises(BadRequest, match="true or false"):
        validate_predict_body({"instances": [{"n": 3, "flag": 1}]}, schema, max_rows=5)


def test_out_of_range_counts_numeric_and_unseen_categories_but_not_missing():
    body = {"inputs": {**{name: [1.0, 2.0, 3.0, 4.0] for name in NUMERIC},
                       "bill_length_mm": [10.0, 45.0, 80.0, float("nan")],
                       "island": ["Biscoe", "Torgersen", "", "Torgersen"],
                       "sex": ["male"] * 4}}
    checked = validate_predict_body(body, SCHEMA, max_rows=10)
    counts = out_of_range_counts(checked.columns, SCHEMA, STATISTICS)
    assert counts == {"bill_length_mm": 2, "island": 2}
    assert out_of_range_counts(checked.columns, SCHEMA, None) == {}


def test_a_base64_category_is_checked_like_the_plain_one():
    """TF Serving decodes {"b64": ...} into the string tensor: it may not bypass the categories."""
    import base64

    def b64(text):
        return {"b64": base64.b64encode(text).decode()}

    validate_predict_body(rows((0, "island", b64(b"Dream"))), SCHEMA, max_rows=10)
    with pytest.raises(BadRequest) as caught:
        validate_predict_body(rows((0, "island", b64(b"Atlantis"))), SCHEMA, max_rows=10)
    assert "must be one of" in caught.value.message and "Atlantis" in caught.value.message
    with pytest.raises(BadRequest, match="not valid base64"):
        validate_predict_body(rows((0, "island", {"b64": "not base64!"})), SCHEMA, max_rows=10)
    with pytest.raises(BadRequest, match="UTF-8"):
        validate_predict_body(rows((0, "island", b64(b"\xff\xfe"))), SCHEMA, max_rows=10)
    free_form = copy.deepcopy(SCHEMA)
    del free_form["inputs"]["island"]["categories"]
    validate_predict_body(rows((0, "island", b64(b"\xff\xfe"))), free_form, max_rows=10)  # binary is fine there
