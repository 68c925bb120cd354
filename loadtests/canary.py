"""Canary against stable: per-version error ratio, median and p95 from the X-Model-Version answers."""
from dataclasses import dataclass

from loadtests.protocol import UNKNOWN_VERSION

LATENCY_SLACK_S = 0.025  # ratios of small latencies are noise: one scheduler hiccup is ~10-20 ms


@dataclass(frozen=True)
class VersionStats:
    """One version's prediction results."""

    version: str
    requests: int
    errors: int
    p50_s: float
    p95_s: float
    p99_s: float

    @property
    def error_ratio(self):
        return self.errors / self.requests if self.requests else 0.0

    @classmethod
    def from_request_stats(cls, version, request_stats):
        """Summarise one version's Locust RequestStats."""
        total = request_stats.total
        return cls(version, total.num_requests, total.num_failures,
                   *(total.get_response_time_percentile(p) / 1000 for p in (0.5, 0.95, 0.99)))


@dataclass(frozen=True)
class Tolerances:
    """How much worse than stable a canary may be."""

    max_error_delta: float = 0.01
    max_latency_ratio: float = 1.5
    min_samples: int = 50


@dataclass(frozen=True)
class CanaryResult:
    """PASS, FAIL, INCONCLUSIVE (too few samples of a version) or NONE (one version served)."""

    outcome: str
    stable: VersionStats | None
    canary: VersionStats | None
    reasons: tuple = ()

    def summary(self):
        if self.outcome == "NONE":
            return "CANARY: NONE (one version served)"
        head = f"CANARY: {self.outcome} (canary v{self.canary.version} vs stable v{self.stable.version})"
        return head + ("; " + "; ".join(self.reasons) if self.reasons else "")


def compare(versions, rollout, tolerances):
    """Pick stable and canary among VersionStats (the registry's rollout, else by traffic) and compare them."""
    stats = {s.version: s for s in versions if s.version != UNKNOWN_VERSION}
    if len(stats) < 2:
        return CanaryResult("NONE", next(iter(stats.values()), None), None)
    stable_id, canary_id = _roles(stats, rollout)
    stable, canary = stats[stable_id], stats[canary_id]
    too_few = [f"v{s.version} has {s.requests} predictions < {tolerances.min_samples}"
               for s in (stable, canary) if s.requests < tolerances.min_samples]
    if too_few:
        return CanaryResult("INCONCLUSIVE", stable, canary, tuple(too_few))
    reasons = []
    if canary.error_ratio > stable.error_ratio + tolerances.max_error_delta:
        reasons.append(f"error ratio {canary.error_ratio:.4f} > stable {stable.error_ratio:.4f} "
                       f"+ {tolerances.max_error_delta}")
    # The median as well as p95: one stall on the stable side inflates its p95 and would hide a slow canary.
    for name in ("p50", "p95"):
        measured, baseline = getattr(canary, f"{name}_s"), getattr(stable, f"{name}_s")
        if measured > baseline * tolerances.max_latency_ratio + LATENCY_SLACK_S:
            reasons.append(f"{name} {measured * 1000:.0f} ms > {tolerances.max_latency_ratio} x stable "
                           f"{baseline * 1000:.0f} ms + {LATENCY_SLACK_S * 1000:.0f} ms")
    return CanaryResult("FAIL" if reasons else "PASS", stable, canary, tuple(reasons))


def _roles(stats, rollout):
    stable, canary = str(rollout.get("stable")), str(rollout.get("canary"))
    if stable in stats and canary in stats:
        return stable, canary
    by_traffic = sorted(stats, key=lambda v: stats[v].requests, reverse=True)
    return by_traffic[0], by_traffic[1]
