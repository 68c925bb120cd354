"""Prediction payloads drawn from a model version's input schema and feature statistics.

The schema and statistics are data fetched from the registry (the export's
tfship_metadata.json), never imported from model/. Numeric inputs are drawn from a normal
distribution with the training mean and std, clipped to the training range; categorical
inputs follow the training frequencies; each input is missing at its training missing rate
(numeric: NaN, categorical: the schema's missing token).
"""
import json
import math

_NUMERIC_DTYPES = {"float32": float, "float64": float, "int32": int, "int64": int}


class SchemaError(ValueError):
    """The input schema cannot drive payloads (an unknown kind or dtype, no categories)."""


def draw_row(input_schema, feature_statistics, rng):
    """Return one instance: a value (or the missing token) for every input of the schema."""
    return {name: _draw(name, spec, feature_statistics.get(name, {}), rng)
            for name, spec in input_schema["inputs"].items()}


def draw_rows(input_schema, feature_statistics, batch_size, rng):
    """Return batch_size instances."""
    return [draw_row(input_schema, feature_statistics, rng) for _ in range(batch_size)]


def request_body(rows):
    """Serialise a TF Serving row-format body; missing numerics go out as the JSON token NaN."""
    return json.dumps({"instances": rows}, allow_nan=True)


def prediction_problem(body, rows, classes):
    """Return what is wrong with a row-format answer to `rows`, or None when it is well formed."""
    predictions = body.get("predictions") if isinstance(body, dict) else None
    if not isinstance(predictions, list):
        return "the answer has no 'predictions' list"
    if len(predictions) != len(rows):
        return f"{len(predictions)} predictions for {len(rows)} instances"
    for index, prediction in enumerate(predictions):
        if not isinstance(prediction, dict):
            return f"prediction {index} is not an object"
        probabilities = prediction.get("probabilities")
        if classes and (not isinstance(probabilities, list) or len(probabilities) != len(classes)):
            return f"prediction {index}: expected {len(classes)} probabilities"
        if probabilities and abs(sum(probabilities) - 1) > 1e-3:
            return f"prediction {index}: probabilities sum to {sum(probabilities):.4f}"
        if classes and prediction.get("class_name") not in classes:
            return f"prediction {index}: class_name {prediction.get('class_name')!r} is not one of {classes}"
    return None


def _draw(name, spec, stats, rng):
    kind = spec.get("kind")
    if rng.random() < float(stats.get("missing_rate", 0.0)):
        return math.nan if kind == "numeric" else spec.get("missing", "")
    if kind == "categorical":
        return _draw_category(name, spec, stats, rng)
    if kind == "numeric":
        return _draw_number(name, spec, stats, rng)
    raise SchemaError(f"input {name!r}: unknown kind {kind!r} (expected numeric or categorical)")


def _draw_category(name, spec, stats, rng):
    categories = list(spec.get("categories") or [])
    if not categories:
        raise SchemaError(f"input {name!r}: a categorical input needs its categories")
    frequencies = stats.get("categories") or {}
    weights = [float(frequencies.get(category, 0.0)) for category in categories]
    if sum(weights) <= 0:
        weights = [1.0] * len(categories)
    return rng.choices(categories, weights=weights)[0]


def _draw_number(name, spec, stats, rng):
    cast = _NUMERIC_DTYPES.get(spec.get("dtype"))
    if cast is None:
        raise SchemaError(f"input {name!r}: dtype {spec.get('dtype')!r} is not numeric")
    low, high = float(stats.get("min", 0.0)), float(stats.get("max", 1.0))
    mean = float(stats.get("mean", (low + high) / 2))
    value = min(max(rng.gauss(mean, float(stats.get("std", (high - low) / 4))), low), high)
    return round(value, 2) if cast is float else int(round(value))
