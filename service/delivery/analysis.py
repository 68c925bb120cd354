"""Judge a canary step from the gateway's own metrics: errors, latency, predictions, inputs.

TF Serving's metrics carry no version, so everything per version comes from the gateways'
/metrics (summed over every gateway given). A step is judged on the counters' increase over
the step, canary against stable:

- error ratio of the canary's model-server calls (a failed call is retried on stable, so
  callers never see it; it still counts against the canary) within the SLO gate's ratio;
- the canary's p95 call latency (a histogram bucket bound) within the SLO gate's p95;
- the canary's predicted-class distribution against stable's, by the population stability
  index (PSI): a version that answers 200 with wrong predictions shifts it;
- the canary's rate of out-of-range input values no more than stable's plus a margin.

Too few canary calls to judge the distributions is reported, not failed.
"""
import math
from collections import defaultdict
from dataclasses import dataclass

import requests
from prometheus_client.parser import text_string_to_metric_families

TIMEOUT_S = (2.0, 10.0)
MIN_LATENCY_CALLS = 10  # fewer successful canary calls give no meaningful p95
CALLS = "tfship_upstream_requests_total"
CALL_LATENCY = "tfship_upstream_request_duration_seconds_bucket"
CLASSES = "tfship_predicted_class_total"
ROWS = "tfship_prediction_rows_total"
OUT_OF_RANGE = "tfship_input_out_of_range_total"
WANTED = {CALLS, CALL_LATENCY, CLASSES, ROWS, OUT_OF_RANGE}


@dataclass(frozen=True)
class Thresholds:
    """What a canary step must meet."""

    max_error_ratio: float = 0.01
    max_p95_seconds: float = 0.1
    max_psi: float = 0.25
    max_out_of_range_increase: float = 0.05
    min_calls: int = 30

    @classmethod
    def from_slo(cls, profile, **overrides):
        """Take the error ratio and p95 from the SLO gate of profile (monitoring/slo.yaml)."""
        from monitoring import slo
        gate = slo.load(profile).gate
        return cls(max_error_ratio=gate.max_error_ratio, max_p95_seconds=gate.p95_seconds,
                   **overrides)


class MetricsUnavailable(RuntimeError):
    """A gateway's /metrics could not be read."""


def parse(text):
    """Return {(sample name, sorted label items): value} for the samples analysis reads."""
    samples = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in WANTED:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] += sample.value
    return samples


def snapshot(urls):
    """Return the summed samples of every gateway's /metrics."""
    total = defaultdict(float)
    for url in urls:
        try:
            answer = requests.get(url, timeout=TIMEOUT_S)
            answer.raise_for_status()
        except requests.RequestException as error:
            raise MetricsUnavailable(f"{url}: {type(error).__name__}") from None
        for key, value in parse(answer.text).items():
            total[key] += value
    return total


def _increase(before, after):
    # A counter that went down was reset (a restarted worker): count from zero.
    return {key: value - before.get(key, 0.0) if value >= before.get(key, 0.0) else value
            for key, value in after.items()}


def _select(window, name, model, version, **labels):
    for (sample, items), value in window.items():
        found = dict(items)
        if (sample == name and found.get("model") == model and found.get("version") == str(version)
                and all(found.get(k) == v for k, v in labels.items())):
            yield found, value


def psi(expected, actual):
    """Population stability index of two count dicts (additive smoothing for empty classes)."""
    keys = set(expected) | set(actual)
    if not keys:
        return 0.0
    e_total = sum(expected.values()) + 0.5 * len(keys)
    a_total = sum(actual.values()) + 0.5 * len(keys)
    value = 0.0
    for key in keys:
        e = (expected.get(key, 0.0) + 0.5) / e_total
        a = (actual.get(key, 0.0) + 0.5) / a_total
        value += (a - e) * math.log(a / e)
    return value


def _p95(window, model, version):
    buckets = sorted(((float(labels["le"]), value) for labels, value in
                      _select(window, CALL_LATENCY, model, version, outcome="ok")),
                     key=lambda item: item[0])
    merged = defaultdict(float)
    for bound, value in buckets:
        merged[bound] += value
    if not merged or merged[max(merged)] <= 0:
        return None
    total = merged[max(merged)]
    return next(bound for bound in sorted(merged) if merged[bound] >= 0.95 * total)


def measure(before, after, model, stable, canary, stable_baseline=None, min_stable_rows=0):
    """Return the step's measurements per version (plain data, kept in the rollout history).

    The canary's classes are compared (PSI) with stable's from this step when stable served at
    least min_stable_rows rows in it. At a high canary weight stable serves few rows, and a PSI
    over a handful of rows is noise: then stable_baseline (stable's classes from an earlier step
    of the same rollout) stands in, and ``psi_against`` says so; with neither, ``psi`` is None
    and the classes are not judged at this step.
    """
    window = _increase(before, after)
    result = {}
    for role, version in (("stable", stable), ("canary", canary)):
        calls = sum(v for _, v in _select(window, CALLS, model, version))
        failed = sum(v for labels, v in _select(window, CALLS, model, version)
                     if labels.get("outcome") != "ok")
        rows = sum(v for _, v in _select(window, ROWS, model, version))
        out_of_range = sum(v for _, v in _select(window, OUT_OF_RANGE, model, version))
        classes = defaultdict(float)
        for labels, value in _select(window, CLASSES, model, version):
            classes[labels["class_name"]] += value
        result[role] = {"version": version, "calls": calls, "failed_calls": failed,
                        "error_ratio": failed / calls if calls else 0.0,
                        "p95_seconds": _p95(window, model, version), "rows": rows,
                        "out_of_range_rate": out_of_range / rows if rows else 0.0,
                        "classes": dict(classes)}
    expected, result["psi_against"] = result["stable"]["classes"], "this step"
    if result["stable"]["rows"] < min_stable_rows:
        expected, result["psi_against"] = (stable_baseline, "an earlier step") if stable_baseline \
            else (None, None)
    result["psi"] = psi(expected, result["canary"]["classes"]) if expected else None
    return result


def judge(measurements, thresholds):
    """Return the reasons the canary fails the step (empty: it passes)."""
    canary, stable = measurements["canary"], measurements["stable"]
    reasons = []
    if canary["calls"] and canary["error_ratio"] > thresholds.max_error_ratio:
        reasons.append(f"canary error ratio {canary['error_ratio']:.3f} > "
                       f"{thresholds.max_error_ratio:g}")
    if (canary["p95_seconds"] is not None and canary["calls"] - canary["failed_calls"]
            >= MIN_LATENCY_CALLS and canary["p95_seconds"] > thresholds.max_p95_seconds):
        reasons.append(f"canary p95 latency {canary['p95_seconds']:g} s > "
                       f"{thresholds.max_p95_seconds:g} s")
    if canary["calls"] - canary["failed_calls"] >= thresholds.min_calls and stable["rows"]:
        if measurements.get("psi") is not None and measurements["psi"] > thresholds.max_psi:
            reasons.append(f"predicted classes differ from stable's: PSI "
                           f"{measurements['psi']:.2f} > {thresholds.max_psi:g}")
        increase = canary["out_of_range_rate"] - stable["out_of_range_rate"]
        if increase > thresholds.max_out_of_range_increase:
            reasons.append(f"canary out-of-range input rate {canary['out_of_range_rate']:.3f} "
                           "exceeds stable's by more than "
                           f"{thresholds.max_out_of_range_increase:g}")
    return reasons
