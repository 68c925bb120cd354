"""Generated Prometheus rules pass promtool, their unit tests, a real Prometheus, and name real metrics.

Budget: ~25 s (promtool test rules over every file, concurrently, and the mutation checks are most of it).
"""
import re
import subprocess

import pytest
import requests
import yaml

from monitoring import alerts, lint, slo, slo_rules
from tests.monitoring.conftest import PROMETHEUS_DIR, run, tool

TEST_FILES = sorted((PROMETHEUS_DIR / "tests").glob("*.test.yml"))


def _alerts(groups):
    return [rule for group in groups["groups"] for rule in group["rules"] if "alert" in rule]


def test_promtool_check_rules(rule_files):
    result = run(tool("promtool"), "check", "rules", *map(str, rule_files))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests():
    """Every generated test file, run concurrently (one promtool per file)."""
    promtool = tool("promtool")
    runs = {path.name: subprocess.Popen([promtool, "test", "rules", str(path)], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True) for path in TEST_FILES}
    failures = {}
    for name, process in runs.items():
        output, _ = process.communicate(timeout=120)
        if process.returncode != 0:
            failures[name] = output[-3000:]
    assert len(runs) == 7 and not failures, failures


def test_every_rule_file_has_unit_tests(rule_files):
    assert {p.name.removesuffix(".rules.yml") for p in rule_files} == \
        {p.name.removesuffix(".test.yml") for p in TEST_FILES}


def test_every_alert_is_tested_on_both_sides_of_its_for(rule_groups):
    for name, groups in rule_groups.items():
        tests = (PROMETHEUS_DIR / "tests" / name.replace(".rules.yml", ".test.yml")).read_text()
        for rule in _alerts(groups):
            pattern = rf"alertname: {rule['alert']}\n\s+exp_alerts:"
            quiet = len(re.findall(pattern + r" \[\]", tests))
            firing = len(re.findall(pattern + r"\n", tests))
            assert firing >= 1, f"{name}: {rule['alert']} is never expected to fire"
            assert quiet >= (2 if rule.get("for") else 0), f"{name}: {rule['alert']} lacks a quiet case"


