"""Authenticate API keys and enforce roles.

A key looks like ``tfs_<prefix>_<secret>``: the prefix (12 hex characters) is not secret
and finds the row; the whole key is checked against its stored HMAC-SHA-256 digest, keyed
with the server secret, using ``hmac.compare_digest``. A slow password hash would cost
more than the whole latency budget; the keys are 256-bit random, so a keyed hash is enough.

Send the key as ``Authorization: Bearer <key>`` (or ``X-API-Key: <key>``).

Roles nest: admin includes deployer, deployer includes reader; predictor stands apart.
Verified keys are cached in-process for ``KEY_CACHE_TTL_S`` (a revocation takes effect
within that time), and a cached key stays usable for ``KEY_CACHE_STALE_S`` while the
database is unreachable, so predictions keep flowing through a database outage.
"""
import dataclasses
import functools
import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from copy import deepcopy

import sqlalchemy as sa
from flask import current_app, g, request

from service import db
from service.errors import Forbidden, Unauthorized
from service.tables import ROLES, ApiKey

SECRET_EXTENSION = "tfship_key_secret"
CACHE_EXTENSION = "tfship_key_cache"
KEY_PATTERN = re.compile(r"^tfs_(?P<prefix>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})$")
GRANTS = {
    "reader": {"reader"},
    "predictor": {"predictor"},
    "deployer": {"deployer", "reader"},
    "admin": {"admin", "deployer", "reader"},
}
SECURITY = [{"bearerAuth": []}, {"apiKeyHeader": []}]
SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <key>"},
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


@dataclasses.dataclass(frozen=True)
class AuthenticatedKey:
    """The caller, as seen by views: ``g.api_key``."""

    prefix: str
    name: str
    role: str


def grants(role, required):
    """Return whether a key with role may call a route that requires required."""
    return required in GRANTS[role]


def new_key():
    """Return (key, prefix) for a fresh random key."""
    prefix = secrets.token_hex(6)
    return f"tfs_{prefix}_{secrets.token_urlsafe(32)}", prefix


def digest(secret, key):
    """Return the hex HMAC-SHA-256 of key under the server secret."""
    return hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()


def load_key_secret(config):
    """Return the server secret from KEY_SECRET or KEY_SECRET_FILE (creating the file if allowed)."""
    value = config.pop("KEY_SECRET", None)
    if not value:
        path = config["KEY_SECRET_FILE"]
        if not os.path.exists(path):
            if not config["KEY_SECRET_CREATE"]:
                raise RuntimeError(f"no API key secret: set TFSHIP_API_KEY_SECRET or create {path}")
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
        with open(path, encoding="utf-8") as handle:
            value = handle.read().strip()
    if len(value) < 32:
        raise RuntimeError("the API key secret must be at least 32 characters")
    return value.encode()


def init_app(app):
    """Load the server secret (kept out of app.config, so it is never dumped) and the key cache."""
    app.extensions[SECRET_EXTENSION] = load_key_secret(app.config)
    app.extensions[CACHE_EXTENSION] = KeyCache(app.config["KEY_CACHE_TTL_S"],
                                               app.config["KEY_CACHE_STALE_S"])
    app.before_request(_authenticate_route)


def required_role_of(view, method):
    """Return the role a view (function or MethodView) requires for method, or None if open."""
    view_class = getattr(view, "view_class", None)
    if view_class is not None:
        view = getattr(view_class, "get" if method == "HEAD" else method.lower(), None)
    return getattr(view, "required_role", None)


def _authenticate_route():
    """Authenticate before any other request hook, so a caller without a key learns nothing else."""
    req = request._get_current_object()  # one proxy lookup: this runs on every request
    if req.url_rule is None:
        return
    role = required_role_of(current_app.view_functions[req.endpoint], req.method)
    if role is not None:
        authenticate(role)


class KeyCache:
    """Verified keys by digest, fresh for ttl seconds, usable for stale seconds when the DB is down."""

    def __init__(self, ttl, stale):
        self.ttl, self.stale = ttl, stale
        self._entries = {}
        self._lock = threading.Lock()

    def get(self, key_digest, *, max_age):
        with self._lock:
            entry = self._entries.get(key_digest)
        if entry and time.monotonic() - entry[0] <= max_age:
            return entry[1]
        return None

    def put(self, key_digest, caller):
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[key_digest] = (time.monotonic(), caller)

    def forget(self, key_digest):
        with self._lock:
            self._entries.pop(key_digest, None)


def presented_key():
    """Return the key the request carries, or None."""
    headers = request.headers
    header = headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return headers.get("X-API-Key", "").strip() or None


def verify(key):
    """Return the AuthenticatedKey for key, or raise Unauthorized. Same work for known and unknown."""
    extensions = current_app.extensions
    secret, cache = extensions[SECRET_EXTENSION], extensions[CACHE_EXTENSION]
    match = KEY_PATTERN.match(key)
    key_digest = digest(secret, key)
    cached = cache.get(key_digest, max_age=cache.ttl)
    if cached:
        return cached
    try:
        row = db.session().execute(sa.select(ApiKey).where(
            ApiKey.prefix == (match["prefix"] if match else ""))).scalar_one_or_none()
    except (sa.exc.OperationalError, sa.exc.InterfaceError):
        stale = cache.get(key_digest, max_age=cache.stale)
        if stale:
            return stale
        raise
    stored = row.digest if row is not None else "0" * 64
    valid = hmac.compare_digest(stored, key_digest)
    if not (valid and match and row.revoked_at is None):
        cache.forget(key_digest)
        raise Unauthorized("invalid or revoked API key", field="Authorization")
    caller = AuthenticatedKey(prefix=row.prefix, name=row.name, role=row.role)
    cache.put(key_digest, caller)
    return caller


def authenticate(required):
    """Set g.api_key for this request's key, or raise 401 (no or bad key) / 403 (wrong role)."""
    key = presented_key()
    if key is None:
        raise Unauthorized("an API key is required: send 'Authorization: Bearer <key>'",
                           field="Authorization")
    caller = verify(key)
    if not grants(caller.role, required):
        raise Forbidden(f"this route requires the {required!r} role; the key has {caller.role!r}",
                        field="Authorization", details={"required_role": required,
                                                        "key_role": caller.role})
    g.api_key = caller
    return caller


def require_role(role):
    """Decorate a view so that only keys whose role grants role may call it.

    The view is marked with ``required_role`` (the route/role matrix test reads it) and its
    OpenAPI operation gets the security requirement and the 401/403 responses.
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles are {ROLES}")

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            caller = g.get("api_key")
            if caller is None or not grants(caller.role, role):
                authenticate(role)
            return current_app.ensure_sync(view)(*args, **kwargs)

        wrapper.required_role = role
        apidoc = deepcopy(getattr(view, "_apidoc", {}))
        responses = apidoc.setdefault("response", {}).setdefault("responses", {})
        responses.setdefault(401, []).append("UNAUTHORIZED")
        responses.setdefault(403, []).append("FORBIDDEN")
        manual = apidoc.setdefault("manual_doc", {})
        manual["security"] = SECURITY
        manual["x-required-role"] = role
        wrapper._apidoc = apidoc
        return wrapper

    return decorator
