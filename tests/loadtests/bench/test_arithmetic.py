"""Costs per request, ratios and the shared-core ceiling. Budget: <1 s."""
import pytest

from loadtests.bench import arithmetic


def test_percentile_is_nearest_rank():
    values = list(range(100, 0, -1))  # 1..100, unsorted
    assert arithmetic.percentile(values, 50) == 50
    assert arithmetic.percentile(values, 99) == 99
    assert arithmetic.percentile(values, 100) == 100
    assert arithmetic.percentile([7.0], 99) == 7.0
    assert arithmetic.percentile([1, 2, 3], 1) == 1
    assert arithmetic.percentile([], 50) is None


def test_per_request_ms():
    assert arithmetic.per_request_ms(2.0, 1000) == pytest.approx(2.0)
    assert arithmetic.per_request_ms(1.0, 0) is None


def test_ratio_refuses_a_missing_baseline():
    assert arithmetic.ratio(300, 600) == 0.5
    assert arithmetic.ratio(300, 0) is None
    assert arithmetic.ratio(None, 10) is None


def test_shared_core_ceiling():
    # Through the gateway 0.1 + 1.0 + 0.9 = 2 ms per request, directly 0.1 + 0.9 = 1 ms:
    # two cores allow 1000 and 2000 req/s, a ratio of at most 0.5.
    ceiling, via_rps, direct_rps = arithmetic.shared_core_ceiling(2, [0.1, 1.0, 0.9], [0.1, 0.9])
    assert ceiling == pytest.approx(0.5)
    assert via_rps == pytest.approx(1000) and direct_rps == pytest.approx(2000)
    assert arithmetic.shared_core_ceiling(2, [0, 0], [1]) == (None, None, None)


def test_cores_busy_and_gateway_cpu_budget():
    assert arithmetic.cores_busy([0.1, 0.9], 1500) == pytest.approx(1.5)
    # 0.5 x 1000 req/s = 500 req/s on 2 cores: 4 ms per request, less 0.1 + 0.9 for the others.
    assert arithmetic.gateway_cpu_budget(2, 0.5, 1000, [0.1, 0.9]) == pytest.approx(3.0)
    assert arithmetic.gateway_cpu_budget(2, 0.5, 0, [0.1]) is None