def _on_a_copy(tmp_path, stem, edit, keep):
    """Start promtool on a copy of one rules file, edited, with only the tests whose name contains `keep`."""
    root = tmp_path / f"{stem}-{len(list(tmp_path.iterdir()))}"
    (root / "tests").mkdir(parents=True)
    rules = yaml.safe_load((PROMETHEUS_DIR / f"{stem}.rules.yml").read_text())
    (root / f"{stem}.rules.yml").write_text(yaml.safe_dump(edit(rules)))
    tests = yaml.safe_load((PROMETHEUS_DIR / "tests" / f"{stem}.test.yml").read_text())
    tests["tests"] = [case for case in tests["tests"] if keep in case["name"]]
    assert tests["tests"], f"no test of {stem} is named like {keep!r}"
    (root / "tests" / f"{stem}.test.yml").write_text(yaml.safe_dump(tests))
    return subprocess.Popen([tool("promtool"), "test", "rules", str(root / "tests" / f"{stem}.test.yml")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _each_rule(rules):
    return [rule for group in rules["groups"] for rule in group["rules"]]


def _with_for(change):
    def edit(rules):
        for rule in (r for r in _each_rule(rules) if r.get("for")):
            rule["for"] = change(rule["for"])
            if not rule["for"]:
                del rule["for"]
        return rules
    return edit


def _with_exprs(old, new):
    def edit(rules):
        changed = [r for r in _each_rule(rules) if old in r["expr"]]
        assert changed, f"no rule contains {old}"
        for rule in changed:
            rule["expr"] = rule["expr"].replace(old, new)
        return rules
    return edit


@pytest.mark.parametrize("stem", ["components-test", "slo-test"])
def test_each_for_boundary_is_checked_on_both_sides(tmp_path, stem):
    """Mutation check of every alert's `for:`: without it, the check just before the boundary fails (fired too
    early); with it doubled, the check at the boundary fails (still pending)."""
    held = {r["alert"] for r in _each_rule(yaml.safe_load((PROMETHEUS_DIR / f"{stem}.rules.yml").read_text()))
            if r.get("for")}
    double = lambda text: slo.format_duration(2 * slo.parse_duration(text))  # noqa: E731
    runs = {mutation: _on_a_copy(tmp_path, stem, _with_for(change), " fires after ")
            for mutation, change in (("no for", lambda text: None), ("doubled for", double))}
    for mutation, process in runs.items():
        output, _ = process.communicate(timeout=60)
        failed = set(re.findall(r"name: (\S+) fires after ", output))
        assert process.returncode != 0 and held and failed == held, \
            f"{mutation}: {sorted(held - failed)}\n{output[-2000:]}"


def test_an_sli_that_skips_errors_without_a_model_label_fails_the_unit_tests(tmp_path):
    """Injected faults and registry outages answer 503 before a version is chosen (model=""): the SLO must count
    them. Counting only model!="" fails the generated test that says so."""
    process = _on_a_copy(tmp_path, "slo-test", _with_exprs('route=~".+:predict"', 'model!=""'),
                         "without a model label")
    output, _ = process.communicate(timeout=60)
    assert process.returncode != 0
    assert "TfshipApiAvailabilityFastBurn counts answers without a model label" in output


def test_a_broken_threshold_fails_the_unit_tests(tmp_path):
    """Mutation check: the tests bite. Page at 1.44x instead of 14.4x and the quiet case fires."""
    process = _on_a_copy(tmp_path, "slo-prod", _with_exprs("(14.4 * 0.001)", "(1.44 * 0.001)"), "FastBurn")
    output, _ = process.communicate(timeout=60)
    assert process.returncode != 0
    assert "TfshipApiAvailabilityFastBurn stays quiet" in output


def test_every_alert_has_labels_and_annotations(rule_groups):
    """Their runbook_url is checked in test_alerts."""
    for name, groups in rule_groups.items():
        for rule in _alerts(groups):
            where = f"{name}: {rule['alert']}"
            assert rule["labels"]["severity"] in alerts.SEVERITIES, where
            assert rule["labels"]["component"], where
            assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), where
            assert all(rule["annotations"][key].strip() for key in ("summary", "description")), where


def test_the_required_alerts_exist(rule_groups):
    names = {rule["alert"] for groups in rule_groups.values() for rule in _alerts(groups)}
    assert {"TfshipModelServerDown", "TfshipModelServerScrapeFailing", "TfshipNoModelVersionAvailable",
            "TfshipUpstreamErrorRatioHigh", "TfshipApiSaturated", "TfshipInputsOutOfRange",
            "TfshipVersionClassDistributionDiverges", "TfshipCanaryFallbacksHigh", "Watchdog"} <= names
    for kind in ("Availability", "Latency"):
        assert {f"TfshipApi{kind}{s}" for s in ("FastBurn", "SlowBurn", "BudgetBurn")} <= names


def test_burn_rate_windows_and_factors_are_sloths():
    prod, test = slo.load("prod"), slo.load("test")
    rules = {r["alert"]: r for r in (slo_rules.burn_alert(prod, prod.availability, b) for b in slo_rules.BURN_ALERTS)}
    assert "ratio_rate1h" in rules["TfshipApiAvailabilityFastBurn"]["expr"]
    assert "ratio_rate5m" in rules["TfshipApiAvailabilityFastBurn"]["expr"]
    assert "(14.4 * 0.001)" in rules["TfshipApiAvailabilityFastBurn"]["expr"]
    assert "ratio_rate6h" in rules["TfshipApiAvailabilitySlowBurn"]["expr"] and "(6 * 0.001)" in \
        rules["TfshipApiAvailabilitySlowBurn"]["expr"]
    assert "ratio_rate3d" in rules["TfshipApiAvailabilityBudgetBurn"]["expr"]
    assert rules["TfshipApiAvailabilityBudgetBurn"]["labels"]["severity"] == "ticket"
    assert slo_rules.windows(test) == ["5s", "30s", "1m", "6m", "1h12m", "12h"]  # 1/60 of Sloth's


def test_rules_name_only_exported_metrics_and_labels(rule_groups):
    recorded = lint.recorded_labels(rule_groups.values())
    for name, groups in rule_groups.items():
        for group in groups["groups"]:
            for rule in group["rules"]:
                assert not lint.problems(rule["expr"], recorded), f"{name}: {rule.get('alert') or rule['record']}"


def test_the_name_check_catches_a_typo():
    assert lint.problems("sum(rate(tfship_http_request_total[5m]))") == ["unknown metric 'tfship_http_request_total'"]
    assert lint.problems('up{jbo="x"}') == ["up has no label ['jbo']"]
    assert lint.problems(":tensorflow:serving:request_latency_bucket{le=\"10\"}") == []


def test_real_prometheus_loads_and_evaluates_every_rule(prometheus, rule_groups):
    import time
    deadline = time.monotonic() + 15
    while True:
        groups = requests.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        if rules and all(rule.get("lastEvaluation", "").startswith("20") for rule in rules) or \
                time.monotonic() > deadline:
            break
        time.sleep(0.5)
    expected = sum(len(group["rules"]) for groups in rule_groups.values() for group in groups["groups"])
    assert len(rules) == expected
    unhealthy = [(rule["name"], rule.get("lastError")) for rule in rules if rule["health"] != "ok"]
    assert not unhealthy
    firing = [a["labels"]["alertname"] for a in requests.get(f"{prometheus}/api/v1/alerts", timeout=10).json()
              ["data"]["alerts"] if a["state"] == "firing"]
    assert firing.count("Watchdog") == 2  # components.rules.yml and components-test.rules.yml
    # This Prometheus scrapes only itself: the API and model-server targets are rightly absent.
    assert set(firing) <= {"Watchdog", "TfshipApiDown", "TfshipModelServerScrapeFailing"}
