"""Call the model server over TF Serving's REST API: pooled, timed, retried only where safe, guarded.

One :class:`ModelServerClient` per app (per worker process) holds:

- a keep-alive connection pool (:class:`ConnectionPool`: http.client connects,
  service/http1.py exchanges requests and answers) whose connections are dropped once older than ``max_connection_age`` seconds,
  so replicas added behind a Service start receiving traffic;
- connect and read timeouts;
- retries only where they are safe: status and metadata GETs on connection errors, timeouts
  and 502/503/504; predict only when the connection failed before the request was sent
  (refused or not established). Every retry must fit a :class:`RetryBudget`;
- a :class:`CircuitBreaker` (closed, open, half-open) per target: per model and label or
  pinned version, so a failing canary opens its own circuit and never blocks stable;
- a cap on concurrent upstream calls: past it, callers get a fast 503.

Failures become :mod:`service.errors` classes, never a 500: 502 for a bad answer, 503 when the
server is unreachable, the breaker is open or the cap is reached, 504 on a read timeout, each
with Retry-After. The model server's own 4xx answers pass through with their message.

pybreaker was considered and not used: its ``CircuitBreaker.call`` holds one lock for the whole
guarded call, which would serialise every upstream call of a threaded worker.
"""
import collections
import http.client
import math
import select
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from service import http1, json_codec
from service.errors import ApiError, BadGateway, GatewayTimeout, ServiceUnavailable
from service.settings import Setting

OK, CLIENT_ERROR, SERVER_ERROR = "ok", "client_error", "server_error"
TIMEOUT, UNAVAILABLE, CIRCUIT_OPEN, REJECTED = "timeout", "unavailable", "circuit_open", "rejected"
OUTCOMES = (OK, CLIENT_ERROR, SERVER_ERROR, TIMEOUT, UNAVAILABLE, CIRCUIT_OPEN, REJECTED)
MAX_BREAKERS = 1000  # past it, breakers with nothing to remember are dropped

SETTINGS = (
    Setting("MODEL_SERVER_URL", "http://127.0.0.1:8501", "Base URL of the model server's REST "
            "API (TF Serving, or a Service in front of its replicas)."),
    Setting("MODEL_SERVER_CONNECT_TIMEOUT_S", 0.5, "Seconds to establish a connection to the "
            "model server."),
    Setting("MODEL_SERVER_READ_TIMEOUT_S", 5.0, "Seconds to wait for the model server's answer; "
            "past it the caller gets 504."),
    Setting("MODEL_SERVER_MAX_CONNECTION_AGE_S", 30.0, "Seconds a pooled keep-alive connection "
            "is reused; older ones are reopened, so new model-server replicas get traffic."),
    Setting("MODEL_SERVER_MAX_CONCURRENCY", 32, "Model-server calls in flight per worker "
            "process; past it callers get a fast 503."),
    Setting("MODEL_SERVER_MAX_ATTEMPTS", 2, "Attempts per call where a retry is safe (status and "
            "metadata reads; predict only when the connection failed before sending)."),
    Setting("MODEL_SERVER_RETRY_RATIO", 0.1, "Retry budget: retries allowed as a share of the "
            "requests of the last 10 s (plus 3), so retries never multiply an overload."),
    Setting("MODEL_SERVER_BREAKER_FAILURES", 5, "Consecutive model-server failures (connection, "
            "timeout, 5xx) that open the circuit breaker."),
    Setting("MODEL_SERVER_BREAKER_RESET_S", 1.0, "Seconds the open breaker fails calls fast "
            "before letting a trial call through. Short, so predictions recover within ~1 s of a "
            "restarted model server reporting AVAILABLE (tests/service/reliability)."),
    Setting("MODEL_SERVER_CA_BUNDLE", None, "PEM CA bundle that verifies the model server's "
            "certificate when MODEL_SERVER_URL is https:// (e.g. a mounted cert-manager CA). "
            "Unset: the system's CAs. Certificates are always verified."),
)


class UpstreamTimeout(GatewayTimeout):
    """The model server accepted the request but did not answer within the read timeout."""

    outcome = TIMEOUT


