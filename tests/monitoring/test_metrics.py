"""monitoring/metrics.py, the allowlist for rules and dashboards, matches what the API really declares.

Budget: < 1 s. The TF Serving half is checked against TFSERVING.md's table by name in test_rules
(every rule and panel), and against the running local model server in the live proof.
"""
from prometheus_client import Counter, Gauge, Histogram

from monitoring import metrics


def _declared():
    from service import metrics as service_metrics
    found = {}
    for value in vars(service_metrics).values():
        if isinstance(value, (Counter, Gauge, Histogram)):
            kind = {Counter: metrics.COUNTER, Gauge: metrics.GAUGE, Histogram: metrics.HISTOGRAM}[type(value)]
            name = value._name + ("_total" if kind == metrics.COUNTER else "")
            found[name] = (kind, tuple(value._labelnames))
    return found, service_metrics


def test_api_catalogue_matches_the_api():
    declared, _ = _declared()
    assert declared == metrics.API


def test_buckets_match_the_api():
    _, service_metrics = _declared()
    assert tuple(service_metrics.BUCKETS) == metrics.API_BUCKETS


def test_tfserving_latency_buckets_are_10_times_1_8_to_the_k():
    buckets = metrics.TFSERVING_LATENCY_BUCKETS_US
    assert len(buckets) == 33 and buckets[0] == 10 and abs(buckets[3] - 58.32) < 1e-9


def test_series_names_expand_histograms():
    names = metrics.series_names()
    assert {"tfship_http_request_duration_seconds_bucket", ":tensorflow:serving:request_latency_count",
            ":tensorflow:serving:request_count", "up"} <= names
    assert "tfship_http_request_duration_seconds" not in names
