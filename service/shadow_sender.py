"""Shadow mode's sending side: call the shadow version, compare, record, store.

A :class:`Comparer` takes mirrored predictions (:class:`Job`) on a bounded queue, and one thread
sends each to the shadow version (pinned by version, with its own client: own connection
pool, breaker, short timeout, no retry, so a failing shadow never touches stable's breaker or
slots), compares the predicted class row by row and the latency (shadow call vs stable's
upstream call), records Prometheus metrics, and every SHADOW_FLUSH_INTERVAL_S inserts its
counts into the registry's ``shadow_comparisons`` table (one row per model, stable and shadow
version per window: rows are only inserted, so senders never contend on a row). When the
queue is full a job is dropped and counted, never waited for.

Under gunicorn the Comparer runs in a process of its own beside each worker
(``python -m service.shadow_sender FD``, started by service/shadow.py on the first mirrored
call), so its CPU never competes with the worker's requests for the GIL. It reads framed jobs
from a Unix SEQPACKET socket (:func:`decode`; the first message is its settings), and stops
when the worker closes its end: it sends what is queued, flushes, and exits. Its metrics reach
/metrics through prometheus-client's multiprocess folder, inherited from the worker.
Without that folder (``flask run``, tests) the same Comparer runs in a thread of the process.
"""
import bisect
import logging
import os
import queue
import socket
import sys
import threading
import time
from dataclasses import dataclass, field

import orjson
import sqlalchemy as sa
from sqlalchemy.orm import Session

from service import json_codec, metrics, upstream
from service.settings import Setting
from service.tables import RegisteredModel, ShadowComparison, utcnow