class UpstreamUnavailable(ServiceUnavailable):
    """The model server could not be reached, or dropped the connection."""

    outcome = UNAVAILABLE


class CircuitOpen(ServiceUnavailable):
    """The circuit breaker is open: calls fail fast until it lets a trial call through."""

    outcome = CIRCUIT_OPEN


class UpstreamOverloaded(ServiceUnavailable):
    """Too many upstream calls are already in flight in this process."""

    outcome = REJECTED


class UpstreamBadResponse(BadGateway):
    """The model server answered with a 5xx or with a body that is not TF Serving's JSON."""

    outcome = SERVER_ERROR


class UpstreamServerUnavailable(ServiceUnavailable):
    """The model server itself answered 503."""

    outcome = SERVER_ERROR


class UpstreamClientError(ApiError):
    """The model server refused the request with a 4xx: passed through with its message."""

    outcome = CLIENT_ERROR

    def __init__(self, status_code, message):
        super().__init__(f"model server: {message}", code="model_server_rejected",
                         details={"model_server_status": status_code})
        self.status_code = status_code


@dataclass(frozen=True)
class UpstreamResponse:
    """A successful model-server answer: its status, raw body and parsed JSON."""

    status_code: int
    body: bytes
    data: object


class CircuitBreaker:
    """Open after ``failure_threshold`` consecutive failures; after ``reset_timeout`` s half-open.

    Half-open lets ``half_open_max_calls`` trial calls through at once: a success closes the
    breaker, a failure opens it again. Thread-safe; the lock is never held during a call.
    """

    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

    def __init__(self, failure_threshold=5, reset_timeout=1.0, half_open_max_calls=1,
                 clock=time.monotonic):
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.half_open_max_calls = half_open_max_calls
        self._clock = clock
        self._lock = threading.Lock()
        self._state = self.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trials = 0

    @property
    def state(self):
        """Return closed, open or half_open (open turns half-open once the timeout elapsed)."""
        with self._lock:
            return self._current_state()

    def _current_state(self):
        if self._state == self.OPEN and self._clock() - self._opened_at >= self.reset_timeout:
            self._state, self._trials = self.HALF_OPEN, 0
        return self._state

    def retry_after(self):
        """Return the whole seconds until the breaker lets a trial call through (at least 1)."""
        with self._lock:
            remaining = self.reset_timeout - (self._clock() - self._opened_at)
        return max(1, math.ceil(remaining))

    def allow(self):
        """Return whether a call may go out now; in half-open, reserve one of the trial slots."""
        with self._lock:
            state = self._current_state()
            if state == self.CLOSED:
                return True
            if state == self.HALF_OPEN and self._trials < self.half_open_max_calls:
                self._trials += 1
                return True
            return False

    def record_success(self):
        """Count a call that reached a healthy server: close the breaker."""
        with self._lock:
            self._state, self._failures, self._trials = self.CLOSED, 0, 0

    def idle(self):
        """Return whether the breaker is closed with no failure counted (nothing to remember)."""
        with self._lock:
            return self._state == self.CLOSED and self._failures == 0

    def record_failure(self):
        """Count a failed call: open the breaker at the threshold, or at once when half-open."""
        with self._lock:
            self._failures += 1
            if self._state == self.HALF_OPEN or self._failures >= self.failure_threshold:
                self._state, self._opened_at, self._trials = self.OPEN, self._clock(), 0


class RetryBudget:
    """Allow retries up to ``ratio`` of the requests of the last ``window`` seconds.

    ``min_retries`` more are always allowed per window, so a quiet process can still retry.
    A retry storm against a failing server is bounded to ``ratio`` extra load.
    """

    def __init__(self, ratio=0.1, window=10.0, min_retries=3, clock=time.monotonic):
        self.ratio, self.window, self.min_retries = ratio, window, min_retries
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets = {}  # whole second -> [requests, retries]

    def _bucket(self):
        now = int(self._clock())
        horizon = now - self.window
        for second in [s for s in self._buckets if s <= horizon]:
            del self._buckets[second]
        return self._buckets.setdefault(now, [0, 0])

    def record_request(self):
        """Count one original (not retried) request."""
        with self._lock:
            self._bucket()[0] += 1

    def retries(self):
        """Return the retries spent in the current window."""
        with self._lock:
            self._bucket()
            return sum(counts[1] for counts in self._buckets.values())

    def try_spend(self):
        """Return whether one retry fits the budget, and count it if it does."""
        with self._lock:
            bucket = self._bucket()
            requests_, retries = (sum(counts[i] for counts in self._buckets.values()) for i in (0, 1))
            if retries >= self.min_retries + self.ratio * requests_:
                return False
            bucket[1] += 1
            return True


