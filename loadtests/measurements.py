"""What the gate judges: requests after the warm-up, per version; latency over time; the generator's CPU.

Locust's environment.stats holds the whole run (its CSV and HTML report show it). The gate
judges only what came after the warm-up (--warmup-seconds: users spawning, connections
opening, the API's caches filling), in Locust RequestStats of its own: every request, every
prediction (the SLO's subject), and the predictions of each served version (from the
X-Model-Version response header). It keeps per-second prediction latencies, warm-up included,
for the report's chart; and it measures the load generator's own CPU, so a saturated
generator cannot pass off its queueing as latency.
In distributed mode each worker ships its records to the master with its stats reports
(report_to_master / worker_report), and the master judges the run with every worker's CPU.
"""
import time
from collections import defaultdict
from dataclasses import dataclass, field

import gevent
import psutil
from locust import events
from locust.stats import RequestStats, StatsEntry

from loadtests.protocol import UNKNOWN_VERSION, VERSION_HEADER, is_prediction
from loadtests.verdict import GeneratorLoad

REPORT_KEY = "tfship"  # our part of a worker's report to the master
EVERY_REQUEST, PREDICTIONS, VERSION_PREFIX = "requests", "predictions", "version:"


@dataclass
class Measurements:
    """Everything the request listener and CPU sampler collect during one run."""

    started: float = 0.0
    stopped: float = 0.0
    warmup_s: float = 0.0
    judged: dict = field(default_factory=dict)  # EVERY_REQUEST, PREDICTIONS, VERSION_PREFIX + v -> RequestStats
    latency_ms_by_second: dict = field(default_factory=lambda: defaultdict(list))  # epoch second -> ms
    rollout: dict = field(default_factory=dict)  # the registry's rollout state, when a persona read it
    generator: GeneratorLoad = field(default_factory=GeneratorLoad)
    worker_loads: dict = field(default_factory=dict)  # distributed: worker id -> (mean, peak) CPU
    _cpu_start: float = 0.0
    _sampler: object = None

    @property
    def judged_from(self):
        return self.started + self.warmup_s

    @property
    def duration_s(self):
        """Seconds judged: from the end of the warm-up to the stop."""
        return max((self.stopped or time.time()) - self.judged_from, 1e-9)

    def totals(self, key):
        """The judged StatsEntry of EVERY_REQUEST or PREDICTIONS (empty when nothing was judged)."""
        return self._stats(key).total

    @property
    def by_version(self):
        """Served version -> its judged predictions (a RequestStats)."""
        return {k.removeprefix(VERSION_PREFIX): v for k, v in self.judged.items() if k.startswith(VERSION_PREFIX)}

    def latency_by_run_second(self):
        """Latency samples keyed by seconds since the start of the run."""
        by_run_second, base = defaultdict(list), int(self.started)
        for second, values in self.latency_ms_by_second.items():
            by_run_second[max(0, second - base)].extend(values)
        return by_run_second

    def record(self, method, name, response_time, response, exception):
        """Chart a prediction's latency; after the warm-up, judge the request (and a prediction's version)."""
        now, prediction = time.time(), is_prediction(name)
        if prediction:
            self.latency_ms_by_second[int(now)].append(response_time)
        if not self.started or now < self.judged_from:
            return
        keys = [EVERY_REQUEST]
        if prediction:
            version = (response.headers.get(VERSION_HEADER) if response is not None else None) or UNKNOWN_VERSION
            keys += [PREDICTIONS, VERSION_PREFIX + version]
        for key in keys:
            stats = self._stats(key)
            stats.log_request(method, name, response_time, 0)
            if exception is not None:
                stats.log_error(method, name, exception)

    def start(self, warmup_s):
        self.started, self.warmup_s = time.time(), warmup_s
        process = psutil.Process()
        self._cpu_start = sum(process.cpu_times()[:2])
        process.cpu_percent(None)  # primes the per-sample counter
        self._sampler = gevent.spawn(self._sample_cpu, process)

    def stop(self, runner):
        self.stopped = time.time()
        if self._sampler is not None:
            self._sampler.kill(block=False)
        load = self.generator
        load.mean = self._mean_cpu()
        load.peak = max(load.samples, default=load.mean)
        # Distributed: the busiest process decides whether the load was honest.
        for mean, peak in self.worker_loads.values():
            load.mean, load.peak = max(load.mean, mean), max(load.peak, peak)
        load.locust_warned = bool(getattr(runner, "cpu_warning_emitted", False)
                                  or getattr(runner, "worker_cpu_warning_emitted", False))

    def drain(self):
        """A worker's records since its last report, serialised; its own copies start afresh."""
        shipped = {"judged": {k: s.total.serialize() for k, s in self.judged.items()},
                   "latency": {str(k): v for k, v in self.latency_ms_by_second.items()},
                   "cpu": (self._mean_cpu(), max(self.generator.samples, default=0.0)), "rollout": self.rollout}
        self.judged, self.latency_ms_by_second = {}, defaultdict(list)
        return shipped

    def merge(self, worker, shipped):
        """On the master: add a worker's records."""
        for key, serialised in shipped["judged"].items():
            stats = self._stats(key)
            stats.total.extend(StatsEntry.unserialize(serialised, stats))
        for second, values in shipped["latency"].items():
            self.latency_ms_by_second[int(second)].extend(values)
        self.worker_loads[worker] = tuple(shipped["cpu"])
        self.rollout = shipped["rollout"] or self.rollout

    def _stats(self, key):
        return self.judged.setdefault(key, RequestStats(use_response_times_cache=False))

    def _mean_cpu(self):
        if not self.started:
            return 0.0
        return (sum(psutil.Process().cpu_times()[:2]) - self._cpu_start) / max(time.time() - self.started, 1e-9)

    def _sample_cpu(self, process):
        while True:
            gevent.sleep(1.0)
            self.generator.samples.append(process.cpu_percent(None) / 100)


_current = Measurements()  # the request event carries no environment; one Locust process runs one test


def current():
    """The Measurements of the run in progress."""
    return _current


@events.init.add_listener
def _attach(environment, **_kwargs):
    """Give the environment a fresh Measurements for this run (environment.tfship)."""
    global _current
    _current = environment.tfship = Measurements()


@events.test_start.add_listener
def _start(environment, **_kwargs):
    parsed = environment.parsed_options
    environment.tfship.start(parsed.warmup_seconds if parsed is not None else 0.0)


@events.test_stop.add_listener
def _stop(environment, **_kwargs):
    environment.tfship.stop(environment.runner)


@events.request.add_listener
def _record(request_type, name, response_time, response=None, exception=None, **_kwargs):
    """Hand every request to the run's records."""
    _current.record(request_type, name, response_time, response, exception)


@events.report_to_master.add_listener
def _ship(client_id, data, **_kwargs):
    """On a worker: attach the records gathered since the last report."""
    data[REPORT_KEY] = _current.drain()


@events.worker_report.add_listener
def _receive(client_id, data, **_kwargs):
    """On the master: merge a worker's records."""
    if REPORT_KEY in data:
        _current.merge(client_id, data[REPORT_KEY])
