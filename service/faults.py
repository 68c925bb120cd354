"""Inject faults into predictions on purpose, for the load-test gate; off by default.

FAULT_LATENCY_MS adds latency to every prediction before it is forwarded; FAULT_ERROR_RATE
answers that fraction of predictions with 503 ``injected_fault`` (a JSON error with
Retry-After, never a traceback) instead of forwarding them. Only the gateway's routes are
affected, and only after authentication and rate limiting, so the load test sees exactly what
a caller would during a model-server slowdown or partial outage. Never set them in production.
"""
import random
import time

from flask import request

from service.errors import ServiceUnavailable
from service.settings import Setting

GATEWAY_BLUEPRINT = "gateway"
SETTINGS = (
    Setting("FAULT_LATENCY_MS", 0, "Testing only: milliseconds added to every prediction before "
            "it is forwarded (0: off)."),
    Setting("FAULT_ERROR_RATE", 0.0, "Testing only: fraction (0..1) of predictions answered 503 "
            "'injected_fault' instead of being forwarded (0: off)."),
)


def check_settings(config):
    """Return (latency in seconds, error rate), refusing values outside their range."""
    latency_ms, rate = float(config["FAULT_LATENCY_MS"]), float(config["FAULT_ERROR_RATE"])
    if latency_ms < 0:
        raise ValueError(f"FAULT_LATENCY_MS must be >= 0, not {latency_ms}")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"FAULT_ERROR_RATE must be within 0..1, not {rate}")
    return latency_ms / 1000.0, rate


def init_app(app):
    """Register the injector on the gateway's endpoints when a fault is configured."""
    latency_s, rate = check_settings(app.config)
    if not latency_s and not rate:
        return
    app.logger.warning("fault injection is ON for predictions: latency %s ms, error rate %s",
                       app.config["FAULT_LATENCY_MS"], rate)
    chance = random.Random()

    def inject_fault():
        if request.blueprint != GATEWAY_BLUEPRINT:
            return
        if latency_s:
            time.sleep(latency_s)
        if rate and chance.random() < rate:
            raise ServiceUnavailable("injected fault: this prediction failed on purpose "
                                     "(TFSHIP_API_FAULT_ERROR_RATE)", code="injected_fault",
                                     retry_after=1)

    app.before_request(inject_fault)
