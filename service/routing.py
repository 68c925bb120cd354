"""Pick the version that serves a prediction: the stable/canary split, sticky per routing key.

A routing key (the caller's ``X-Routing-Key`` header, else its API key's prefix) hashes to a
fixed point in [0, 1); the canary serves the keys below the rollout's ``canary_weight``. So a
caller stays on one side while the weight holds, and raising the weight only moves callers
from stable to canary. A version pinned in the URL bypasses the split.

Registry answers are cached for a short TTL per process. When a refresh fails because the
registry is unavailable, the last good answer keeps serving (and the next refresh is tried
one TTL later), so a registry outage does not stop predictions.
"""
import hashlib
import logging
import threading
import time
from dataclasses import dataclass

from service.errors import NotFound

ROUTING_KEY_HEADER = "X-Routing-Key"
STABLE, CANARY = "stable", "canary"
MAX_ROUTING_KEY_LENGTH = 256
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Route:
    """Where a prediction goes: a label (None when pinned) and the version it points at.

    ``fallback`` is the stable route of a canary request: the seam for retrying a failed
    canary call on stable (progressive delivery).
    """

    label: str | None
    version: int
    fallback: "Route | None" = None


def bucket(model_name, routing_key):
    """Return the routing key's fixed point in [0, 1) for model_name (independent per model)."""
    digest = hashlib.sha256(f"{model_name}\0{routing_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def choose_route(model_name, state, routing_key):
    """Return the Route for routing_key under the rollout state {stable, canary, canary_weight}."""
    stable, canary = state.get("stable"), state.get("canary")
    weight = float(state.get("canary_weight") or 0.0)
    stable_route = Route(STABLE, int(stable)) if stable is not None else None
    if canary is not None and weight > 0 and (
            stable_route is None or bucket(model_name, routing_key) < weight):
        return Route(CANARY, int(canary), fallback=stable_route)
    if stable_route is None:
        raise NotFound(f"model {model_name!r} has no version serving: set a stable version",
                       field="name", code="not_serving")
    return stable_route


def pinned_route(version):
    """Return the Route of a version pinned in the URL."""
    return Route(None, int(version))


def routing_key(headers, api_key_prefix, remote_addr):
    """Return the caller's routing key: the header, else the API key prefix, else its address."""
    given = (headers.get(ROUTING_KEY_HEADER) or "").strip()
    if given:
        return given[:MAX_ROUTING_KEY_LENGTH]
    return api_key_prefix or remote_addr or ""


class StaleOnErrorCache:
    """Cache fetched answers for ``ttl`` seconds; on an ``unavailable`` error, serve the last one.

    Other errors (e.g. NotFound) propagate and forget the entry.
    """

    def __init__(self, ttl, unavailable, *, max_entries=10_000, clock=time.monotonic):
        self.ttl = ttl
        self.unavailable = unavailable
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries = {}  # key -> (refreshed_at, value)
        self._refreshing = set()

    def get(self, key, fetch):
        """Return the cached answer for key, refreshing it with fetch() when older than ttl.

        One caller refreshes a key at a time; the others keep the last answer meanwhile, so a
        slow registry delays one request per TTL, not all of them.
        """
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and (self._clock() - entry[0] < self.ttl
                                      or key in self._refreshing):
                return entry[1]
            self._refreshing.add(key)
        try:
            value = fetch()
        except self.unavailable as exc:
            if entry is None:
                raise
            log.warning("registry unavailable (%s); serving the cached answer for %s",
                        type(exc).__name__, key)
            value = entry[1]
        except Exception:
            with self._lock:
                self._entries.pop(key, None)
            raise
        finally:
            with self._lock:
                self._refreshing.discard(key)
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            # Stamped after the fetch: a failed refresh waits a whole TTL before the next try.
            self._entries[key] = (self._clock(), value)
        return value

    def keys(self):
        """Return the cached keys."""
        with self._lock:
            return list(self._entries)

    def clear(self):
        """Forget every entry."""
        with self._lock:
            self._entries.clear()
