"""Shadow mode: mirror a share of stable's predictions to a shadow version, off the request path.

The rollout state may name a shadow version and a share (0..1, 0: paused) of stable's traffic. After
stable's answer is ready, :func:`mirror` picks a deterministic share of calls (call n of a
model is mirrored when floor((n+1)·share) > floor(n·share): exactly share·N of N calls, no
randomness) and, once the response is sent, puts the validated body with stable's answer on
a bounded queue. It never blocks, never raises and touches no metric unless the queue is full
(the job is then dropped and counted). The request path pays a dict lookup when no shadow is
set, and a counter step and two callbacks (then ``Queue.put_nowait``) when one is.

One daemon thread per worker process sends each job to the shadow version (pinned by
version, with its own client: own connection pool, breaker, short timeout, no retry, so a
failing shadow never touches stable's breaker or slots), compares the
predicted class row by row and the latency (shadow call vs stable's upstream call), records
Prometheus metrics, and every SHADOW_FLUSH_INTERVAL_S inserts its counts into the registry's
``shadow_comparisons`` table (one row per model, stable and shadow version per window: rows
are only inserted, so workers never contend on a row). ``GET .../rollout/shadow`` and
``tfship rollout shadow status`` sum them, so the comparison outlives restarts.
"""
import atexit
import bisect
import itertools
import json
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask import after_this_request, current_app
from sqlalchemy.orm import Session

from service import db, metrics, upstream
from service.settings import Setting
from service.tables import RegisteredModel, ShadowComparison, utcnow

