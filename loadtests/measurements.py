"""What the gate measures beyond Locust's own stats: per-version predictions, latency over time, CPU.

Locust's environment.stats has the totals. This module adds, for prediction requests only
(the SLO's subject), one Locust RequestStats per served version (from the X-Model-Version
response header) and per-second latency samples for the report's chart; and it measures the
load generator's own CPU, so a saturated generator cannot pass off its queueing as latency.
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


@dataclass
class Measurements:
    """Everything the request listener and CPU sampler collect during one run."""

    started: float = 0.0
    stopped: float = 0.0
    by_version: dict = field(default_factory=dict)  # version -> RequestStats; its .total is the version's
    latency_ms_by_second: dict = field(default_factory=lambda: defaultdict(list))  # epoch second -> ms
    rollout: dict = field(default_factory=dict)  # the registry's rollout state, when a persona read it
    generator: GeneratorLoad = field(default_factory=GeneratorLoad)
    worker_loads: dict = field(default_factory=dict)  # distributed: worker id -> (mean, peak) CPU
    _cpu_start: float = 0.0
    _sampler: object = None

    @property
    def duration_s(self):
        return max((self.stopped or time.time()) - self.started, 1e-9)

    def latency_by_run_second(self):
        """Latency samples keyed by seconds since the start of the run."""
        by_run_second, base = defaultdict(list), int(self.started)
        for second, values in self.latency_ms_by_second.items():
            by_run_second[max(0, second - base)].extend(values)
        return by_run_second

    def record(self, method, response_time, response, exception):
        """Log one prediction under the version that served it, and in its second."""
        version = (response.headers.get(VERSION_HEADER) if response is not None else None) or UNKNOWN_VERSION
        stats = self._version(version)
        stats.log_request(method, "predict", response_time, 0)
        if exception is not None:
            stats.log_error(method, "predict", exception)
        self.latency_ms_by_second[int(time.time())].append(response_time)

    def start(self):
        self.started = time.time()
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
        shipped = {"versions": {v: s.total.serialize() for v, s in self.by_version.items()},
                   "latency": {str(k): v for k, v in self.latency_ms_by_second.items()},
                   "cpu": (self._mean_cpu(), max(self.generator.samples, default=0.0)), "rollout": self.rollout}
        self.by_version, self.latency_ms_by_second = {}, defaultdict(list)
        return shipped

    def merge(self, worker, shipped):
        """On the master: add a worker's records."""
        for version, serialised in shipped["versions"].items():
            stats = self._version(version)
            stats.total.extend(StatsEntry.unserialize(serialised, stats))
        for second, values in shipped["latency"].items():
            self.latency_ms_by_second[int(second)].extend(values)
        self.worker_loads[worker] = tuple(shipped["cpu"])
        self.rollout = shipped["rollout"] or self.rollout

    def _version(self, version):
        return self.by_version.setdefault(version, RequestStats(use_response_times_cache=False))

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
    environment.tfship.start()


@events.test_stop.add_listener
def _stop(environment, **_kwargs):
    environment.tfship.stop(environment.runner)


@events.request.add_listener
def _record(request_type, name, response_time, response=None, exception=None, **_kwargs):
    """Route prediction requests into the per-version and per-second records."""
    if is_prediction(name):
        _current.record(request_type, response_time, response, exception)


@events.report_to_master.add_listener
def _ship(client_id, data, **_kwargs):
    """On a worker: attach the records gathered since the last report."""
    data[REPORT_KEY] = _current.drain()


@events.worker_report.add_listener
def _receive(client_id, data, **_kwargs):
    """On the master: merge a worker's records."""
    if REPORT_KEY in data:
        _current.merge(client_id, data[REPORT_KEY])
