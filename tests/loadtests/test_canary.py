"""Canary against stable from per-version results. Budget: < 1 s."""
from loadtests.canary import CanaryResult, Tolerances, VersionStats, compare

TOLERANCES = Tolerances(max_error_delta=0.01, max_latency_ratio=1.5, min_samples=50)
STABLE = VersionStats("2", requests=200, errors=1, p50_s=0.020, p95_s=0.040, p99_s=0.08)


def test_a_similar_canary_passes():
    result = compare([STABLE, VersionStats("3", 100, 1, 0.022, 0.045, 0.09)], {"stable": 2, "canary": 3}, TOLERANCES)
    assert result.outcome == "PASS"
    assert result.summary() == "CANARY: PASS (canary v3 vs stable v2)"


def test_a_canary_with_more_errors_fails():
    result = compare([STABLE, VersionStats("3", 100, 5, 0.020, 0.040, 0.08)], {"stable": 2, "canary": 3}, TOLERANCES)
    assert result.outcome == "FAIL"
    assert "error ratio 0.0500 > stable 0.0050 + 0.01" in result.summary()


def test_a_slower_canary_fails():
    result = compare([STABLE, VersionStats("3", 100, 0, 0.030, 0.200, 0.3)], {"stable": 2, "canary": 3}, TOLERANCES)
    assert result.outcome == "FAIL"
    assert result.reasons == ("p95 200 ms > 1.5 x stable 40 ms + 25 ms",)


def test_a_slower_canary_fails_on_its_median_when_a_stall_inflated_stable_p95():
    stalled_stable = VersionStats("2", 200, 0, 0.020, 1.000, 1.2)
    result = compare([stalled_stable, VersionStats("3", 100, 0, 0.600, 0.650, 0.7)], {"stable": 2, "canary": 3},
                     TOLERANCES)
    assert result.reasons == ("p50 600 ms > 1.5 x stable 20 ms + 25 ms",)


def test_too_few_canary_predictions_are_inconclusive():
    result = compare([STABLE, VersionStats("3", 10, 5, 0.5, 0.5, 0.5)], {"stable": 2, "canary": 3}, TOLERANCES)
    assert result.outcome == "INCONCLUSIVE"
    assert "v3 has 10 predictions < 50" in result.summary()


def test_roles_come_from_the_rollout_else_from_the_traffic_share():
    slow_but_stable = VersionStats("7", 60, 0, 0.1, 0.2, 0.3)
    assert compare([STABLE, slow_but_stable], {"stable": 7, "canary": 2}, TOLERANCES).outcome == "PASS"
    assert compare([STABLE, slow_but_stable], {}, TOLERANCES).canary.version == "7"


def test_one_version_is_nothing_to_compare():
    result = compare([STABLE, VersionStats("unknown", 5, 5, 0, 0, 0)], {"stable": 2}, TOLERANCES)
    assert result == CanaryResult("NONE", STABLE, None)