class ConnectFailed(OSError):
    """No connection could be made (refused, unreachable, TLS refused, connect timeout): the
    request was not sent, so even a prediction may be retried."""


class ConnectionPool:
    """Keep-alive HTTP/1.1 connections to one server (http.client), reused newest first.

    A connection is reused at most ``max_age`` seconds after it was opened, so replicas added
    behind a Service start receiving traffic; one the server closed meanwhile (readable while
    idle: EOF) is dropped before reuse. Thread-safe: idle connections sit in a deque, whose
    append and pop are atomic; a connection is used by one thread at a time.

    http.client connects, service/http1.py exchanges requests and answers: the gateway makes
    one kind of call, and requests/urllib3 cost 0.52 ms of CPU per call against http.client's
    0.15 ms (measured here, loopback), and http.client's answer handling ~3x http1's
    exchange (httptools' llhttp parser on the raw socket).
    """

    def __init__(self, base_url, *, connect_timeout=0.5, read_timeout=5.0, max_age=30.0,
                 ca_bundle=None):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"MODEL_SERVER_URL must be http(s)://host[:port], not {base_url!r}")
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname, parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")
        self.connect_timeout, self.read_timeout, self.max_age = connect_timeout, read_timeout, max_age
        self.ca_bundle = ca_bundle
        # Certificates are always verified: against ca_bundle, else the system's CAs.
        self._tls = ssl.create_default_context(cafile=ca_bundle) if self.https else None
        self._idle = collections.deque()

    def _open(self):
        if self.https:
            connection = http.client.HTTPSConnection(self.host, self.port, context=self._tls,
                                                     timeout=self.connect_timeout)
        else:
            connection = http.client.HTTPConnection(self.host, self.port,
                                                    timeout=self.connect_timeout)
        try:
            connection.connect()  # sets TCP_NODELAY
        except OSError as exc:  # refused, unreachable, timed out, certificate refused
            connection.close()
            raise ConnectFailed(f"{type(exc).__name__}: {exc}") from exc
        connection.sock.settimeout(self.read_timeout)
        return http1.Connection.open(connection, opened_at=time.monotonic())

    def _checkout(self):
        now = time.monotonic()
        while True:
            try:
                connection = self._idle.pop()
            except IndexError:
                return self._open()
            if now - connection.opened_at <= self.max_age and not _dropped(connection):
                return connection
            connection.close()

    def request(self, method, path, body, headers):
        """Send one request; return (status, reason, body bytes). Raises ConnectFailed when no
        connection could be made, TimeoutError on a read timeout, OSError or
        http.client.HTTPException when the connection broke or the answer is not HTTP."""
        connection = self._checkout()
        try:
            status, reason, data, reusable = connection.exchange(
                method, self.prefix + path, body, headers)
        except BaseException:
            connection.close()
            raise
        if reusable:
            self._idle.append(connection)
        else:
            connection.close()
        return status, reason, data

    def close(self):
        """Close every idle connection."""
        while True:
            try:
                self._idle.pop().close()
            except IndexError:
                return

    __del__ = close  # a pool dropped with its app closes its sockets rather than leaking them


def _dropped(connection):
    """Return whether an idle keep-alive connection was closed by the server (or has junk)."""
    sock = connection.sock
    if sock is None:
        return True
    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _error_message(status, reason, body):
    """Return TF Serving's {"error": ...} message, or the start of the body."""
    try:
        data = json_codec.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return data["error"]
    return body[:200].decode("utf-8", "replace") or reason or f"HTTP {status}"


