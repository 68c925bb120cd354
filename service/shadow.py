"""Shadow mode: mirror a share of stable's predictions to a shadow version, off the request path.

The rollout state may name a shadow version and a share (0..1, 0: paused) of stable's traffic. After
stable's answer is ready, :func:`mirror` picks a deterministic share of calls (call n of a
model is mirrored when floor((n+1)·share) > floor(n·share): exactly share·N of N calls, no
randomness) and, once the response is sent, hands the bytes sent to stable and stable's answer
to the sender (service/shadow_sender.py), which calls the shadow, compares and stores the
comparison in the registry's ``shadow_comparisons`` table. ``GET .../rollout/shadow`` and
``tfship rollout shadow status`` sum them, so the comparison outlives restarts.

The request path pays a dict lookup when no shadow is set, and a counter step and two
callbacks when one is. Where the sender runs (SHADOW_SENDER):
- ``process`` (``auto`` under gunicorn, where PROMETHEUS_MULTIPROC_DIR gathers every process's
  metrics): each worker starts one sender process on its first mirrored call and hands it each
  job with one non-blocking send on a Unix SEQPACKET socket (microseconds, no thread). The
  sender's CPU (HTTP call, JSON, comparison, metrics) never competes with the worker's requests
  for the GIL: in a thread of the worker it did, and cost the primary p99 more than 1 ms on 2
  cores. When the socket is full or the sender is gone, the job is dropped and counted (the
  next job carries the count into the comparison); a dead sender is restarted.
- ``thread`` (``auto`` otherwise: ``flask run``, tests): the sender runs in a thread of the
  process, whose metrics registry it shares.
It never blocks, never raises and touches no metric unless a job is dropped.
"""
import atexit
import dataclasses
import itertools
import logging
import os
import socket
import subprocess
import sys
import threading
import time

import orjson
from flask import after_this_request, current_app

from service import db, metrics, shadow_sender
from service.settings import Setting
from service.shadow_sender import (INF, LATENCY_BOUNDS, Comparer, Job, Tally, encode,
                                   sender_settings)

EXTENSION = "tfship_shadow"
AGREE, DISAGREE, DROPPED = "agree", "disagree", "dropped"
SENDERS = ("auto", "process", "thread")
SOCKET_BUFFER_BYTES = 4 << 20  # asked for; the kernel caps it (net.core.wmem_max)
RESTART_INTERVAL_S = 5.0  # a sender that died is restarted at most this often
log = logging.getLogger(__name__)

SETTINGS = shadow_sender.SETTINGS + (
    Setting("SHADOW_SENDER", "auto", "Where a worker's shadow calls run: process (a sender "
            "process beside the worker, off its GIL; ~56 MiB each, started on the worker's "
            "first mirrored call), thread (a thread of the worker), or auto (process when "
            "PROMETHEUS_MULTIPROC_DIR is set, as under gunicorn; else thread)."),
)


def _setting(config, name):
    return config.get(name, next(s.default for s in SETTINGS if s.name == name))


class ThreadSender:
    """Jobs go to a Comparer in a thread of this process."""

    def __init__(self, app):
        self.comparer = Comparer(app.config, lambda: db.engine(app))

    def send(self, job):
        return self.comparer.submit(job)

    def close(self, timeout=5.0):
        self.comparer.close(timeout)


