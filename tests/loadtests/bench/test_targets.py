"""The issue's targets and their verdicts. Budget: <1 s."""
from loadtests.bench import targets


def test_every_target_of_the_issue_is_listed_once():
    keys = [t.key for t in targets.TARGETS]
    assert len(keys) == len(set(keys)) == 12


def test_verdicts_on_both_sides_of_each_limit():
    for target in targets.TARGETS:
        inside = target.limit * (0.9 if target.kind == "max" else 1.1)
        outside = target.limit * (1.1 if target.kind == "max" else 0.9)
        assert target.verdict(inside) == "met", target.key
        assert target.verdict(target.limit) == "met", target.key
        assert target.verdict(outside) == "not met", target.key
        assert target.verdict(None) == "not measured"


def test_verdicts_pair_each_target_with_its_figure():
    rows = targets.verdicts({"gateway_extra_p50_ms": 0.5, "api_worker_rss_mib": 90})
    found = {t.key: (value, verdict) for t, value, verdict in rows}
    assert found["gateway_extra_p50_ms"] == (0.5, "met")
    assert found["api_worker_rss_mib"] == (90, "not met")
    assert found["registry_postgres_p99_ms"] == (None, "not measured")
    assert targets.TARGETS[0].text == "≤ 1 ms"
