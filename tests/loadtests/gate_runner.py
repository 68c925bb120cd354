"""Run `tfship verify` (loadtests.cli) as a subprocess and read back what it wrote."""
import json
import os
import subprocess
import sys

HOLD_SECONDS = "7"  # 2 s spawning + 7 s at 25 rps, less 3 s of warm-up: ~150 judged predictions (min 100)
RUN_TIMEOUT_S = 90


def start_gate(target, out, *extra, env="local"):
    """Start `tfship verify` against a target (url, admin_key, predictor_key); keys travel in files."""
    out.mkdir(parents=True, exist_ok=True)
    key_files = []
    for option, key in (("--api-key-file", target.admin_key), ("--predict-api-key-file", target.predictor_key)):
        (out / option).write_text(key + "\n")
        key_files += [option, str(out / option)]
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("TFSHIP_API_KEY", "TFSHIP_PREDICT"))}
    return subprocess.Popen(
        [sys.executable, "-m", "loadtests.cli", "--env", env, "--url", target.url, "--profile", "test",
         *key_files, "--out", str(out / "report"), "--hold-seconds", HOLD_SECONDS, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environ)


def finish(process):
    """Wait for a gate run; return (exit code, its last line, the verdict document, the report folder)."""
    output, _ = process.communicate(timeout=RUN_TIMEOUT_S)
    lines = output.strip().splitlines()
    report = next(line.split(": ", 1)[1] for line in lines if line.startswith("[verify] SLO report: "))
    folder = os.path.dirname(report)
    with open(os.path.join(folder, "slo-verdict.json")) as handle:
        return process.returncode, lines[-1], json.load(handle), folder


def check_named(verdict, name):
    return next(c for c in verdict["checks"] if c["name"] == name)


def failed_only_on_latency(verdict):
    failed = {c["name"] for c in verdict["checks"] if not c["passed"]}
    canary_errors = verdict["canary"] and "error ratio" in " ".join(verdict["canary"]["reasons"])
    return failed <= {"p95", "p99"} and not canary_errors
