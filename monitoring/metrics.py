"""The metric names and labels that the processes really export: the allowlist for rules and dashboards.

Two sources only: TensorFlow Serving's own set (its servables/tensorflow/util.cc and
batching_session.cc; see ../shared/TFSERVING.md) and the gateway's (service/metrics.py).
A rule or dashboard that uses any other name would be silently empty against the real servers,
so the tests compare every selector against `series_names()`.
"""
API_JOB = "tfship-api"
MODEL_SERVER_JOB = "tfship-model-server"

# The gateway's histogram buckets, in seconds. SLO latency thresholds must be one of these.
API_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# TF Serving's latency buckets, in MICROseconds: 10 * 1.8^k, k = 0..32.
TFSERVING_LATENCY_BUCKETS_US = tuple(10 * 1.8 ** k for k in range(33))

COUNTER, GAUGE, HISTOGRAM = "counter", "gauge", "histogram"

API = {
    "tfship_http_requests_total": (COUNTER, ("route", "method", "code", "model", "version", "synthetic")),
    "tfship_http_request_duration_seconds": (HISTOGRAM, ("route", "method", "model", "version", "synthetic")),
    "tfship_http_requests_in_flight": (GAUGE, ("route",)),
    "tfship_upstream_request_duration_seconds": (HISTOGRAM, ("model", "version", "outcome")),
    "tfship_upstream_requests_total": (COUNTER, ("model", "version", "outcome")),
    "tfship_prediction_rows_total": (COUNTER, ("model", "version")),
    "tfship_predicted_class_total": (COUNTER, ("model", "version", "class_name")),
    "tfship_input_out_of_range_total": (COUNTER, ("model", "version", "feature")),
    "tfship_canary_fallbacks_total": (COUNTER, ("model", "version", "reason")),
    "tfship_model_versions_available": (GAUGE, ("model",)),
    "tfship_shadow_requests_total": (COUNTER, ("model", "version", "outcome")),
    "tfship_shadow_rows_total": (COUNTER, ("model", "version", "agreement")),
    "tfship_shadow_latency_seconds": (HISTOGRAM, ("model", "version", "role")),
    "tfship_shadow_dropped_total": (COUNTER, ("model", "version")),
    "tfship_dependency_up": (GAUGE, ("dependency",)),
}
UPSTREAM_OUTCOMES = ("ok", "client_error", "server_error", "timeout", "unavailable", "circuit_open", "rejected")

TFSERVING = {
    ":tensorflow:serving:request_count": (COUNTER, ("model_name", "status")),
    ":tensorflow:serving:request_latency": (HISTOGRAM, ("model_name", "API", "entrypoint")),
    ":tensorflow:serving:runtime_latency": (HISTOGRAM, ("model_name", "API", "runtime")),
    ":tensorflow:serving:request_example_counts": (HISTOGRAM, ("model",)),
    ":tensorflow:serving:request_example_count_total": (COUNTER, ("model",)),
    ":tensorflow:serving:batching_session:queuing_latency": (HISTOGRAM, ("thread_pool_name",)),
    ":tensorflow:serving:batching_session:wrapped_run_count": (COUNTER, ()),
}

# Series that Prometheus itself writes for every target and for alerts.
PROMETHEUS = {
    "up": (GAUGE, ("job", "instance")),
    "scrape_duration_seconds": (GAUGE, ("job", "instance")),
    "ALERTS": (GAUGE, ("alertname", "alertstate")),
    "ALERTS_FOR_STATE": (GAUGE, ("alertname",)),
}


def series_names(catalogues=(API, TFSERVING, PROMETHEUS)):
    """Every series name the catalogues export: a histogram exports _bucket, _sum and _count."""
    names = set()
    for catalogue in catalogues:
        for name, (kind, _labels) in catalogue.items():
            if kind == HISTOGRAM:
                names.update(f"{name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
            else:
                names.add(name)
    return names
