"""Judge one load-test run against a profile's gate: the objectives, the sample count, the generator.

Pure functions over measured numbers, so the rules are tested without running Locust.
"""
from dataclasses import dataclass, field


PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"
EXIT_CODES = {PASS: 0, FAIL: 1, INCONCLUSIVE: 3}
EXIT_UNTRUSTWORTHY = 4  # a FAIL because the load generator saturated: its latencies are its own queueing


@dataclass
class GeneratorLoad:
    """The load generator's CPU use, as a share of one core."""

    mean: float = 0.0
    peak: float = 0.0
    samples: list = field(default_factory=list)
    locust_warned: bool = False  # Locust's own >90% CPU warning fired


@dataclass(frozen=True)
class Measured:
    """What one run measured: predictions (the SLO's subject), every request, the generator's CPU."""

    predictions: int
    prediction_failures: int
    p95_s: float
    p99_s: float
    requests: int
    failures: int
    duration_s: float
    generator: GeneratorLoad = field(default_factory=GeneratorLoad)
    over_p95_objective: int = 0  # predictions slower than the p95 objective
    over_p99_objective: int = 0

    @property
    def error_ratio(self):
        return self.prediction_failures / self.predictions if self.predictions else 0.0

    @property
    def all_error_ratio(self):
        return self.failures / self.requests if self.requests else 0.0

    @property
    def throughput_rps(self):
        return self.predictions / self.duration_s if self.duration_s > 0 else 0.0


@dataclass(frozen=True)
class Check:
    """One objective against what was measured."""

    name: str
    objective: str
    measured: str
    passed: bool


@dataclass(frozen=True)
class Verdict:
    outcome: str
    exit_code: int
    profile: str
    checks: tuple
    reasons: tuple
    trustworthy: bool
    canary: object = None
    gate: object = None  # the profile's thresholds (monitoring.slo.Gate)

    @property
    def line(self):
        """The one line that ends every gate run."""
        why = "; ".join(self.reasons) if self.reasons else "every objective met"
        checks = {c.name: c.measured for c in self.checks}
        return (f"SLO GATE: {self.outcome} [profile {self.profile}] {why} | {checks['samples']} predictions, "
                f"p95 {checks['p95']}, p99 {checks['p99']}, errors {checks['error ratio']}, "
                f"{checks['throughput']}, generator CPU {checks['generator CPU']}"
                + (f" | {self.canary.summary()}" if self.canary is not None else ""))


def evaluate(gate, profile, measured, max_generator_cpu, canary=None):
    """Return the verdict: untrustworthy generator > too few samples (unless a breach is already
    certain) > any breach > canary > pass."""
    load = measured.generator
    checks = (
        Check("samples", f">= {gate.min_samples}", f"{measured.predictions}",
              measured.predictions >= gate.min_samples),
        Check("p95", f"<= {_ms(gate.p95_seconds)}", _ms(measured.p95_s), measured.p95_s <= gate.p95_seconds),
        Check("p99", f"<= {_ms(gate.p99_seconds)}", _ms(measured.p99_s), measured.p99_s <= gate.p99_seconds),
        Check("error ratio", f"<= {gate.max_error_ratio:g}", f"{measured.error_ratio:.4f}",
              measured.error_ratio <= gate.max_error_ratio),
        Check("error ratio, all requests", f"<= {gate.max_error_ratio:g}", f"{measured.all_error_ratio:.4f}",
              measured.all_error_ratio <= gate.max_error_ratio),
        Check("throughput", f">= {gate.min_throughput_rps:g} rps", f"{measured.throughput_rps:.1f} rps",
              measured.throughput_rps >= gate.min_throughput_rps),
        Check("generator CPU", f"<= {max_generator_cpu:.0%} of a core",
              f"{load.mean:.0%} (peak {load.peak:.0%})", load.mean <= max_generator_cpu and not load.locust_warned),
    )
    failed = {c.name: c for c in checks if not c.passed}
    reasons = tuple(f"{c.name} {c.measured} breaches {c.objective}" for c in checks if not c.passed)
    trustworthy = "generator CPU" not in failed
    if not trustworthy:
        outcome = FAIL
        reasons = ("UNTRUSTWORTHY: the load generator saturated (" + failed["generator CPU"].measured
                   + (", Locust warned of high CPU" if load.locust_warned else "") + ")",) + reasons
    elif "samples" in failed:
        certain = _certain_breaches(gate, measured)
        outcome = FAIL if certain else INCONCLUSIVE
        reasons = certain or (f"too few samples: {measured.predictions} predictions < {gate.min_samples}",)
    elif failed or (canary is not None and canary.outcome == FAIL):
        outcome = FAIL
        reasons += ("the canary is worse than stable",) if canary is not None and canary.outcome == FAIL else ()
    elif canary is not None and canary.outcome == INCONCLUSIVE:
        outcome, reasons = INCONCLUSIVE, ("too few predictions to compare the canary",)
    else:
        outcome = PASS
    code = EXIT_UNTRUSTWORTHY if not trustworthy else EXIT_CODES[outcome]
    return Verdict(outcome, code, profile, checks, reasons, trustworthy, canary, gate)


def _certain_breaches(gate, measured):
    """Breaches that no further good predictions could undo before the minimum sample count: a
    service too slow or failing to deliver enough samples fails rather than being inconclusive."""
    bad_counts = (("error ratio", measured.prediction_failures, gate.max_error_ratio),
                  ("p95", measured.over_p95_objective, 0.05), ("p99", measured.over_p99_objective, 0.01))
    return tuple(f"{name} breached already: {count} bad of {measured.predictions} predictions exceeds "
                 f"{share:g} x the {gate.min_samples} minimum samples"
                 for name, count, share in bad_counts if count > share * gate.min_samples)


def _ms(seconds):
    return f"{seconds * 1000:.0f} ms"
