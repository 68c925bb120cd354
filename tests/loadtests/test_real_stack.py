"""The gate against the real local stack: the model server serving two trained versions, the API
under gunicorn in front of it (registry, gateway, canary split 50/50).

Faults come from the API's own fault-injection settings (service/faults.py), each in an extra
API process on the same registry and model server. Time budget: 60 s for the model server's
TensorFlow start and four gate runs (two side by side), on top of the session's trained models;
measured 90-125 s alone (training included) on this shared 2-core machine at load 5-8.
"""
import re
from types import SimpleNamespace

import pytest
import requests

from tests.loadtests.gate_runner import check_named, failed_only_on_latency, finish, start_gate
from tests.loadtests.real_stack import RealStack

pytestmark = pytest.mark.slow
FAULT_SETTINGS = {"latency": {"FAULT_LATENCY_MS": 600}, "errors": {"FAULT_ERROR_RATE": 0.2}}


@pytest.fixture(scope="module")
def stack(trained_models, tmp_path_factory):
    running = RealStack(trained_models[0], tmp_path_factory.mktemp("real-stack"))
    try:
        yield running.start()
    finally:
        running.stop()


@pytest.fixture(scope="module")
def too_short(stack, tmp_path_factory):
    return finish(start_gate(stack, tmp_path_factory.mktemp("real-short"), "--hold-seconds", "0.5"))


@pytest.fixture(scope="module")
def healthy(stack, too_short, tmp_path_factory):
    """A healthy run (after the short one, never beside it); one more try if only latency failed."""
    result = finish(start_gate(stack, tmp_path_factory.mktemp("real-healthy")))
    if result[0] == 1 and failed_only_on_latency(result[2]):
        result = finish(start_gate(stack, tmp_path_factory.mktemp("real-healthy-again")))
    return result


def test_the_real_stack_passes_the_gate_and_compares_its_canary(healthy):
    code, line, verdict, _folder = healthy
    assert code == 0, line
    assert line.startswith("SLO GATE: PASS [profile test]"), line
    assert "CANARY: PASS (canary v1 vs stable v2)" in line
    assert verdict["measured"]["prediction_failures"] == 0


def test_a_too_short_run_against_the_real_stack_is_never_a_pass(too_short):
    """INCONCLUSIVE; or FAIL when its few predictions already prove a breach (a slow machine)."""
    code, line, verdict, _folder = too_short
    assert not check_named(verdict, "samples")["passed"]
    if code == 3:
        assert line.startswith("SLO GATE: INCONCLUSIVE [profile test] too few samples: "), line
    else:
        assert code == 1 and "breached already" in line, line


def test_the_api_counts_the_gate_as_synthetic_traffic(stack, healthy):
    metrics = requests.get(f"{stack.url}/metrics", timeout=10).text
    predictions = {synthetic: sum(float(v) for v in re.findall(
        rf'tfship_http_requests_total{{[^}}]*model="penguins"[^}}]*synthetic="{synthetic}"[^}}]*}} (\S+)', metrics))
        for synthetic in ("true", "false")}
    assert predictions["true"] >= 100 and predictions["false"] == 0, predictions


@pytest.fixture(scope="module")
def faulty(stack, healthy, tmp_path_factory):
    """Gate runs against extra API processes with each fault injected, side by side."""
    running = {}
    for name, settings in FAULT_SETTINGS.items():
        target = SimpleNamespace(url=stack.start_api(**settings), admin_key=stack.admin_key,
                                 predictor_key=stack.predictor_key)
        running[name] = start_gate(target, tmp_path_factory.mktemp(f"real-{name}"))
    return {name: finish(process) for name, process in running.items()}


def test_injected_latency_fails_the_real_stack_on_latency(faulty):
    code, line, verdict, _folder = faulty["latency"]
    assert code == 1 and line.startswith("SLO GATE: FAIL [profile test] p95 "), line
    assert not check_named(verdict, "p95")["passed"] and check_named(verdict, "error ratio")["passed"]


def test_injected_errors_fail_the_real_stack_on_the_error_ratio(faulty):
    code, line, verdict, _folder = faulty["errors"]
    assert code == 1 and "SLO GATE: FAIL" in line, line
    assert not check_named(verdict, "error ratio")["passed"]
