"""The gate's rules over measured numbers. Budget: < 1 s."""
import dataclasses

import pytest

from loadtests.canary import CanaryResult
from loadtests.verdict import EXIT_UNTRUSTWORTHY, GeneratorLoad, Measured, evaluate
from monitoring import slo

GATE = slo.load("test").gate
HEALTHY = Measured(predictions=150, prediction_failures=0, p95_s=0.02, p99_s=0.05, requests=170, failures=0,
                   duration_s=7.0, generator=GeneratorLoad(mean=0.05, peak=0.1))


def judge(canary=None, **changes):
    return evaluate(GATE, "test", dataclasses.replace(HEALTHY, **changes), 0.9, canary)


def test_the_gate_reads_its_thresholds_from_the_slo_file():
    assert (GATE.p95_seconds, GATE.p99_seconds, GATE.max_error_ratio, GATE.min_samples) == (0.25, 0.5, 0.01, 100)


def test_a_healthy_run_passes_with_one_verdict_line():
    verdict = judge()
    assert (verdict.outcome, verdict.exit_code) == ("PASS", 0)
    assert verdict.line.startswith("SLO GATE: PASS [profile test] every objective met | 150 predictions, p95 20 ms")


@pytest.mark.parametrize("changes, breached", [
    (dict(p95_s=0.3), "p95 300 ms breaches <= 250 ms"),
    (dict(p99_s=0.6), "p99 600 ms breaches <= 500 ms"),
    (dict(prediction_failures=3, failures=3), "error ratio 0.0200 breaches <= 0.01"),
    (dict(failures=5), "error ratio, all requests 0.0294 breaches <= 0.01"),
    (dict(duration_s=60.0), "throughput 2.5 rps breaches >= 5 rps"),
])
def test_each_breach_fails_and_is_named(changes, breached):
    verdict = judge(**changes)
    assert (verdict.outcome, verdict.exit_code) == ("FAIL", 1)
    assert breached in verdict.line


def test_too_few_samples_is_inconclusive_while_more_good_ones_could_still_pass():
    verdict = judge(predictions=60, p95_s=0.5, over_p95_objective=5, prediction_failures=1, failures=1)
    assert (verdict.outcome, verdict.exit_code) == ("INCONCLUSIVE", 3)
    assert "too few samples: 60 predictions < 100" in verdict.line


@pytest.mark.parametrize("changes, certain", [
    (dict(over_p95_objective=6), "p95 breached already: 6 bad of 60 predictions exceeds 0.05 x the 100"),
    (dict(over_p99_objective=2), "p99 breached already: 2 bad of 60"),
    (dict(prediction_failures=2, failures=2), "error ratio breached already: 2 bad of 60"),
])
def test_too_few_samples_fail_when_the_breach_is_already_certain(changes, certain):
    verdict = judge(predictions=60, **changes)
    assert (verdict.outcome, verdict.exit_code) == ("FAIL", 1)
    assert certain in verdict.line


def test_a_saturated_generator_fails_the_run_as_untrustworthy():
    verdict = judge(generator=GeneratorLoad(mean=0.95, peak=1.0))
    assert (verdict.outcome, verdict.exit_code, verdict.trustworthy) == ("FAIL", EXIT_UNTRUSTWORTHY, False)
    assert "UNTRUSTWORTHY: the load generator saturated (95% (peak 100%))" in verdict.line
    locust_warned = judge(generator=GeneratorLoad(mean=0.5, peak=0.95, locust_warned=True))
    assert locust_warned.exit_code == EXIT_UNTRUSTWORTHY and "Locust warned" in locust_warned.line


def test_a_failed_canary_fails_and_an_inconclusive_one_is_inconclusive():
    failed = judge(canary=CanaryResult("NONE", None, None))
    assert failed.outcome == "PASS" and "CANARY: NONE" in failed.line

    class Result(CanaryResult):
        def summary(self):
            return f"CANARY: {self.outcome} (stub summary)"

    assert judge(canary=Result("FAIL", None, None)).exit_code == 1
    assert judge(canary=Result("INCONCLUSIVE", None, None)).exit_code == 3
