"""The Locust canary run of a rollout step (service/delivery/load_test.py): its command line and
how a gate verdict judges the step. The real run against a live split: test_rollout_e2e.py's
good canary. Budget: <1 s."""
import sys
from pathlib import Path

from service.delivery import load_test

PASS = {"outcome": "PASS", "line": "SLO GATE: PASS", "reasons": [],
        "canary": {"outcome": "PASS", "reasons": []}, "versions": {"1": {"requests": 80}}}


def test_the_command_is_tfship_verify_with_only_what_was_given(tmp_path):
    plain = load_test.LoadTest(env="staging", out=tmp_path)
    assert plain.command(tmp_path / "s") == [sys.executable, "-m", "tfship.cli", "verify", "--env",
                                             "staging", "--out", str(tmp_path / "s")]
    full = load_test.LoadTest(env="local", out=tmp_path, profile="test", url="http://api",
                              hold_seconds=5, key_files={"--api-key-file": Path("/k/admin.key")})
    assert full.command(tmp_path)[-8:] == ["--profile", "test", "--url", "http://api",
                                           "--hold-seconds", "5", "--api-key-file", "/k/admin.key"]


def test_a_step_passes_only_on_a_pass_verdict_and_exit_code_0():
    measured, reasons = load_test.judge(PASS, 0)
    assert reasons == [] and measured["outcome"] == "PASS" and measured["versions"]["1"]["requests"] == 80
    _, reasons = load_test.judge(PASS, 4)  # e.g. the generator saturated
    assert reasons and "PASS" in reasons[0]


def test_a_failing_canary_comparison_fails_the_step_with_its_reasons():
    failed = {**PASS, "outcome": "FAIL", "reasons": ["the canary is worse than stable"],
              "canary": {"outcome": "FAIL", "reasons": ["canary error ratio 0.2 > stable's 0 + 0.01"]}}
    measured, reasons = load_test.judge(failed, 1)
    assert reasons == ["the Locust canary run is FAIL: the canary is worse than stable"]
    assert measured["canary"]["outcome"] == "FAIL"


def test_no_verdict_or_a_timeout_fails_the_step(tmp_path):
    _, reasons = load_test.judge(None, 2)
    assert reasons == ["the Locust canary run wrote no verdict (exit 2)"]
    broken = load_test.LoadTest(env="no-such-env", out=tmp_path)
    measured, reasons = load_test.run_step(broken, "step", timeout_s=60)
    assert reasons and measured["exit_code"] == 2 and measured["report"] == str(tmp_path / "step")


def test_too_few_stable_samples_at_a_high_weight_leaves_the_step_to_the_metrics():
    checks = [{"name": "p95", "objective": "<= 0.25 s", "measured": "0.02 s", "passed": True}]
    high_weight = {**PASS, "outcome": "INCONCLUSIVE", "checks": checks,
                   "reasons": ["too few predictions to compare the canary"],
                   "canary": {"outcome": "INCONCLUSIVE", "reasons": ["v2 has 12 predictions < 50"],
                              "stable": {"version": "2", "requests": 12},
                              "canary": {"version": "1", "requests": 140}}}
    measured, reasons = load_test.judge(high_weight, 3)
    assert reasons == [] and "stable served too few" in measured["note"]
    too_few_canary = {**high_weight, "canary": {**high_weight["canary"],
                                                "reasons": ["v1 has 12 predictions < 50"]}}
    assert load_test.judge(too_few_canary, 3)[1]
    slo_breached = {**high_weight, "checks": [{**checks[0], "passed": False}]}
    assert load_test.judge(slo_breached, 3)[1]