EXTENSION = "tfship_shadow"
AGREE, DISAGREE, DROPPED = "agree", "disagree", "dropped"
PRIMARY, SHADOW = "primary", "shadow"
# Latency bounds (seconds) of the persisted comparison: finer than the API's at the low end,
# where model calls are. Stored per bucket as {"<bound>": count, "+Inf": count}.
LATENCY_BOUNDS = (0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015,
                  0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
INF = "+Inf"
log = logging.getLogger(__name__)

SETTINGS = (
    Setting("SHADOW_QUEUE_SIZE", 64, "Mirrored predictions waiting per worker process for the "
            "shadow version; when full, new ones are dropped and counted "
            "(tfship_shadow_dropped_total), never waited for."),
    Setting("SHADOW_TIMEOUT_S", 2.0, "Seconds a shadow call may take before it counts as a "
            "timeout (the client's answer never waits for it)."),
    Setting("SHADOW_FLUSH_INTERVAL_S", 10.0, "Seconds between a worker's inserts of its shadow "
            "comparison counts into the registry (shadow_comparisons)."),
)


def _setting(config, name):
    return config.get(name, next(s.default for s in SETTINGS if s.name == name))


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
    """One mirrored prediction: the body stable answered, its classes and upstream time."""

    model: str
    primary_version: int
    shadow_version: int
    body: object
    primary_answer: object
    primary_seconds: float


class Mirror:
    """A worker process's shadow sender: the bounded queue, its thread and the tallies."""

    def __init__(self, app):
        config = app.config
        self.app = app
        self.queue = queue.Queue(maxsize=int(_setting(config, "SHADOW_QUEUE_SIZE")))
        self.flush_interval = float(_setting(config, "SHADOW_FLUSH_INTERVAL_S"))
        self.client = upstream.from_config({
            **config, "MODEL_SERVER_READ_TIMEOUT_S": float(_setting(config, "SHADOW_TIMEOUT_S")),
            "MODEL_SERVER_MAX_ATTEMPTS": 1, "MODEL_SERVER_MAX_CONCURRENCY": 2})
        self._calls = {}  # model -> itertools.count: the deterministic share
        self._tallies = {}  # (model, stable version, shadow version) -> Tally, thread-owned
        self._drops = {}  # same keys -> drops counted on request threads
        self._drop_lock = threading.Lock()
        self._thread_lock = threading.Lock()
        self._thread = None
        self._pid = None
        self._stopping = threading.Event()
        self._window_start = utcnow()

    # --- the request path -----------------------------------------------------------------

    def picks(self, model, share):
        """Return whether this call of model falls in the share (exactly share·N of N calls)."""
        counter = self._calls.get(model)
        if counter is None:
            counter = self._calls.setdefault(model, itertools.count())
        n = next(counter)  # atomic under the GIL: threads never get the same n
        return int((n + 1) * share) != int(n * share)

    def put(self, job):
        """Queue job for the shadow thread; when the queue is full, drop and count it."""
        if self._thread is None or self._pid != os.getpid():
            self._start()
        try:
            self.queue.put_nowait(job)
        except queue.Full:
            key = (job.model, job.primary_version, job.shadow_version)
            with self._drop_lock:
                self._drops[key] = self._drops.get(key, 0) + 1
            metrics.count_shadow_dropped(job.model, job.shadow_version)
            return False
        return True

    # --- the shadow thread ----------------------------------------------------------------

    def _start(self):
        with self._thread_lock:
            if self._thread is not None and self._pid == os.getpid():
                return
            self._pid, self._stopping = os.getpid(), threading.Event()
            self._thread = threading.Thread(target=self._run, name="tfship-shadow", daemon=True)
            self._thread.start()
            atexit.register(self.close)

    def _run(self):
        # Not reniced: a low-priority thread that holds the GIL when preempted would stall the
        # request threads waiting for it (priority inversion) on a busy machine.
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
        key = (job.model, job.primary_version, job.shadow_version)
        tally = self._tallies.setdefault(key, Tally())
        tally.requests += 1
        version = str(job.shadow_version)
        body = job.body if isinstance(job.body, bytes) else json.dumps(job.body).encode()
        started = time.perf_counter()
        try:
            answer = self.client.predict(job.model, body, version=job.shadow_version)
        except Exception as error:  # ApiError from the client; anything else is a failure too
            tally.failed += 1
            metrics.count_shadow_request(job.model, version, getattr(error, "outcome", "error"))
            return
        seconds = time.perf_counter() - started
        rows, agreed = agreement(row_classes(job.primary_answer), row_classes(answer.data))
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
            with Session(db.engine(self.app)) as session:
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
        """Stop the thread after the queued jobs, then flush (tests, and at process exit)."""
        thread = self._thread
        if thread is not None and thread.is_alive() and self._pid == os.getpid():
            deadline = time.monotonic() + timeout
            while not self.queue.empty() and time.monotonic() < deadline:
                time.sleep(0.01)
            self._stopping.set()
            thread.join(max(0.0, deadline - time.monotonic()))
        self._thread = None
        try:
            self.flush()
        except Exception:  # at exit, the database may be gone: nothing to do about it
            log.warning("cannot flush shadow comparisons at exit", exc_info=True)
        self.client.close()


def mirror_of(app):
    """Return the app's Mirror, built on first use (in the worker, after the fork)."""
    found = app.extensions.get(EXTENSION)
    if found is None:
        with _lock:
            found = app.extensions.get(EXTENSION)
            if found is None:
                found = app.extensions[EXTENSION] = Mirror(app)
    return found


_lock = threading.Lock()


def mirror(model, rollout, route, body, answer, primary_seconds):
    """The gateway's hook, called once stable's answer is ready: mirror it when a shadow is set.

    rollout: the cached rollout state (None for a pinned version); route: the Route that
    served; answer: stable's parsed answer; primary_seconds: stable's upstream call time.
    The job is queued only once the response has been sent (``call_on_close``), so the
    shadow thread never competes with this request for the GIL while it is answered.
    """
    if rollout is None:
        return False
    shadow = rollout.get("shadow")
    if shadow is None or route.label != "stable" or shadow == route.version:
        return False
    try:
        share = min(float(rollout.get("shadow_share") or 0.0), 1.0)
        if share <= 0.0:
            return False
        found = mirror_of(current_app._get_current_object())
        if not found.picks(model, share):
            return False
        job = Job(model, route.version, int(shadow), body, answer, primary_seconds)

        def after_sending(response):
            if response.status_code == 200:
                response.call_on_close(lambda: found.put(job))
            return response

        after_this_request(after_sending)
        return True
    except Exception:  # shadow mode must never cost a caller its answer
        log.exception("shadow mirror of %s failed", model)
        return False


# --- the report ---------------------------------------------------------------------------

def quantile(buckets, q):
    """Return the upper bound of the bucket holding quantile q of {bound: count} (None: empty)."""
    total = sum(buckets.values())
    if total == 0:
        return None
    rank, seen = q * total, 0
    for key in sorted(buckets, key=lambda k: float("inf") if k == INF else float(k)):
        seen += buckets[key]
        if seen >= rank:
            break
    # The top bucket has no upper bound: its values are reported as the largest bound.
    return LATENCY_BOUNDS[-1] if key == INF else float(key)


def _latency(total, buckets, count):
    if count == 0:
        return {"count": 0, "mean_s": None, "p50_s": None, "p95_s": None, "p99_s": None}
    return {"count": count, "mean_s": total / count,
            **{f"p{int(q * 100)}_s": quantile(buckets, q) for q in (0.5, 0.95, 0.99)}}


def summarise(rows):
    """Sum comparison rows (one stable/shadow pair) into the reported comparison."""
    tally, first, last = Tally(), None, None
    for row in rows:
        tally.merge(Tally(row.requests, row.failed, row.dropped, row.rows, row.agreed,
                          row.primary_latency_sum_s, row.shadow_latency_sum_s,
                          dict(row.primary_latency_buckets), dict(row.shadow_latency_buckets)))
        first = row.window_start if first is None else min(first, row.window_start)
        last = row.window_end if last is None else max(last, row.window_end)
    compared = tally.requests - tally.failed
    return {"requests": tally.requests, "failed": tally.failed, "dropped": tally.dropped,
            "compared": compared, "rows": tally.rows, "agreed": tally.agreed,
            "agreement_rate": tally.agreed / tally.rows if tally.rows else None,
            "primary_latency": _latency(tally.primary_sum, tally.primary_buckets, compared),
            "shadow_latency": _latency(tally.shadow_sum, tally.shadow_buckets, compared),
            "since": first, "until": last}
