"""Input-schema compatibility between the stable version and a candidate. Budget: <1 s."""
import copy

import pytest

from service.delivery.compatibility import breaking_changes
from tests.service.conftest import PENGUIN_INPUT_SCHEMA


def changed(change):
    schema = copy.deepcopy(PENGUIN_INPUT_SCHEMA)
    change(schema["inputs"])
    return schema


def test_the_same_schema_and_a_new_category_are_compatible():
    assert breaking_changes(PENGUIN_INPUT_SCHEMA, PENGUIN_INPUT_SCHEMA) == []
    more = changed(lambda i: i["island"]["categories"].append("Anvers"))
    assert breaking_changes(PENGUIN_INPUT_SCHEMA, more) == []


@pytest.mark.parametrize("change, words", [
    (lambda i: i.pop("sex"), "'sex' was removed"),
    (lambda i: i.update(age={"dtype": "float32", "shape": [-1], "kind": "numeric"}),
     "'age' was added"),
    (lambda i: i["body_mass_g"].update(dtype="float64"), "dtype changed"),
    (lambda i: i["body_mass_g"].update(shape=[-1, 2]), "shape changed"),
    (lambda i: i["island"]["categories"].remove("Dream"), "categories removed: ['Dream']"),
])
def test_breaking_changes_are_named(change, words):
    problems = breaking_changes(PENGUIN_INPUT_SCHEMA, changed(change))
    assert len(problems) == 1 and words in problems[0], problems
