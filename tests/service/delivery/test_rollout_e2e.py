"""Real rollouts on a real local stack (`tfship up`: model server, API under gunicorn, and the
reconciler it runs) with a client sending predictions throughout.

- `tfship up` serves only what the registry's rollout state names (the newest export as stable);
  the other export is registered but not loaded;
- a good canary goes 50% -> 90% -> promoted, the client sees zero failures, both labels serve;
- rollback to previous reaches the model server and every gateway answer within 3 s;
- a canary that fails to load: every canary call falls back to stable (zero client failures,
  counted in tfship_canary_fallbacks_total); `rollout start` waiting for it aborts by itself;
- a canary answering 200 with wrong predictions is rolled back automatically (class PSI);
- a breaking input schema is refused; a `rollout start` driver killed mid-rollout (SIGKILL)
  resumes from the registry's progress when run again; the history holds every transition.

The measured proofs (traffic split, 20 rollback trials, latency) are in test_rollout_measured.py.

Budget: ~100 s alone on the shared 2 cores (training the two versions, shared with the other
suites, ~30 s; `tfship up` ~15 s; the scenarios ~40 s of real polls and bakes; `tfship down`
~10 s).
"""
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from infra.local.demo import EXAMPLES
from service.delivery import model_config
from tests.service.delivery.rollout_stack import (MODEL, LocalStack, Traffic,
                                                  save_always_adelie, wait_for)


def ANALYSIS(stack):  # noqa: N802 (reads as a constant)
    """Judge each step on the gateway's metrics; p95 loose, as the shared 2 cores are noisy."""
    return ["--metrics-url", f"{stack.api}/metrics", "--max-p95-seconds", "2.5",
            "--min-calls", "15"]


@pytest.fixture(scope="module")
def stack(trained_models, tmp_path_factory):
    """`tfship up` on free ports; its reconciler follows the registry."""
    local = LocalStack(tmp_path_factory.mktemp("rollout-stack"), trained_models[0])
    try:
        yield local.up()
    finally:
        local.down()


def test_up_serves_only_what_the_registry_names(stack):
    assert "[up] reconciler: the model server serves the registry's rollout state (stable 2)" \
        in stack.up_result.stdout
    [entry] = model_config.read(stack.state / "models.config")
    assert entry.versions == (2,) and entry.labels == {"stable": 2}
    assert stack.label("stable") == 2
    assert stack.states() == {2: "AVAILABLE"}  # version 1 is registered, never loaded
    assert stack.registry("GET", "/versions/1").json()["status"] != "stable"
    status = stack.tfship("status")
    assert status.returncode == 0 and re.search(r"^reconciler +pid \d+ +running", status.stdout,
                                                re.MULTILINE), status.stdout


