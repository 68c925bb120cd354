"""Declare every metric the API exports, record them per request, and serve them at /metrics.

Correct across gunicorn workers through prometheus-client's multiprocess mode: set
``PROMETHEUS_MULTIPROC_DIR`` to an empty, writable folder in the environment *before* this
module (or anything importing prometheus_client) is imported, e.g. at the top of
gunicorn.conf.py; call :func:`clear_multiprocess_dir` from gunicorn's ``on_starting`` and use
:func:`child_exit` as gunicorn's ``child_exit`` hook. Without the variable (``flask run``,
tests) the metrics live in this process's default registry.

The names and labels are a contract with monitoring/ (rules, dashboards) and load tests:
monitoring/metrics.py lists them and a test checks both agree.
"""
import os
import time

from flask import Response, g, request
from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge,
                               Histogram, generate_latest, multiprocess)

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
SYNTHETIC_HEADER = "X-Tfship-Synthetic"
UNMATCHED_ROUTE = "unmatched"
DATABASE, MODEL_SERVER = "database", "model_server"

HTTP_REQUESTS = Counter(
    "tfship_http_requests_total", "HTTP requests answered, by route template and model version.",
    ("route", "method", "code", "model", "version", "synthetic"))
HTTP_DURATION = Histogram(
    "tfship_http_request_duration_seconds", "Time to answer an HTTP request.",
    ("route", "method", "model", "version", "synthetic"), buckets=BUCKETS)
HTTP_IN_FLIGHT = Gauge(
    "tfship_http_requests_in_flight", "HTTP requests being answered now.", ("route",),
    multiprocess_mode="livesum")
UPSTREAM_DURATION = Histogram(
    "tfship_upstream_request_duration_seconds", "Time of a model-server call, retries included.",
    ("model", "version", "outcome"), buckets=BUCKETS)
UPSTREAM_REQUESTS = Counter(
    "tfship_upstream_requests_total", "Model-server calls by outcome: ok, client_error, "
    "server_error, timeout, unavailable, circuit_open, rejected.", ("model", "version", "outcome"))
PREDICTION_ROWS = Counter(
    "tfship_prediction_rows_total", "Rows predicted.", ("model", "version"))
PREDICTED_CLASS = Counter(
    "tfship_predicted_class_total", "Predicted classes, one per row.",
    ("model", "version", "class_name"))
INPUT_OUT_OF_RANGE = Counter(
    "tfship_input_out_of_range_total", "Input values outside the version's training data "
    "(numeric outside [min, max], unseen category).", ("model", "version", "feature"))
CANARY_FALLBACKS = Counter(
    "tfship_canary_fallbacks_total", "Canary predictions that failed and were retried on stable "
    "(version: the canary's; reason: the canary call's outcome).", ("model", "version", "reason"))
MODEL_VERSIONS_AVAILABLE = Gauge(
    "tfship_model_versions_available", "Versions of the model the model server reports AVAILABLE.",
    ("model",), multiprocess_mode="livemax")
SHADOW_REQUESTS = Counter(
    "tfship_shadow_requests_total", "Predictions mirrored to the shadow version (version: the "
    "shadow's), by outcome: ok or the failed call's upstream outcome.", ("model", "version", "outcome"))
SHADOW_ROWS = Counter(
    "tfship_shadow_rows_total", "Rows of mirrored predictions whose shadow predicted class agrees "
    "or disagrees with stable's.", ("model", "version", "agreement"))
SHADOW_LATENCY = Histogram(
    "tfship_shadow_latency_seconds", "Upstream time of a mirrored prediction: stable's (role "
    "primary) and the shadow's (role shadow).", ("model", "version", "role"), buckets=BUCKETS)
SHADOW_DROPPED = Counter(
    "tfship_shadow_dropped_total", "Predictions not mirrored because the worker's shadow queue "
    "was full.", ("model", "version"))
DEPENDENCY_UP = Gauge(
    "tfship_dependency_up", "Whether a dependency answered its last check (1) or not (0).",
    ("dependency",), multiprocess_mode="livemostrecent")


_children = {}  # (metric, label values) -> child: .labels() validates and locks on every call


def _child(metric, *values):
    """Return metric.labels(*values), cached per label tuple (children live as long as metrics)."""
    key = (metric, values)
    child = _children.get(key)
    if child is None:
        child = metric.labels(*values)
        if all(type(value) is str for value in values):  # 1, 1.0 and True hash alike
            _children[key] = child
    return child


def label_request(model, version):
    """Attach the model and the version that served it to this request's HTTP metrics."""
    globals_ = g._get_current_object()
    globals_.tfship_metric_model = model or ""
    globals_.tfship_metric_version = "" if version is None else str(version)


