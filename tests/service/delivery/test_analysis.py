"""Judging a canary step from the gateway's metrics text. The exposition is produced by a real
prometheus_client registry with the gateway's metric names and labels. Budget: <1 s."""
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from service import metrics as gateway_metrics
from service.delivery import analysis

SLO_LOCAL = analysis.Thresholds.from_slo("local")


class Gateway:
    """Counters shaped exactly like service/metrics.py's, in a fresh registry."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.calls = Counter("tfship_upstream_requests_total", "", ("model", "version", "outcome"),
                             registry=self.registry)
        self.latency = Histogram("tfship_upstream_request_duration_seconds", "",
                                 ("model", "version", "outcome"), registry=self.registry,
                                 buckets=gateway_metrics.BUCKETS)
        self.rows = Counter("tfship_prediction_rows_total", "", ("model", "version"),
                            registry=self.registry)
        self.classes = Counter("tfship_predicted_class_total", "",
                               ("model", "version", "class_name"), registry=self.registry)
        self.out_of_range = Counter("tfship_input_out_of_range_total", "",
                                    ("model", "version", "feature"), registry=self.registry)

    def serve(self, version, n, seconds=0.003, outcome="ok", classes=("A", "B", "C"),
              out_of_range=0):
        for index in range(n):
            self.calls.labels("m", str(version), outcome).inc()
            self.latency.labels("m", str(version), outcome).observe(seconds)
            if outcome == "ok":
                self.rows.labels("m", str(version)).inc()
                self.classes.labels("m", str(version), classes[index % len(classes)]).inc()
        if out_of_range:
            self.out_of_range.labels("m", str(version), "x").inc(out_of_range)

    def text(self):
        return generate_latest(self.registry).decode()


def step(change):
    gateway = Gateway()
    gateway.serve(1, 100)  # before the step: only the window's increase counts
    before = analysis.parse(gateway.text())
    gateway.serve(1, 120)
    change(gateway)
    measured = analysis.measure(before, analysis.parse(gateway.text()), "m", 1, 2)
    return measured, analysis.judge(measured, SLO_LOCAL)


def test_a_good_canary_passes():
    measured, reasons = step(lambda g: g.serve(2, 60))
    assert reasons == []
    assert measured["stable"]["calls"] == 120 and measured["canary"]["calls"] == 60
    assert measured["psi"] < 0.01
    assert measured["canary"]["p95_seconds"] == 0.005


@pytest.mark.parametrize("change, words", [
    (lambda g: (g.serve(2, 57), g.serve(2, 3, outcome="server_error")), "error ratio 0.050"),
    (lambda g: g.serve(2, 60, seconds=0.4), "p95 latency 0.5 s"),
    (lambda g: g.serve(2, 60, classes=("C",)), "predicted classes differ"),
    (lambda g: g.serve(2, 60, out_of_range=30), "out-of-range input rate 0.500"),
])
def test_a_bad_canary_fails_with_the_reason(change, words):
    _, reasons = step(change)
    assert len(reasons) == 1 and words in reasons[0], reasons


def test_too_few_canary_calls_judge_only_errors():
    _, reasons = step(lambda g: g.serve(2, 5, classes=("C",), seconds=2.0))
    assert reasons == []
    _, reasons = step(lambda g: g.serve(2, 5, outcome="client_error"))
    assert reasons and "error ratio 1.000" in reasons[0]


def test_the_slo_gate_gives_the_thresholds():
    assert (SLO_LOCAL.max_error_ratio, SLO_LOCAL.max_p95_seconds) == (0.01, 0.1)


def test_psi_is_zero_for_equal_and_large_for_disjoint_distributions():
    assert analysis.psi({"a": 50, "b": 50}, {"a": 5, "b": 5}) == pytest.approx(0.0)
    assert analysis.psi({"a": 100}, {"b": 100}) > 5


def test_few_stable_rows_are_compared_against_the_baseline_or_not_judged():
    """At a high canary weight stable serves a handful of rows: a PSI over them is noise."""
    def snapshot(stable_rows, canary_rows):
        text = "".join(
            f'tfship_predicted_class_total{{model="m",version="{version}",class_name="{name}"}} {count}\n'
            for version, rows in (("1", stable_rows), ("2", canary_rows)) for name, count in rows.items())
        return analysis.parse(text)

    before = snapshot({"Adelie": 0, "Gentoo": 0}, {"Adelie": 0, "Gentoo": 0})
    after = snapshot({"Adelie": 3, "Gentoo": 0}, {"Adelie": 50, "Gentoo": 50})
    alone = analysis.measure(before, after, "m", 1, 2, min_stable_rows=30)
    assert alone["psi"] is None and alone["psi_against"] is None
    baseline = {"Adelie": 60.0, "Gentoo": 40.0}
    carried = analysis.measure(before, after, "m", 1, 2, stable_baseline=baseline, min_stable_rows=30)
    assert carried["psi_against"] == "an earlier step"
    assert carried["psi"] == analysis.psi(baseline, {"Adelie": 50.0, "Gentoo": 50.0})
    judged_here = analysis.measure(before, after, "m", 1, 2)
    assert judged_here["psi_against"] == "this step" and judged_here["psi"] > 0.25
