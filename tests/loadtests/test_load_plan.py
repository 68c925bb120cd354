"""Every shape of every environment can pass its gate, stays far from saturation and ends. Budget: < 1 s."""
import pytest

from loadtests import load_plan
from loadtests.protocol import SHAPES
from monitoring import slo

MAX_PREDICTION_RPS = 100  # one Locust process saturates at ~750 rps (HttpUser): stay well below


@pytest.mark.parametrize("profile", slo.profiles())
@pytest.mark.parametrize("shape", SHAPES)
def test_each_shape_is_sized_from_its_gate_and_bounded(profile, shape):
    gate = slo.load(profile).gate
    stages = load_plan.stages(shape, profile)
    rates = [s.prediction_users for s in stages]  # one prediction a second per user
    until = [0] + [s.until_s for s in stages]
    expected_samples = sum(rate * (end - max(start, load_plan.WARMUP_SECONDS))  # the gate judges after warm-up
                           for rate, start, end in zip(rates, until, until[1:]) if end > load_plan.WARMUP_SECONDS)
    assert expected_samples >= 1.5 * gate.min_samples
    assert min(rates[-1], max(rates)) >= 2 * gate.min_throughput_rps
    assert max(rates) <= MAX_PREDICTION_RPS
    assert until == sorted(until) and load_plan.duration(shape, profile) <= 3600


def test_the_hold_override_sets_the_time_at_full_load():
    assert load_plan.duration("smoke", "test", hold_seconds=3) == load_plan.SPAWN_SECONDS + 3
    assert load_plan.duration("soak", "prod", hold_seconds=60) == load_plan.SPAWN_SECONDS + 60


def test_an_unknown_shape_is_refused():
    with pytest.raises(ValueError, match="unknown shape 'spike'"):
        load_plan.stages("spike", "local")


def test_the_rate_override_must_reach_the_minimum_throughput():
    assert {s.prediction_users for s in load_plan.stages("smoke", "test", prediction_rps=12)} == {12}
    with pytest.raises(ValueError, match="cannot reach profile staging's minimum throughput of 20/s"):
        load_plan.stages("smoke", "staging", prediction_rps=10)
