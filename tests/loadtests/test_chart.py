"""The report's latency chart. Budget: < 1 s."""
from loadtests import chart


def test_per_second_percentiles():
    rows = chart.per_second({1: [float(v) for v in range(1, 101)], 0: [5.0]})
    assert rows == [(0, 5.0, 5.0, 5.0, 1), (1, 50.0, 95.0, 99.0, 100)]


def test_the_chart_draws_each_percentile_and_each_objective():
    svg = str(chart.latency_svg([(0, 10, 20, 30, 5), (1, 12, 25, 40, 5)], {"p95": 100.0, "p99": 250.0}))
    assert svg.startswith("<svg") and svg.count("<polyline") == 3
    assert "p95 objective" in svg and "p99 objective" in svg and "275 ms" in svg


def test_no_predictions_say_so():
    assert "No predictions" in chart.latency_svg([], {"p95": 100.0})
