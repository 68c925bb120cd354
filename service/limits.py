"""Rate-limit every authenticated call per API key (the `limits` library), with 429 and Retry-After.

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

The counting is limits' (storage, strategy, limit notation), the library Flask-Limiter is built
on. Flask-Limiter itself was dropped: for one application-wide limit it resolved, filtered and
evaluated its per-route, per-blueprint and default limit sets on every request, 0.18 ms of the
API's CPU per call against 0.04 ms for the same hits made here (measured in process).
"""
import logging
import math
import threading
import time
from urllib.parse import urlsplit

from flask import g
from limits import parse_many, strategies
from limits.storage import MemoryStorage, storage_from_string

from service.errors import TooManyRequests
from service.settings import Setting

EXTENSION = "tfship_limiter"
NAMESPACE = "tfship"  # the first part of every counter's key in the store
log = logging.getLogger(__name__)

SETTINGS = (
    Setting("RATELIMIT_PER_KEY", "20000 per minute;1000 per second", "Requests one API key may "
            "make, over all routes together (limits' notation, ';' between limits). "
            "Exceeding it gets 429 with Retry-After."),
    Setting("RATELIMIT_STORAGE_URI", "memory://", "Where the counters live: memory:// counts per "
            "gunicorn worker process (a key may reach WORKERS x the limit per host); "
            "redis://host:6379/0 shares them across workers and pods (the cluster's setting)."),
    Setting("RATELIMIT_STRATEGY", "fixed-window", "Counting strategy: fixed-window, "
            "moving-window or sliding-window-counter."),
    Setting("RATELIMIT_ENABLED", True, "Switch rate limiting off (false): for load tests that send "
            "more than any limit allows from one key."),
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
    """Return the storage URI to count in: memory:// becomes the inline-expiry one."""
    if urlsplit(configured).scheme == "memory":
        return InlineExpiryMemoryStorage.STORAGE_SCHEME[0] + configured[len("memory"):]
    return configured


class KeyLimiter:
    """Count each authenticated request against every configured limit of its key."""

    def __init__(self, per_key, uri, strategy):
        self.limits = parse_many(per_key)
        if not self.limits:
            raise ValueError(f"RATELIMIT_PER_KEY holds no limit: {per_key!r}")
        if strategy not in strategies.STRATEGIES:
            raise ValueError(f"RATELIMIT_STRATEGY must be one of {sorted(strategies.STRATEGIES)}, "
                             f"not {strategy!r}")
        self.strategy = strategies.STRATEGIES[strategy](storage_from_string(storage_uri(uri)))

    def breached(self, caller):
        """Count one request of `caller` (a key prefix) against each limit; return the first
        limit it went past, or None."""
        for limit in self.limits:
            if not self.strategy.hit(limit, NAMESPACE, caller):
                return limit
        return None

    def seconds_to_reset(self, limit, caller):
        """Whole seconds (at least 1) until `limit`'s window for `caller` lets a request through."""
        reset_at = self.strategy.get_window_stats(limit, NAMESPACE, caller).reset_time
        return max(1, math.ceil(reset_at - time.time()))


def _limit_request(limiter):
    caller = g.get("api_key")
    if caller is None:  # an open route: auth let it through without a key
        return
    prefix = f"key:{caller.prefix}"
    try:
        limit = limiter.breached(prefix)
        if limit is None:
            return
        retry_after = limiter.seconds_to_reset(limit, prefix)
    except Exception as exc:  # noqa: BLE001 - the store failed: serve rather than fail
        log.warning("rate limit store unavailable, serving unlimited: %s", type(exc).__name__)
        return
    raise TooManyRequests(f"rate limit exceeded for this API key ({limit}); retry in "
                          f"{retry_after} s", field="Authorization",
                          details={"limit": str(limit)}, retry_after=retry_after)


def init_app(app):
    """Attach the limiter; call after auth.init_app so that g.api_key is set when it runs."""
    if not app.config["RATELIMIT_ENABLED"]:
        return None
    limiter = KeyLimiter(app.config["RATELIMIT_PER_KEY"], app.config["RATELIMIT_STORAGE_URI"],
                         app.config["RATELIMIT_STRATEGY"])
    app.extensions[EXTENSION] = limiter
    app.before_request(lambda: _limit_request(limiter))
    return limiter
