"""Rate-limit every authenticated call per API key (Flask-Limiter), with 429 and Retry-After.

The limit is an application-wide budget per key: every route a key calls draws on it, and the
counter is keyed by the key's non-secret prefix, so the secret never reaches the store. Open
routes (/healthz, /readyz, /metrics, the API documentation) are not limited: probes and
scrapers must never get 429. The limiter runs after authentication, so a made-up key gets its
401 without touching the store.

Scope of the counters: ``memory://`` (the local default) keeps them in each gunicorn worker
process, so a key may make up to WORKERS times the limit on one host and the count restarts
with the worker; ``redis://host:6379`` (the cluster: the Pulumi stack provisions Redis and sets
TFSHIP_API_RATELIMIT_STORAGE_URI) shares them across every worker of every pod. If the store is
unreachable the limiter fails open (logs and serves) rather than turning an outage of Redis
into an outage of the API.
"""
import threading
import time
from urllib.parse import urlsplit

from flask import current_app, g
from flask_limiter import Limiter, RateLimitExceeded
from limits.storage import MemoryStorage

from service.errors import TooManyRequests, render
from service.settings import Setting

EXTENSION = "tfship_limiter"

SETTINGS = (
    Setting("RATELIMIT_PER_KEY", "20000 per minute;1000 per second", "Requests one API key may "
            "make, over all routes together (Flask-Limiter notation, ';' between limits). "
            "Exceeding it gets 429 with Retry-After."),
    Setting("RATELIMIT_STORAGE_URI", "memory://", "Where the counters live: memory:// counts per "
            "gunicorn worker process (a key may reach WORKERS x the limit per host); "
            "redis://host:6379/0 shares them across workers and pods (the cluster's setting)."),
    Setting("RATELIMIT_STRATEGY", "fixed-window", "Flask-Limiter strategy: fixed-window, "
            "moving-window or sliding-window-counter."),
    Setting("RATELIMIT_ENABLED", True, "Switch rate limiting off (false) for benchmarks only."),
)


class InlineExpiryMemoryStorage(MemoryStorage):
    """limits' memory storage without a thread per request.

    Its counters already expire when read; a background sweep only forgets keys no longer
    used. limits 5.8 starts that sweep as a new ``threading.Timer`` (0.01 s) on every hit
    when the last one has ended, so at rates below ~100 requests/s per worker each request
    started a thread (~0.1 ms of CPU). Here the sweep runs in the request's own thread, at
    most every SWEEP_INTERVAL_S seconds: the same counts and the same memory bound.
    """

    STORAGE_SCHEME = ["tfship-memory"]
    SWEEP_INTERVAL_S = 1.0

    def __init__(self, uri=None, wrap_exceptions=False, **options):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self._sweep_lock = threading.Lock()
        self._next_sweep = 0.0  # the first hit sweeps, then one every SWEEP_INTERVAL_S

    def _MemoryStorage__schedule_expiry(self):  # noqa: N802 (overrides the name-mangled hook)
        now = time.monotonic()
        if now < self._next_sweep or not self._sweep_lock.acquire(blocking=False):
            return
        try:
            self._next_sweep = now + self.SWEEP_INTERVAL_S
            self._MemoryStorage__expire_events()
        finally:
            self._sweep_lock.release()


def storage_uri(configured):
    """Return the storage URI to give Flask-Limiter: memory:// becomes the inline-expiry one."""
    if urlsplit(configured).scheme == "memory":
        return InlineExpiryMemoryStorage.STORAGE_SCHEME[0] + configured[len("memory"):]
    return configured


def caller_prefix():
    """Return the authenticated key's prefix: the identity the limits count by."""
    caller = g.get("api_key")
    return f"key:{caller.prefix}" if caller is not None else "anonymous"


def _open_route():
    return g.get("api_key") is None


def _too_many_requests(exc):
    """Render a breach as the API's JSON error with Retry-After (seconds until the window resets)."""
    current = current_app.extensions[EXTENSION].current_limit
    retry_after = max(1, current.reset_at - int(time.time())) if current else 1
    limit = str(current.limit) if current else str(exc.description)
    return render(TooManyRequests(f"rate limit exceeded for this API key ({limit}); retry in "
                                  f"{retry_after} s", field="Authorization",
                                  details={"limit": limit}, retry_after=retry_after))


def init_app(app):
    """Attach the limiter; call after auth.init_app so that g.api_key is set when it runs."""
    limiter = Limiter(
        caller_prefix, app=app,
        application_limits=[app.config["RATELIMIT_PER_KEY"]],
        application_limits_exempt_when=_open_route,
        storage_uri=storage_uri(app.config["RATELIMIT_STORAGE_URI"]),
        strategy=app.config["RATELIMIT_STRATEGY"],
        enabled=bool(app.config["RATELIMIT_ENABLED"]),
        headers_enabled=False, swallow_errors=True, key_prefix="tfship")
    app.extensions[EXTENSION] = limiter
    app.register_error_handler(RateLimitExceeded, _too_many_requests)
    return limiter