def observe_upstream(model, version, outcome, seconds):
    """Record one model-server call (the upstream client's on_outcome hook)."""
    version = "" if version is None else str(version)
    _child(UPSTREAM_REQUESTS, model, version, outcome).inc()
    _child(UPSTREAM_DURATION, model, version, outcome).observe(seconds)


def count_predictions(model, version, rows, class_names):
    """Record rows predicted and each row's predicted class name."""
    version = str(version)
    _child(PREDICTION_ROWS, model, version).inc(rows)
    for class_name, count in class_names.items():
        _child(PREDICTED_CLASS, model, version, class_name).inc(count)


def count_out_of_range(model, version, counts):
    """Record, per feature, the values outside the training data."""
    for feature, count in counts.items():
        _child(INPUT_OUT_OF_RANGE, model, str(version), feature).inc(count)


def count_canary_fallback(model, canary_version, reason):
    """Record one failed canary call retried on stable."""
    _child(CANARY_FALLBACKS, model, str(canary_version), str(reason)).inc()


def count_shadow_request(model, shadow_version, outcome):
    """Record one mirrored prediction sent to the shadow version."""
    _child(SHADOW_REQUESTS, model, str(shadow_version), outcome).inc()


def count_shadow_rows(model, shadow_version, agreed, disagreed):
    """Record the rows of one mirrored prediction that agree and disagree with stable."""
    version = str(shadow_version)
    _child(SHADOW_ROWS, model, version, "agree").inc(agreed)
    _child(SHADOW_ROWS, model, version, "disagree").inc(disagreed)


def observe_shadow_latency(model, shadow_version, primary_seconds, shadow_seconds):
    """Record stable's and the shadow's upstream time of one mirrored prediction."""
    version = str(shadow_version)
    _child(SHADOW_LATENCY, model, version, "primary").observe(primary_seconds)
    _child(SHADOW_LATENCY, model, version, "shadow").observe(shadow_seconds)


def count_shadow_dropped(model, shadow_version, count=1):
    """Record predictions not mirrored: the shadow queue (or the sender's socket) was full."""
    _child(SHADOW_DROPPED, model, str(shadow_version)).inc(count)


def set_versions_available(model, count):
    """Record how many versions of model the model server reports AVAILABLE."""
    _child(MODEL_VERSIONS_AVAILABLE, model).set(count)


def set_dependency_up(dependency, up):
    """Record a dependency check: database or model_server."""
    _child(DEPENDENCY_UP, dependency).set(1 if up else 0)


# The hooks below run on every request: they look the request and g up once (each access
# through Flask's proxies costs a context-variable lookup).
def _route(req):
    return req.url_rule.rule if req.url_rule is not None else UNMATCHED_ROUTE


def _start_request():
    globals_ = g._get_current_object()
    globals_.tfship_metric_started = time.perf_counter()
    route = globals_.tfship_metric_route = _route(request._get_current_object())
    _child(HTTP_IN_FLIGHT, route).inc()


def _record_response(response):
    globals_ = g._get_current_object()
    started = globals_.get("tfship_metric_started")
    if started is None:
        return response
    req = request._get_current_object()
    model = globals_.get("tfship_metric_model", "")
    version = globals_.get("tfship_metric_version", "")
    synthetic = "true" if req.headers.get(SYNTHETIC_HEADER) == "1" else "false"
    route, method = globals_.tfship_metric_route, req.method
    _child(HTTP_REQUESTS, route, method, str(response.status_code), model, version, synthetic).inc()
    _child(HTTP_DURATION, route, method, model, version, synthetic).observe(
        time.perf_counter() - started)
    return response


def _finish_request(_exc):
    route = g.pop("tfship_metric_route", None)
    if route is not None:
        _child(HTTP_IN_FLIGHT, route).dec()


def exposition_registry():
    """Return the registry to expose: every worker's files in multiprocess mode, else this process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def metrics_view():
    """Serve the Prometheus text exposition (an open route)."""
    return Response(generate_latest(exposition_registry()), mimetype=CONTENT_TYPE_LATEST)


def init_app(app):
    """Time and count every request, and add the open /metrics route."""
    app.before_request(_start_request)
    app.after_request(_record_response)
    app.teardown_request(_finish_request)
    app.add_url_rule("/metrics", "metrics", metrics_view, methods=["GET"])


def clear_multiprocess_dir(path=None):
    """Delete the metric files of earlier runs (gunicorn's on_starting hook)."""
    path = path or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        return
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))


def child_exit(_server, worker):
    """gunicorn's child_exit hook: drop a dead worker's live gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