log = logging.getLogger(__name__)
PRIMARY, SHADOW = "primary", "shadow"
# Latency bounds (seconds) of the persisted comparison: finer than the API's at the low end,
# where model calls are. Stored per bucket as {"<bound>": count, "+Inf": count}.
LATENCY_BOUNDS = (0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015,
                  0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
INF = "+Inf"
SETTINGS = (
    Setting("SHADOW_QUEUE_SIZE", 64, "Mirrored predictions waiting per worker process for the "
            "shadow version; when full, new ones are dropped and counted "
            "(tfship_shadow_dropped_total), never waited for."),
    Setting("SHADOW_TIMEOUT_S", 2.0, "Seconds a shadow call may take before it counts as a "
            "timeout (the client's answer never waits for it)."),
    Setting("SHADOW_FLUSH_INTERVAL_S", 10.0, "Seconds between a worker's inserts of its shadow "
            "comparison counts into the registry (shadow_comparisons)."),
)
DEFAULTS = {setting.name: setting.default for setting in SETTINGS}
# The settings a sender process needs: the model-server client's, the shadow's, the registry's.
PASSED_PREFIXES = ("MODEL_SERVER_", "SHADOW_")
PASSED_KEYS = ("DATABASE_URL", "DATABASE_TIMEOUT_S", "LOG_LEVEL")
MAX_MESSAGE = 1 << 24  # the largest job a sender process reads (the API's body limit is lower)


def row_classes(answer):
    """Return the predicted class of each row of a TF Serving answer (rows or columns).

    The class name when the answer has one, else the class id; None for an unreadable row.
    """
    if not isinstance(answer, dict):
        return []
    if isinstance(answer.get("predictions"), list):
        return [(row.get("class_name", row.get("class_id")) if isinstance(row, dict) else None)
                for row in answer["predictions"]]
    outputs = answer.get("outputs")
    if isinstance(outputs, dict):
        column = outputs.get("class_name", outputs.get("class_id"))
        if isinstance(column, list):
            return list(column)
    return []


def agreement(primary, shadow):
    """Return (rows, agreed): stable's rows, and those where the shadow predicted the same class."""
    agreed = sum(1 for a, b in zip(primary, shadow) if a is not None and a == b)
    return len(primary), agreed


def bucket_of(seconds):
    """Return the persisted bucket key of a latency."""
    index = bisect.bisect_left(LATENCY_BOUNDS, seconds)
    return INF if index == len(LATENCY_BOUNDS) else repr(LATENCY_BOUNDS[index])


@dataclass
class Tally:
    """Counts of one (model, stable version, shadow version) since the last flush."""

    requests: int = 0
    failed: int = 0
    dropped: int = 0
    rows: int = 0
    agreed: int = 0
    primary_sum: float = 0.0
    shadow_sum: float = 0.0
    primary_buckets: dict = field(default_factory=dict)
    shadow_buckets: dict = field(default_factory=dict)

    def add_latency(self, role, seconds):
        buckets = self.primary_buckets if role == PRIMARY else self.shadow_buckets
        key = bucket_of(seconds)
        buckets[key] = buckets.get(key, 0) + 1
        if role == PRIMARY:
            self.primary_sum += seconds
        else:
            self.shadow_sum += seconds

    def merge(self, other):
        for name in ("requests", "failed", "dropped", "rows", "agreed", "primary_sum",
                     "shadow_sum"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for mine, theirs in ((self.primary_buckets, other.primary_buckets),
                             (self.shadow_buckets, other.shadow_buckets)):
            for key, count in theirs.items():
                mine[key] = mine.get(key, 0) + count


@dataclass(frozen=True)
class Job:
    """One mirrored prediction: the body sent to stable, stable's answer, its upstream time.

    body and primary_answer are the JSON bytes as sent and received; dropped counts the jobs
    the worker could not hand over since its last one (they join this job's tally).
    """

    model: str
    primary_version: int
    shadow_version: int
    body: bytes
    primary_answer: bytes
    primary_seconds: float
    dropped: int = 0

    @property
    def key(self):
        return self.model, self.primary_version, self.shadow_version


def encode(job):
    """Return job as one message: a JSON header line, then the body, then stable's answer."""
    header = orjson.dumps([job.model, job.primary_version, job.shadow_version,
                           job.primary_seconds, job.dropped, len(job.body)])
    return b"".join((header, b"\n", job.body, job.primary_answer))


def decode(message):
    """Return the Job of a message written by :func:`encode` (ValueError when malformed)."""
    header, _, rest = message.partition(b"\n")
    try:
        model, primary, shadow, seconds, dropped, body_length = orjson.loads(header)
    except (orjson.JSONDecodeError, TypeError, ValueError) as error:
        raise ValueError(f"malformed shadow job header: {error}") from None
    return Job(str(model), int(primary), int(shadow), rest[:body_length], rest[body_length:],
               float(seconds), int(dropped))


def sender_settings(config):
    """Return the settings a sender process needs, from the app's config (JSON-safe)."""
    return {key: value for key, value in config.items()
            if key.startswith(PASSED_PREFIXES) or key in PASSED_KEYS}


class Comparer:
    """The bounded queue of mirrored predictions, the thread that sends them, and the tallies.

    engine: a callable returning the registry's SQLAlchemy engine (called at each flush).
    """

    def __init__(self, config, engine):
        setting = lambda name: config.get(name, DEFAULTS[name])  # noqa: E731
        self.engine = engine
        self.queue = queue.Queue(maxsize=int(setting("SHADOW_QUEUE_SIZE")))
        self.flush_interval = float(setting("SHADOW_FLUSH_INTERVAL_S"))
        self.client = upstream.from_config({
            **config, "MODEL_SERVER_READ_TIMEOUT_S": float(setting("SHADOW_TIMEOUT_S")),
            "MODEL_SERVER_MAX_ATTEMPTS": 1, "MODEL_SERVER_MAX_CONCURRENCY": 2})
        self._tallies = {}  # (model, stable version, shadow version) -> Tally, thread-owned
        self._drops = {}  # same keys -> drops counted by the submitting threads
        self._drop_lock = threading.Lock()
        self._stopping = threading.Event()
        self._window_start = utcnow()
        self._thread = threading.Thread(target=self._run, name="tfship-shadow", daemon=True)
        self._thread.start()

    def submit(self, job):
        """Queue job for the sending thread; when the queue is full, drop and count it."""
        if job.dropped:
            self.count_drops(job.key, job.dropped)
        try:
            self.queue.put_nowait(job)
        except queue.Full:
            self.count_drops(job.key, 1)
            return False
        return True

    def count_drops(self, key, count):
        with self._drop_lock:
            self._drops[key] = self._drops.get(key, 0) + count
        metrics.count_shadow_dropped(key[0], key[2], count)

    def _run(self):
        # Not reniced: a low-priority thread that holds the GIL when preempted would stall the
        # threads waiting for it (priority inversion) on a busy machine.
        next_flush = time.monotonic() + self.flush_interval
        while not self._stopping.is_set():
            try:
                job = self.queue.get(timeout=max(0.01, next_flush - time.monotonic()))
            except queue.Empty:
                job = None
            if job is not None:
                try:
                    self._compare(job)
                except Exception:  # never let one bad answer stop the comparisons
                    log.exception("shadow comparison of %s failed", job.model)
            if time.monotonic() >= next_flush:
                self.flush()
                next_flush = time.monotonic() + self.flush_interval

    def _compare(self, job):
        tally = self._tallies.setdefault(job.key, Tally())
        tally.requests += 1
        version = str(job.shadow_version)
        started = time.perf_counter()
        try:
            answer = self.client.predict(job.model, job.body, version=job.shadow_version)
        except Exception as error:  # ApiError from the client; anything else is a failure too
            tally.failed += 1
            metrics.count_shadow_request(job.model, version, getattr(error, "outcome", "error"))
            return
        seconds = time.perf_counter() - started
        try:
            primary = json_codec.loads(job.primary_answer)
        except ValueError:
            primary = None
        rows, agreed = agreement(row_classes(primary), row_classes(answer.data))
        tally.rows, tally.agreed = tally.rows + rows, tally.agreed + agreed
        tally.add_latency(PRIMARY, job.primary_seconds)
        tally.add_latency(SHADOW, seconds)
        metrics.count_shadow_request(job.model, version, upstream.OK)
        metrics.count_shadow_rows(job.model, version, agreed, rows - agreed)
        metrics.observe_shadow_latency(job.model, version, job.primary_seconds, seconds)

    def _take(self):
        """Return and reset the tallies, drops included."""
        tallies, self._tallies = self._tallies, {}
        with self._drop_lock:
            drops, self._drops = self._drops, {}
        for key, count in drops.items():
            tallies.setdefault(key, Tally()).dropped += count
        return tallies

    def flush(self):
        """Insert the counts since the last flush into shadow_comparisons (kept on failure)."""
        tallies = self._take()
        tallies = {k: t for k, t in tallies.items() if t.requests or t.dropped}
        if not tallies:
            return 0
        now, window_start = utcnow(), self._window_start
        try:
            with Session(self.engine()) as session:
                ids = dict(session.execute(sa.select(RegisteredModel.name, RegisteredModel.id)
                                           .where(RegisteredModel.name.in_(
                                               {k[0] for k in tallies}))).all())
                for (model, primary, shadow), tally in tallies.items():
                    if model not in ids:
                        continue  # the model was deleted meanwhile
                    session.add(ShadowComparison(
                        model_id=ids[model], primary_version=primary, shadow_version=shadow,
                        window_start=window_start, window_end=now, requests=tally.requests,
                        failed=tally.failed, dropped=tally.dropped, rows=tally.rows,
                        agreed=tally.agreed, primary_latency_sum_s=tally.primary_sum,
                        shadow_latency_sum_s=tally.shadow_sum,
                        primary_latency_buckets=tally.primary_buckets,
                        shadow_latency_buckets=tally.shadow_buckets))
                session.commit()
        except sa.exc.SQLAlchemyError as error:
            log.warning("cannot store shadow comparisons (%s); keeping them for the next flush",
                        type(error).__name__)
            for key, tally in tallies.items():
                self._tallies.setdefault(key, Tally()).merge(tally)
            return 0
        self._window_start = now
        return len(tallies)

    def close(self, timeout=5.0):
        """Send what is queued (within timeout), stop the thread, flush, close the client."""
        deadline = time.monotonic() + timeout
        if self._thread.is_alive():
            while not self.queue.empty() and time.monotonic() < deadline:
                time.sleep(0.01)
            self._stopping.set()
            self._thread.join(max(0.0, deadline - time.monotonic()))
        try:
            self.flush()
        except Exception:  # at exit, the database may be gone: nothing to do about it
            log.warning("cannot flush shadow comparisons at exit", exc_info=True)
        self.client.close()


def serve(sock):
    """Run a sender process on sock: settings first, then jobs until the worker closes it."""
    config = orjson.loads(sock.recv(MAX_MESSAGE))
    from service import logs
    logs.configure_logging(str(config.get("LOG_LEVEL", "INFO")).upper())
    from service.db import create_db_engine
    engine = create_db_engine(config["DATABASE_URL"],
                              timeout_s=float(config.get("DATABASE_TIMEOUT_S", 5.0)), pool_size=1)
    comparer = Comparer(config, lambda: engine)
    try:
        while True:
            message = sock.recv(MAX_MESSAGE)
            if not message:  # the worker closed its end (it stopped, or died)
                break
            try:
                comparer.submit(decode(message))
            except ValueError:
                log.warning("dropped a malformed shadow job", exc_info=True)
    finally:
        comparer.close(timeout=float(config.get("SHADOW_TIMEOUT_S", 2.0)) * 2 + 1)
        engine.dispose()


def main(argv=None):
    """``python -m service.shadow_sender FD``: FD is the sender's end of the worker's socket."""
    argv = sys.argv[1:] if argv is None else argv
    sock = socket.socket(fileno=int(argv[0]))
    try:
        serve(sock)
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
