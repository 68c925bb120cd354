"""Write ECS JSON logs on stderr: a request id on every line, one access line per request.

The request id comes from the caller's ``X-Request-ID`` (when it is a sane token) or is made
here; it is returned in the response, forwarded to the model server, and added to every log
line written during the request (``http.request.id``). The access line carries the route
template and the model and version that served it (``tfship.model``, ``tfship.version``).

Predictions (inputs and outputs) are logged for a sample of requests:
``PREDICTION_LOG_SAMPLE_RATE`` (0 to 1, default 0: off). Headers are never logged, and
anything shaped like an API key is redacted from every line, in every field (a key sent as
X-Request-ID is replaced by a new id).
"""
import logging
import math
import random
import re
import sys
import time
import uuid

import ecs_logging
from flask import current_app, g, has_request_context, request
from flask.logging import default_handler

from service.settings import Setting

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
API_KEY_PATTERN = re.compile(r"tfs_[0-9a-f]{12}_[A-Za-z0-9_\-]+")
ACCESS_LOGGER = "tfship.access"
PREDICTION_LOGGER = "tfship.predictions"
SETTINGS = (
    Setting("LOG_LEVEL", "INFO", "Level of the API's ECS JSON logs on stderr (DEBUG, INFO, "
            "WARNING, ERROR)."),
    Setting("PREDICTION_LOG_SAMPLE_RATE", 0.0, "Share of predictions (0 to 1) whose inputs and "
            "outputs are logged (tfship.predictions); 0 turns the sample off."),
)


def request_id():
    """Return this request's id, taking the caller's X-Request-ID or making one on first use."""
    if "tfship_request_id" not in g:
        given = request.headers.get(REQUEST_ID_HEADER, "")
        usable = REQUEST_ID_PATTERN.match(given) and not API_KEY_PATTERN.search(given)
        g.tfship_request_id = given if usable else uuid.uuid4().hex
    return g.tfship_request_id


class RequestContextFilter(logging.Filter):
    """Add the request id to every record written during a request; redact API keys."""

    def filter(self, record):
        if has_request_context():
            setattr(record, "http.request.id", request_id())
        message = record.getMessage()
        if API_KEY_PATTERN.search(message):
            record.msg, record.args = API_KEY_PATTERN.sub("tfs_[REDACTED]", message), None
        return True


class RedactingFormatter(ecs_logging.StdlibFormatter):
    """ECS JSON with anything shaped like an API key redacted from the whole line (every field:
    the path, the query, prediction samples, exception text), not only from the message."""

    def format(self, record):
        return API_KEY_PATTERN.sub("tfs_[REDACTED]", super().format(record))


def configure_logging(level="INFO", stream=None):
    """Send every logger's records through one ECS JSON handler on stderr (idempotent)."""
    root = logging.getLogger()
    for handler in root.handlers:
        if getattr(handler, "tfship_ecs", False):
            if stream is not None:
                handler.setStream(stream)
            break
    else:
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.tfship_ecs = True
        handler.setFormatter(RedactingFormatter(exclude_fields=["log.original"]))
        handler.addFilter(RequestContextFilter())
        root.addHandler(handler)
    root.setLevel(level)
    return handler


def _start_request():
    g.tfship_log_started = time.perf_counter()
    request_id()


def _finish_request(response):
    response.headers[REQUEST_ID_HEADER] = request_id()
    started = g.get("tfship_log_started", time.perf_counter())
    route = request.url_rule.rule if request.url_rule is not None else ""
    logging.getLogger(ACCESS_LOGGER).info(
        "%s %s %s", request.method, request.path, response.status_code,
        extra={
            "event.dataset": "tfship.access",
            "event.duration": int((time.perf_counter() - started) * 1e9),
            "http.request.method": request.method,
            "http.response.status_code": response.status_code,
            "url.path": request.path,
            "client.ip": request.remote_addr,
            "tfship.route": route,
            "tfship.model": g.get("tfship_metric_model", ""),
            "tfship.version": g.get("tfship_metric_version", ""),
        })
    return response


def _json_safe(value):
    """Return value with NaN and infinities as None, so the log line stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


def log_prediction_sample(model, version, inputs, outputs, *, rate=None, chance=random.random):
    """Log the inputs and outputs of this prediction for a PREDICTION_LOG_SAMPLE_RATE sample."""
    if rate is None:
        rate = float(current_app.config.get("PREDICTION_LOG_SAMPLE_RATE", 0.0))
    if rate <= 0 or chance() >= rate:
        return False
    logging.getLogger(PREDICTION_LOGGER).info(
        "prediction sample", extra={
            "event.dataset": "tfship.predictions",
            "tfship.model": model, "tfship.version": str(version),
            "tfship.prediction.inputs": _json_safe(inputs),
            "tfship.prediction.outputs": _json_safe(outputs),
        })
    return True


def init_app(app):
    """Log in ECS JSON on stderr and give every request an id and an access line."""
    for setting in SETTINGS:
        app.config.setdefault(setting.name, setting.default)
    configure_logging(str(app.config["LOG_LEVEL"]).upper())
    app.logger.removeHandler(default_handler)
    app.before_request(_start_request)
    app.after_request(_finish_request)
