"""The Locust canary run of a rollout step: `tfship verify` against the live split, judged.

At each traffic step, once the gateway's metrics pass (service/delivery/analysis.py), the
driver can run the post-deploy gate (`tfship verify`, headless Locust) against the API while
the canary takes its share. The gate compares the canary with stable from the answers'
X-Model-Version (error ratio, latency) besides the SLOs, and writes slo-verdict.json; the step
passes only on PASS. It runs as a command (the load tests are their own package and process,
as in the cluster's post-deploy job); what it found is kept in the step's measurements.
"""
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

VERDICT_FILE = "slo-verdict.json"  # written by loadtests/report.py
GRACE_S = 120.0  # Locust's start and reports beyond the hold time


@dataclass(frozen=True)
class LoadTest:
    """How to run the gate at each step: environment, SLO profile, target URL, extra seconds."""

    env: str
    out: Path
    profile: str | None = None
    url: str | None = None
    hold_seconds: float = 0.0
    key_files: dict = field(default_factory=dict)  # --api-key-file / --predict-api-key-file

    def command(self, out):
        command = [sys.executable, "-m", "tfship.cli", "verify", "--env", self.env,
                   "--out", str(out)]
        for flag, value in (("--profile", self.profile), ("--url", self.url)):
            if value:
                command += [flag, value]
        if self.hold_seconds:
            command += ["--hold-seconds", f"{self.hold_seconds:g}"]
        for flag, path in sorted(self.key_files.items()):
            command += [flag, str(path)]
        return command


def judge(document, exit_code):
    """Return (measurements, reasons) from a gate run's slo-verdict.json (None: none written)."""
    if document is None:
        return {"exit_code": exit_code}, [f"the Locust canary run wrote no verdict (exit {exit_code})"]
    canary = document.get("canary") or {}
    measured = {"outcome": document.get("outcome"), "exit_code": exit_code,
                "line": document.get("line"), "canary": canary,
                "versions": document.get("versions", {})}
    if exit_code == 0 and document.get("outcome") == "PASS":
        return measured, []
    if _only_stable_too_small(document):
        measured["note"] = ("the SLOs held; stable served too few predictions to compare the "
                            "canary with (a high canary weight): the gateway's metrics judged it")
        return measured, []
    reasons = list(document.get("reasons") or []) or [document.get("line") or "no reason given"]
    return measured, [f"the Locust canary run is {document.get('outcome')}: " + "; ".join(reasons)]


def _only_stable_too_small(document):
    """INCONCLUSIVE only because stable, at a high canary weight, served too few predictions.

    The gate's SLO checks all passed and its canary comparison lacked samples of stable alone:
    the canary itself was measured against the SLOs on plenty of calls.
    """
    canary = document.get("canary") or {}
    stable_version = str((canary.get("stable") or {}).get("version"))
    reasons = canary.get("reasons") or []
    return (document.get("outcome") == "INCONCLUSIVE" and canary.get("outcome") == "INCONCLUSIVE"
            and all(check.get("passed") for check in document.get("checks") or [])
            and bool(document.get("checks")) and bool(reasons)
            and all(reason.startswith(f"v{stable_version} has ") for reason in reasons))


def run_step(load_test, step_name, timeout_s=None):
    """Run the gate for one step; return (measurements, reasons). Its report stays in the out dir."""
    out = load_test.out / step_name
    out.mkdir(parents=True, exist_ok=True)
    timeout_s = timeout_s or GRACE_S + 4 * max(load_test.hold_seconds, 30.0)
    try:
        finished = subprocess.run(load_test.command(out), capture_output=True, text=True,
                                  timeout=timeout_s)
        code = finished.returncode
    except subprocess.TimeoutExpired:
        return {"exit_code": None}, [f"the Locust canary run took longer than {timeout_s:g} s"]
    verdict = out / VERDICT_FILE
    document = json.loads(verdict.read_text()) if verdict.is_file() else None
    measured, reasons = judge(document, code)
    measured["report"] = str(out)
    return measured, reasons