class ProcessSender:
    """Jobs go, one non-blocking send each, to a sender process started on first use."""

    def __init__(self, app):
        self.settings = sender_settings(app.config)
        self.process = None
        self.sock = None
        self.dropped = {}  # (model, stable, shadow) -> jobs not handed over since the last one
        self._lock = threading.Lock()
        self._started_at = float("-inf")

    def _start(self):
        """Start the sender process (under the lock); False while a restart must wait."""
        if time.monotonic() - self._started_at < RESTART_INTERVAL_S:
            return False
        self._started_at = time.monotonic()
        self._stop_process(timeout=0)
        _orphans[:] = [process for process in _orphans if process.poll() is None]
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER_BYTES)
            ours.sendall(orjson.dumps(self.settings, default=str))  # first: the settings
            ours.setblocking(False)
            self.process = subprocess.Popen(
                [sys.executable, "-m", "service.shadow_sender", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, close_fds=True)
        except OSError:
            ours.close()
            log.exception("cannot start the shadow sender process")
            return False
        finally:
            theirs.close()
        self.sock = ours
        log.info("shadow sender process %d started for worker %d", self.process.pid, os.getpid())
        return True

    def send(self, job):
        key = job.key
        with self._lock:
            if self.sock is None and not self._start():
                return self._drop(key)
            dropped = self.dropped.pop(key, 0)
            try:
                self.sock.send(encode(dataclasses.replace(job, dropped=dropped) if dropped else job))
            except (BlockingIOError, OSError) as error:
                self.dropped[key] = dropped
                if not isinstance(error, BlockingIOError):  # the sender is gone: restart it
                    log.warning("shadow sender process gone (%s); restarting it",
                                type(error).__name__)
                    self.sock.close()
                    self.sock = None
                return self._drop(key)
        return True

    def _drop(self, key):
        self.dropped[key] = self.dropped.get(key, 0) + 1
        metrics.count_shadow_dropped(key[0], key[2])
        return False

    def _stop_process(self, timeout):
        if self.sock is not None:
            self.sock.close()  # the sender sends what it has, flushes and exits
            self.sock = None
        if self.process is not None:
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                if timeout:
                    self.process.kill()
                    self.process.wait(5)
                else:  # restarting: the old one finishes on its own; reap it later
                    _orphans.append(self.process)
            self.process = None

    def close(self, timeout=5.0):
        """Close the socket and wait for the sender to send, flush and exit."""
        with self._lock:
            self._stop_process(timeout)


_orphans = []  # replaced senders still finishing their queue, reaped at the next start


class Mirror:
    """A worker process's side of shadow mode: the deterministic share and the sender."""

    def __init__(self, app):
        self.app = app
        choice = str(_setting(app.config, "SHADOW_SENDER")).lower()
        if choice not in SENDERS:
            raise ValueError(f"SHADOW_SENDER must be one of {', '.join(SENDERS)}, not {choice!r}")
        if choice == "auto":
            choice = "process" if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else "thread"
        self.kind = choice
        self._calls = {}  # model -> itertools.count: the deterministic share
        self._sender = None
        self._pid = None
        self._lock = threading.Lock()

    def picks(self, model, share):
        """Return whether this call of model falls in the share (exactly share·N of N calls)."""
        counter = self._calls.get(model)
        if counter is None:
            counter = self._calls.setdefault(model, itertools.count())
        n = next(counter)  # atomic under the GIL: threads never get the same n
        return int((n + 1) * share) != int(n * share)

    @property
    def sender(self):
        """This process's sender, built on first use (in the worker, after the fork)."""
        if self._sender is None or self._pid != os.getpid():
            with self._lock:
                if self._sender is None or self._pid != os.getpid():
                    self._sender = (ProcessSender if self.kind == "process"
                                    else ThreadSender)(self.app)
                    self._pid = os.getpid()
                    atexit.register(self.close)
        return self._sender

    def put(self, job):
        """Hand job to the sender; when it cannot take it now, drop and count it."""
        return self.sender.send(job)

    def close(self, timeout=10.0):
        """Send what is queued, flush the comparison and stop the sender (tests, at exit)."""
        sender, self._sender = self._sender, None
        if sender is not None and self._pid == os.getpid():
            sender.close(timeout)


def mirror_of(app):
    """Return the app's Mirror, built on first use."""
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
    served; body: the JSON bytes sent to stable; answer: stable's answer (JSON bytes);
    primary_seconds: stable's upstream call time. The job is handed over only once the
    response has been sent (``call_on_close``), so its cost never delays this answer.
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