class ModelServerClient:
    """A TF Serving REST client for one model server (or one Service in front of replicas)."""

    def __init__(self, base_url, *, connect_timeout=0.5, read_timeout=5.0, max_connection_age=30.0,
                 max_concurrency=32, max_attempts=2, retry_backoff=0.05, retry_budget=None,
                 breaker_factory=None, on_outcome=None, ca_bundle=None):
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self.max_attempts = max_attempts
        self.retry_backoff = retry_backoff
        self.retry_budget = retry_budget or RetryBudget()
        self._breaker_factory = breaker_factory or CircuitBreaker
        self._breakers = {}  # (model, target) -> CircuitBreaker
        self._breakers_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._on_outcome = on_outcome
        self.pool = ConnectionPool(base_url, connect_timeout=connect_timeout,
                                   read_timeout=read_timeout, max_age=max_connection_age,
                                   ca_bundle=ca_bundle)

    def close(self):
        """Close every pooled connection."""
        self.pool.close()

    def breaker_for(self, model, *, label=None, version=None):
        """Return the circuit breaker of calls to model's label, version, or the model itself.

        Each target has its own breaker, so a failing canary (its label, or its pinned version)
        opens only its own circuit and never blocks stable's calls.
        """
        key = (model, _target(label, version))
        breaker = self._breakers.get(key)
        if breaker is None:
            with self._breakers_lock:
                breaker = self._breakers.get(key)
                if breaker is None:
                    if len(self._breakers) >= MAX_BREAKERS:  # e.g. callers pinning made-up versions
                        for stale in [k for k, b in self._breakers.items() if b.idle()]:
                            del self._breakers[stale]
                    breaker = self._breakers[key] = self._breaker_factory()
        return breaker

    def predict(self, model, body, *, label=None, version=None, request_id=None, metric_version=""):
        """POST body (TF Serving JSON, bytes) to the model's label, version, or default version."""
        path = f"/v1/models/{quote(model, safe='')}"
        if version is not None:
            path += f"/versions/{int(version)}"
        elif label is not None:
            path += f"/labels/{quote(label, safe='')}"
        return self._call("POST", path + ":predict", body=body, request_id=request_id,
                          model=model, metric_version=metric_version,
                          breaker=self.breaker_for(model, label=label, version=version))

    def model_status(self, model, *, request_id=None):
        """Return [(version, state)] of every version the server knows for model."""
        data = self._call("GET", f"/v1/models/{quote(model, safe='')}", request_id=request_id,
                          model=model, metric_version="", breaker=self.breaker_for(model)).data
        try:
            return [(int(item["version"]), str(item["state"]))
                    for item in data["model_version_status"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise UpstreamBadResponse("model server: malformed model status answer") from exc

    def available_versions(self, model, *, request_id=None):
        """Return the sorted versions of model in state AVAILABLE."""
        return sorted(v for v, state in self.model_status(model, request_id=request_id)
                      if state == "AVAILABLE")

    def model_metadata(self, model, *, version=None, request_id=None):
        """Return the model's TF Serving metadata (signature defs)."""
        path = f"/v1/models/{quote(model, safe='')}"
        if version is not None:
            path += f"/versions/{int(version)}"
        return self._call("GET", path + "/metadata", request_id=request_id, model=model,
                          metric_version="" if version is None else str(version),
                          breaker=self.breaker_for(model, version=version)).data

    def _call(self, method, path, *, body=None, request_id=None, model="", metric_version="",
              breaker):
        started = time.perf_counter()
        outcome = SERVER_ERROR
        try:
            if not self._slots.acquire(blocking=False):
                raise UpstreamOverloaded("too many model-server calls in flight; retry shortly",
                                         code="upstream_overloaded", retry_after=1)
            try:
                result = self._attempts(method, path, body, request_id, breaker)
            finally:
                self._slots.release()
            outcome = OK
            return result
        except ApiError as exc:
            outcome = getattr(exc, "outcome", SERVER_ERROR)
            raise
        finally:
            if self._on_outcome is not None:
                self._on_outcome(model, metric_version, outcome, time.perf_counter() - started)

    def _attempts(self, method, path, body, request_id, breaker):
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if request_id:
            headers["X-Request-ID"] = request_id
        self.retry_budget.record_request()
        attempt = 0
        while True:
            attempt += 1
            if not breaker.allow():
                raise CircuitOpen("the model server is failing; calls are paused",
                                  code="circuit_open", retry_after=breaker.retry_after())
            try:
                return self._attempt(method, path, body, headers, breaker)
            except (UpstreamTimeout, UpstreamUnavailable, UpstreamBadResponse,
                    UpstreamServerUnavailable) as exc:
                retryable = method == "GET" or getattr(exc, "before_sending", False)
                if not (retryable and attempt < self.max_attempts
                        and self.retry_budget.try_spend()):
                    raise
            time.sleep(self.retry_backoff * attempt)

    def _attempt(self, method, path, body, headers, breaker):
        try:
            status, reason, content = self.pool.request(method, path, body, headers)
        except ConnectFailed as exc:
            breaker.record_failure()
            error = UpstreamUnavailable("the model server is unreachable",
                                        code="upstream_unavailable", retry_after=1)
            error.before_sending = True
            raise error from exc
        except TimeoutError as exc:  # socket.timeout: sent, no answer within the read timeout
            breaker.record_failure()
            raise UpstreamTimeout(f"the model server did not answer within {self.timeout[1]} s",
                                  code="upstream_timeout", retry_after=1) from exc
        except (OSError, http.client.RemoteDisconnected, http.client.IncompleteRead) as exc:
            # Reset, closed, broken pipe, or the answer cut off: the server went away mid-call.
            breaker.record_failure()
            error = UpstreamUnavailable("the model server is unreachable",
                                        code="upstream_unavailable", retry_after=1)
            error.before_sending = False
            raise error from exc
        except Exception as exc:  # not HTTP, a broken chunked body: still the breaker's business
            breaker.record_failure()
            raise UpstreamBadResponse("the model server's answer could not be read",
                                      code="upstream_bad_response", retry_after=1) from exc
        if status >= 500:
            breaker.record_failure()
            message = f"model server answered {status}: {_error_message(status, reason, content)}"
            if status == 503:
                raise UpstreamServerUnavailable(message, code="upstream_unavailable", retry_after=1)
            if status == 504:
                raise UpstreamTimeout(message, code="upstream_timeout", retry_after=1)
            raise UpstreamBadResponse(message, code="upstream_bad_response", retry_after=1)
        if status >= 400:
            breaker.record_success()  # the server works; the request was wrong
            raise UpstreamClientError(status, _error_message(status, reason, content))
        try:
            data = json_codec.loads(content)
        except ValueError as exc:
            breaker.record_failure()
            raise UpstreamBadResponse("the model server's answer is not JSON",
                                      code="upstream_bad_response", retry_after=1) from exc
        breaker.record_success()
        return UpstreamResponse(status, content, data)


def _target(label, version):
    if version is not None:
        return f"version:{int(version)}"
    if label is not None:
        return f"label:{label}"
    return "model"


def readiness(app):
    """Return the model server's state for /readyz (see service.gateway.readiness)."""
    from service import gateway
    return gateway.readiness(app)


def from_config(config, on_outcome=None):
    """Build the client from the app's MODEL_SERVER_* settings (a breaker per target)."""
    failures = int(config["MODEL_SERVER_BREAKER_FAILURES"])
    reset_s = float(config["MODEL_SERVER_BREAKER_RESET_S"])
    return ModelServerClient(
        config["MODEL_SERVER_URL"],
        connect_timeout=float(config["MODEL_SERVER_CONNECT_TIMEOUT_S"]),
        read_timeout=float(config["MODEL_SERVER_READ_TIMEOUT_S"]),
        max_connection_age=float(config["MODEL_SERVER_MAX_CONNECTION_AGE_S"]),
        max_concurrency=int(config["MODEL_SERVER_MAX_CONCURRENCY"]),
        max_attempts=int(config["MODEL_SERVER_MAX_ATTEMPTS"]),
        retry_budget=RetryBudget(ratio=float(config["MODEL_SERVER_RETRY_RATIO"])),
        breaker_factory=lambda: CircuitBreaker(failure_threshold=failures, reset_timeout=reset_s),
        on_outcome=on_outcome,
        ca_bundle=config.get("MODEL_SERVER_CA_BUNDLE"),
    )
