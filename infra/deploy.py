"""Deploy a stack, judge it with the post-deploy gate, and roll back to the last good deploy.

    python -m infra.deploy deploy --stack staging      # pulumi up, tfship verify, record or roll back
    python -m infra.deploy rollback --stack staging    # redeploy the last good record
    python -m infra.deploy show --stack staging        # print the last good record

A record is what a deploy was made of: the git commit of the program and the stack's
non-secret config (image digests included). Rolling back checks that commit out into a
temporary worktree, puts the recorded config back and runs `pulumi up` from there, then runs
the gate again. Secrets are not recorded; they stay encrypted in the stack's own config.
Records are JSON files under --records (default .tfship/deploys/); CI keeps that folder
between runs (see .github/workflows/ci.yml).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PULUMI_TIMEOUT_S = 1800
VERIFY_TIMEOUT_S = 1200
GIT_TIMEOUT_S = 60


class DeployError(RuntimeError):
    """A step of the deploy sequence failed; the message says which and why."""


def step(command: list[str], cwd: Path, timeout: int) -> subprocess.CompletedProcess:
    """Run one step, echoing it; raise DeployError when it fails or times out."""
    print("+", " ".join(command), flush=True)
    try:
        done = subprocess.run(command, cwd=cwd, timeout=timeout, text=True, capture_output=True)
    except subprocess.TimeoutExpired as error:
        raise DeployError(f"{command[0]} {command[1]} timed out after {timeout} s") from error
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        raise DeployError(f"`{' '.join(command[:3])}` exited {done.returncode}")
    return done


def pulumi() -> str:
    """The Pulumi CLI to call (PULUMI overrides, e.g. a pinned binary in CI)."""
    return os.environ.get("PULUMI", "pulumi")


def tfship() -> str:
    """The tfship CLI to call for the gate (TFSHIP overrides)."""
    return os.environ.get("TFSHIP", "tfship")


def current_record(stack: str, cwd: Path) -> dict:
    """Return what is about to be deployed: commit and non-secret config of the stack."""
    commit = step(["git", "rev-parse", "HEAD"], cwd, GIT_TIMEOUT_S).stdout.strip()
    config = json.loads(step([pulumi(), "config", "--json", "--stack", stack], cwd, PULUMI_TIMEOUT_S).stdout)
    plain = {key: entry["value"] for key, entry in config.items() if not entry.get("secret") and "value" in entry}
    return {"stack": stack, "commit": commit, "config": plain, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def record_path(records: Path, stack: str) -> Path:
    """Where a stack's records live."""
    return records / f"{stack}.json"


def last_good(records: Path, stack: str) -> dict | None:
    """The last record of a deploy that passed the gate, or None."""
    path = record_path(records, stack)
    history = json.loads(path.read_text()) if path.exists() else []
    return history[-1] if history else None


def remember(records: Path, record: dict, keep: int = 20) -> None:
    """Append a good deploy to the stack's history (the newest `keep` are kept)."""
    path = record_path(records, record["stack"])
    history = json.loads(path.read_text()) if path.exists() else []
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps((history + [record])[-keep:], indent=2) + "\n")


def up_and_verify(stack: str, cwd: Path) -> None:
    """pulumi up (with the policy pack), then the post-deploy gate; raise on either failing."""
    step([pulumi(), "up", "--yes", "--skip-preview", "--stack", stack, "--policy-pack", "infra/policy"],
        cwd, PULUMI_TIMEOUT_S)
    step([tfship(), "verify", "--env", stack], cwd, VERIFY_TIMEOUT_S)


def rollback(stack: str, records: Path, cwd: Path) -> None:
    """Redeploy the last good record from a worktree of its commit, then verify it."""
    record = last_good(records, stack)
    if record is None:
        raise DeployError(f"no good deploy of {stack} is recorded in {records}: nothing to roll back to")
    print(f"rolling {stack} back to {record['commit']} (deployed {record['time']})", flush=True)
    with tempfile.TemporaryDirectory(prefix="tfship-rollback-") as tmp:
        worktree = Path(tmp) / "tree"
        step(["git", "worktree", "add", "--detach", str(worktree), record["commit"]], cwd, GIT_TIMEOUT_S)
        try:
            # Pulumi.yaml names the virtualenv relative to the project: share the checkout's.
            for venv in (".venv-infra", ".venv"):
                if (cwd / venv).exists() and not (worktree / venv).exists():
                    (worktree / venv).symlink_to(cwd / venv)
            for key, value in sorted(record["config"].items()):
                step([pulumi(), "config", "set", "--stack", stack, key, value], worktree, PULUMI_TIMEOUT_S)
            up_and_verify(stack, worktree)
        finally:
            step(["git", "worktree", "remove", "--force", str(worktree)], cwd, GIT_TIMEOUT_S)


def deploy(stack: str, records: Path, cwd: Path) -> int:
    """Deploy, verify and record; on failure roll back and return 1."""
    record = current_record(stack, cwd)
    try:
        up_and_verify(stack, cwd)
    except DeployError as error:
        print(f"deploy of {stack} at {record['commit']} failed: {error}", flush=True)
        try:
            rollback(stack, records, cwd)
        except DeployError as rollback_error:
            print(f"ROLLBACK FAILED: {rollback_error}", flush=True)
            return 2
        print(f"deploy failed; {stack} is back on its last good deploy", flush=True)
        return 1
    remember(records, record)
    print(f"deploy of {stack} at {record['commit']} passed the gate and is recorded as good", flush=True)
    return 0


def run_command(argv: list[str] | None = None) -> int:
    """Parse the command line and run deploy, rollback or show."""
    parser = argparse.ArgumentParser(prog="python -m infra.deploy", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("deploy", "rollback", "show"))
    parser.add_argument("--stack", required=True, choices=("dev", "staging", "prod"))
    parser.add_argument("--records", type=Path, default=REPO / ".tfship" / "deploys")
    parser.add_argument("--cwd", type=Path, default=REPO, help="the repository to deploy from")
    args = parser.parse_args(argv)
    if args.action == "show":
        print(json.dumps(last_good(args.records, args.stack), indent=2))
        return 0
    if args.action == "rollback":
        try:
            rollback(args.stack, args.records, args.cwd)
        except DeployError as error:
            print(f"ROLLBACK FAILED: {error}", flush=True)
            return 2
        return 0
    return deploy(args.stack, args.records, args.cwd)


if __name__ == "__main__":
    sys.exit(run_command())