def test_a_good_canary_is_promoted_with_zero_failed_requests(stack):
    # The last step keeps 10% on stable: at 100% stable's class sample is a handful of cached
    # calls, and the PSI of so few rows against the canary's is noise (see the lead's report).
    with Traffic(stack) as traffic:
        result = stack.rollout("start", "--version", "1", "--steps", "50,90",
                               "--step-wait", "2", "--model-server", stack.server,
                               "--load-timeout", "60", *ANALYSIS(stack),
                               "--locust-env", "local", "--locust-profile", "test",
                               "--locust-out", str(stack.state / "rollout"), timeout=300)
        assert result.returncode == 0, (result.stdout + result.stderr
                                        + stack.reconciler_log.read_text())
        wait_for(lambda: (stack.label("stable"), stack.label("previous")) == (1, 2), 10,
                 "the model server's labels follow the promotion")
        wait_for(lambda: ("1", "stable") in traffic.served(), 10,
                 "the gateways' cached rollout state follows the promotion")
    state = stack.registry("GET", "/rollout").json()
    assert (state["stable"], state["canary"], state["previous"]) == (1, None, 2)
    assert traffic.failures() == []
    assert len(traffic.answers) > 50
    assert {("1", "canary"), ("2", "stable"), ("1", "stable")} <= traffic.served()
    history = stack.registry("GET", "/rollout/history").json()["items"]
    assert [e["step"] for e in history[:4]] == ["promote", "90%", "50%", "load"]
    assert all(e["actor"].startswith("bootstrap-admin (") for e in history[:4])
    assert history[3]["measurements"] == {"breaking_changes": []}
    judged = history[0]["measurements"]  # the 90% step's, kept with the promotion
    assert judged["canary"]["version"] == 1 and judged["canary"]["calls"] > 0
    assert judged["canary"]["error_ratio"] == 0.0
    assert history[1]["measurements"]["psi"] < 0.25  # the 50% step's, kept with the next
    for step in (history[0], history[1]):  # each step's Locust canary run, both versions seen
        locust = step["measurements"]["locust"]
        assert {"1", "2"} <= set(locust["versions"]), locust
        assert (Path(locust["report"]) / "slo-report.html").is_file()
    at_50 = history[1]["measurements"]["locust"]
    assert (at_50["outcome"], at_50["exit_code"], at_50["canary"]["outcome"]) == ("PASS", 0, "PASS")
    at_90 = history[0]["measurements"]["locust"]  # stable's 10% may be too few to compare
    assert at_90["outcome"] == "PASS" or "stable served too few" in at_90["note"], at_90


def test_rollback_reaches_every_answer_within_3_seconds(stack):
    assert stack.label("stable") == 1
    result = stack.rollout("rollback", "--reason", "test rollback")
    started = time.monotonic()  # from the command's return, as test_rollout_measured.py
    assert result.returncode == 0, result.stderr
    headers = {"Authorization": f"Bearer {stack.predictor}"}

    def rolled_back():
        answer = requests.post(f"{stack.api}/api/v1/models/{MODEL}:predict", timeout=5,
                               json={"instances": EXAMPLES[:1]}, headers=headers)
        return answer.headers.get("X-Model-Version") == "2" and stack.label("stable") == 2

    wait_for(rolled_back, 10, "the rollback reaches the gateway and the model server")
    elapsed = time.monotonic() - started
    assert elapsed < 3.0, f"rollback took {elapsed:.2f} s"
    assert stack.states()[1] == "AVAILABLE"  # nothing was redeployed: 1 stays as previous
    history = stack.registry("GET", "/rollout/history").json()["items"]
    assert (history[0]["step"], history[0]["reason"], history[0]["stable"]) == (
        "rollback", "test rollback", 2)


def fallbacks(stack, version):
    metrics = requests.get(f"{stack.api}/metrics", timeout=5).text
    return sum(float(line.split()[-1]) for line in metrics.splitlines()
               if line.startswith("tfship_canary_fallbacks_total{")
               and f'version="{version}"' in line)


def test_a_failing_canary_costs_callers_nothing_and_is_rolled_back_automatically(stack):
    broken = stack.models / "3"
    shutil.copytree(stack.models / "2", broken)
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    stack.register_copy(3)
    # The earlier promotion's canary label retires after the grace; until then it would answer
    # canary calls (the reconciler drops it as soon as the registry names a new canary, and the
    # model server applies that within its config poll: a window this test must not start in).
    wait_for(lambda: stack.label("canary") is None, 15, "the old canary label retired")
    with Traffic(stack) as traffic:
        # Not waiting for the load: the canary label never appears, every canary call fails.
        result = stack.rollout("start", "--version", "3", "--steps", "50,100",
                               "--step-wait", "1.5", *ANALYSIS(stack))
    assert result.returncode == 1
    # The measured canary error ratio varies between runs (0.4-1.0 seen; see the note on issue 9):
    # what must hold is that it breached the SLO's limit and triggered the rollback.
    ratio = re.search(r"automatic rollback at 50%: canary error ratio ([0-9.]+) > 0\.01", result.stderr)
    assert ratio and float(ratio.group(1)) > 0.01, result.stderr
    assert traffic.failures() == []
    assert traffic.served() == {("2", "stable")}
    assert fallbacks(stack, 3) > 0
    state = stack.registry("GET", "/rollout").json()
    assert (state["stable"], state["canary"], state["canary_weight"]) == (2, None, 0.0)
    history = stack.registry("GET", "/rollout/history").json()["items"]
    assert history[0]["step"] == "abort" and history[0]["measurements"]["canary"]["calls"] > 0

    # Waiting for the load, `rollout start` aborts a canary that never becomes AVAILABLE.
    result = stack.rollout("start", "--version", "3", "--steps", "100", "--step-wait", "0",
                           "--model-server", stack.server, "--load-timeout", "2")
    assert result.returncode == 1 and "never became AVAILABLE" in result.stderr
    assert stack.states().get(3) == "END"
    history = stack.registry("GET", "/rollout/history").json()["items"]
    assert history[0]["step"] == "abort" and "not AVAILABLE" in history[0]["reason"]


