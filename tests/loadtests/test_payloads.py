"""Payloads drawn from the export's schema and statistics, and the check of prediction answers. Budget: < 1 s."""
import json
import math
import random
from pathlib import Path

import pytest

from loadtests import payloads

METADATA = json.loads(Path(__file__).with_name("penguins_metadata.json").read_text())
SCHEMA, STATISTICS = METADATA["input_schema"], METADATA["feature_statistics"]


def test_rows_follow_the_schema_and_the_training_ranges():
    rows = payloads.draw_rows(SCHEMA, STATISTICS, 500, random.Random(7))
    assert len(rows) == 500
    for row in rows:
        assert set(row) == set(SCHEMA["inputs"])
        for name, spec in SCHEMA["inputs"].items():
            value = row[name]
            if spec["kind"] == "categorical":
                assert value in spec["categories"] + [spec["missing"]]
            elif not math.isnan(value):
                assert STATISTICS[name]["min"] <= value <= STATISTICS[name]["max"]


def test_categories_follow_the_training_frequencies_and_missing_values_their_rate():
    statistics = dict(STATISTICS, bill_length_mm=dict(STATISTICS["bill_length_mm"], missing_rate=0.5))
    rows = payloads.draw_rows(SCHEMA, statistics, 2000, random.Random(1))
    missing = sum(math.isnan(r["bill_length_mm"]) for r in rows) / len(rows)
    biscoe = sum(r["island"] == "Biscoe" for r in rows) / len(rows)
    assert 0.45 < missing < 0.55
    assert abs(biscoe - STATISTICS["island"]["categories"]["Biscoe"]) < 0.05


def test_the_body_is_tf_serving_row_format_with_the_nan_token():
    body = payloads.request_body([{"island": "", "bill_length_mm": math.nan}])
    assert body == '{"instances": [{"island": "", "bill_length_mm": NaN}]}'


def test_a_schema_without_categories_is_refused():
    schema = {"inputs": {"island": {"dtype": "string", "shape": [-1], "kind": "categorical"}}}
    with pytest.raises(payloads.SchemaError, match="island"):
        payloads.draw_row(schema, {}, random.Random(0))


GOOD = {"probabilities": [0.7, 0.2, 0.1], "class_id": 0, "class_name": "Adelie"}


@pytest.mark.parametrize("body, problem", [
    ({"predictions": [GOOD, GOOD]}, None),
    ({"outputs": []}, "no 'predictions' list"),
    ({"predictions": [GOOD]}, "1 predictions for 2 instances"),
    ({"predictions": [GOOD, dict(GOOD, probabilities=[0.5, 0.5])]}, "prediction 1: expected 3 probabilities"),
    ({"predictions": [GOOD, dict(GOOD, probabilities=[0.5, 0.5, 0.5])]}, "sum to 1.5000"),
    ({"predictions": [GOOD, dict(GOOD, class_name="Emperor")]}, "'Emperor' is not one of"),
])
def test_prediction_answers_are_checked(body, problem):
    found = payloads.prediction_problem(body, [{}, {}], SCHEMA["classes"])
    assert found == problem if problem is None else problem in found