def test_a_canary_with_wrong_predictions_is_rolled_back_automatically(stack):
    schema = stack.registry("GET", "/versions/2").json()["input_schema"]
    save_always_adelie(stack.models / "5", schema)
    stack.register_copy(5)
    with Traffic(stack) as traffic:
        result = stack.rollout("start", "--version", "5", "--steps", "50,100",
                               "--step-wait", "3", "--model-server", stack.server,
                               "--load-timeout", "60", *ANALYSIS(stack))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "automatic rollback at 50%: predicted classes differ" in result.stderr
    assert traffic.failures() == []
    assert ("5", "canary") in traffic.served()
    history = stack.registry("GET", "/rollout/history").json()["items"]
    assert history[0]["step"] == "abort" and history[0]["measurements"]["psi"] > 0.25
    assert set(history[0]["measurements"]["canary"]["classes"]) == {"Adelie"}
    assert stack.registry("GET", "/rollout").json()["canary"] is None


def test_a_breaking_schema_is_refused_unless_forced(stack):
    stack.register_copy(4, lambda s: s["inputs"]["island"]["categories"].remove("Dream"))
    before = stack.registry("GET", "/rollout/history").json()["total"]
    refused = stack.rollout("start", "--version", "4", "--step-wait", "0")
    assert refused.returncode == 1
    assert "categories removed: ['Dream']" in refused.stderr and "--force" in refused.stderr
    assert stack.registry("GET", "/rollout").json()["canary"] is None
    assert stack.registry("GET", "/rollout/history").json()["total"] == before
    status = stack.rollout("status")
    assert status.returncode == 0 and "stable 2" in status.stdout and "rollback" in status.stdout


def test_a_killed_driver_resumes_where_it_stopped(stack):
    """SIGKILL a real `tfship rollout start` at its 40% step; run again, it goes on from there."""
    assert (stack.rollout_state()["stable"], stack.rollout_state()["previous"]) == (2, 1)
    before = stack.last_event_id()
    command = ["start", "--version", "1", "--steps", "20,40,60,80,100", "--no-promote",
               "--model-server", stack.server]
    driver = subprocess.Popen([sys.executable, "-m", "tfship.cli", "rollout", *command,
                               "--step-wait", "3"], env=stack.env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: stack.rollout_state()["canary_weight"] == 0.4, 60,
                 "the driver reaches its 40% step")
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.communicate(timeout=10)
    assert driver.returncode == -signal.SIGKILL
    killed_at = [e["step"] for e in stack.history_after(before)]
    assert killed_at == ["load", "20%", "40%"]

    resumed = stack.rollout(*command, "--step-wait", "0.3")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming the canary of version 1 at 40%" in resumed.stdout
    events = stack.history_after(before)
    # Nothing replayed: no second load, 20% or 40%; each step once, in order.
    assert [e["step"] for e in events] == ["load", "20%", "40%", "60%", "80%", "100%"]
    assert [e["canary_weight"] for e in events] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert stack.rollout("promote").returncode == 0
    state = stack.rollout_state()
    assert (state["stable"], state["canary"], state["previous"]) == (1, None, 2)
