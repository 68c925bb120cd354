"""Deploy a stack, judge it with the post-deploy gate, and roll back to the last good deploy.

    python -m infra.deploy deploy --stack staging      # pulumi up, tfship verify, record or roll back
    python -m infra.deploy rollback --stack staging    # redeploy the last good record
    python -m infra.deploy show --stack staging        # print the last good record
    python -m infra.deploy release-api --stack staging --image <name>@sha256:<digest> [--expand-to REV]

release-api is the API's blue/green release (infra/components/api.py has the phases): the new
image goes to the idle colour after the expand migration; the switch happens only after that
colour's rollout completed and a smoke check against its own Service passed; the gate runs on
the switched stack and a failure switches straight back (the old colour still runs). Only a
passed gate retires the old colour (scaled to 0, its pods gone), then the contract migration
runs. Any earlier failure puts the stack back to steady on the old colour.

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
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PULUMI_TIMEOUT_S = 1800
VERIFY_TIMEOUT_S = 1200
GIT_TIMEOUT_S = 60
KUBECTL_TIMEOUT_S = 660
ROLLOUT_TIMEOUT = "600s"
SMOKE_TIMEOUT_S = 30
FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+)")


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


def kubectl() -> str:
    """The kubectl to call for rollout checks, port-forwards and scaling (KUBECTL overrides)."""
    return os.environ.get("KUBECTL", "kubectl")


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
    up(stack, cwd)
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


def up(stack: str, cwd: Path) -> None:
    """pulumi up with the policy pack."""
    step([pulumi(), "up", "--yes", "--skip-preview", "--stack", stack, "--policy-pack", "infra/policy"],
         cwd, PULUMI_TIMEOUT_S)


def set_config(stack: str, cwd: Path, **values: str) -> None:
    """Set plain config keys of the stack."""
    for key, value in values.items():
        step([pulumi(), "config", "set", "--stack", stack, key, value], cwd, PULUMI_TIMEOUT_S)


def release_state(stack: str, cwd: Path) -> dict:
    """The deployed blue/green state: the stack's apiRelease output."""
    outputs = json.loads(step([pulumi(), "stack", "output", "--json", "--stack", stack], cwd, PULUMI_TIMEOUT_S).stdout)
    if "apiRelease" not in outputs:
        raise DeployError(f"stack {stack} exports no apiRelease: deploy it once with `deploy` first")
    return outputs["apiRelease"]


def smoke(namespace: str, service: str, cwd: Path, paths: tuple[str, ...] = ("/healthz", "/readyz")) -> None:
    """Port-forward to one colour's own Service and check it answers 200 on each path."""
    command = [kubectl(), "port-forward", "--namespace", namespace, f"service/{service}", ":80"]
    print("+", " ".join(command), flush=True)
    forward = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in forward.stdout:
            lines.put(line)
        lines.put(None)  # kubectl exited

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        port, said, deadline = None, [], time.monotonic() + SMOKE_TIMEOUT_S
        while port is None:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise DeployError(f"no port-forward to service/{service} within {SMOKE_TIMEOUT_S} s") from None
            if line is None:
                raise DeployError(f"port-forward to service/{service} ended: {' '.join(said).strip()}")
            said.append(line)
            match = FORWARDING.search(line)
            port = match and int(match.group(1))
        for path in paths:
            url = f"http://127.0.0.1:{port}{path}"
            try:
                with urllib.request.urlopen(url, timeout=10) as answer:
                    status = answer.status
            except urllib.error.HTTPError as error:
                status = error.code
                error.close()
            except (urllib.error.URLError, OSError) as error:
                raise DeployError(f"smoke check of {service}: {path} failed: {error}") from None
            if status != 200:
                raise DeployError(f"smoke check of {service}: {path} answered {status}")
            print(f"smoke check of {service}: {path} answered 200", flush=True)
    finally:
        forward.terminate()
        try:
            forward.wait(timeout=10)
        except subprocess.TimeoutExpired:
            forward.kill()
            forward.wait(timeout=10)
        reader.join(timeout=5)
        forward.stdout.close()


def retire(namespace: str, deployment: str, selector: dict, cwd: Path) -> None:
    """Scale a colour to 0 and wait until its pods are gone (before a contract migration)."""
    step([kubectl(), "scale", "--namespace", namespace, f"deployment/{deployment}", "--replicas=0"],
         cwd, KUBECTL_TIMEOUT_S)
    labels = ",".join(f"{key}={value}" for key, value in sorted(selector.items()))
    step([kubectl(), "wait", "--namespace", namespace, "--for=delete", "pod", "--selector", labels,
          f"--timeout={ROLLOUT_TIMEOUT}"], cwd, KUBECTL_TIMEOUT_S)


def release_api(stack: str, image: str, expand_to: str, records: Path, cwd: Path) -> int:
    """Release image to the idle colour, check it, switch, gate, then retire the old colour.

    Returns 0 when the new colour is live and the old one retired, 1 when the release failed
    and the old colour serves again.
    """
    state = release_state(stack, cwd)
    if state["phase"] != "steady":
        raise DeployError(f"{stack} is in release phase {state['phase']!r}: a release is under way "
                          "(or was interrupted); put apiReleasePhase back to steady first")
    live, namespace, services = state["liveColour"], state["namespace"], state["services"]
    new = next(colour for colour in services if colour != live)
    image_key = f"api{new.capitalize()}Image"
    if state.get("singleWriter"):
        # SQLite: one writer, so the colours cannot run side by side: switch in one step.
        set_config(stack, cwd, **{image_key: image, "apiLiveColour": new})
        try:
            up(stack, cwd)
            step([tfship(), "verify", "--env", stack], cwd, VERIFY_TIMEOUT_S)
        except DeployError as error:
            print(f"release of {image} failed: {error}; back to {live}", flush=True)
            set_config(stack, cwd, apiLiveColour=live)
            up(stack, cwd)
            return 1
        remember(records, current_record(stack, cwd))
        return 0

    set_config(stack, cwd, **{image_key: image, "apiExpandRevision": expand_to, "apiReleasePhase": "release"})
    try:
        up(stack, cwd)  # the expand Job, then the idle colour's Deployment
        step([kubectl(), "rollout", "status", "--namespace", namespace, f"deployment/{services[new]}",
              f"--timeout={ROLLOUT_TIMEOUT}"], cwd, KUBECTL_TIMEOUT_S)
        smoke(namespace, services[new], cwd)
    except DeployError as error:
        print(f"release of {image} stopped before the switch: {error}; {live} stays live", flush=True)
        set_config(stack, cwd, apiReleasePhase="steady", apiExpandRevision="head")
        up(stack, cwd)
        return 1

    print(f"switching {stack} from {live} to {new}", flush=True)
    set_config(stack, cwd, apiLiveColour=new, apiReleasePhase="switched")
    try:
        up(stack, cwd)
        step([tfship(), "verify", "--env", stack], cwd, VERIFY_TIMEOUT_S)
    except DeployError as error:
        print(f"{new} failed after the switch: {error}; switching back to {live}", flush=True)
        set_config(stack, cwd, apiLiveColour=live, apiReleasePhase="release")
        up(stack, cwd)  # a selector change: the old colour never stopped
        set_config(stack, cwd, apiReleasePhase="steady", apiExpandRevision="head")
        up(stack, cwd)
        return 1

    print(f"{new} passed the gate; retiring {live}", flush=True)
    retire(namespace, services[live], state["selectors"][live], cwd)
    set_config(stack, cwd, apiReleasePhase="steady")
    up(stack, cwd)  # the old colour at 0 replicas, then the contract migration
    set_config(stack, cwd, apiExpandRevision="head")
    remember(records, current_record(stack, cwd))
    print(f"{stack} serves {image} from {new}; recorded as good", flush=True)
    return 0


def run_command(argv: list[str] | None = None) -> int:
    """Parse the command line and run deploy, rollback or show."""
    parser = argparse.ArgumentParser(prog="python -m infra.deploy", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("deploy", "rollback", "show", "release-api"))
    parser.add_argument("--stack", required=True, choices=("dev", "staging", "prod"))
    parser.add_argument("--records", type=Path, default=REPO / ".tfship" / "deploys")
    parser.add_argument("--cwd", type=Path, default=REPO, help="the repository to deploy from")
    parser.add_argument("--image", help="release-api: the API image to release, pinned by digest")
    parser.add_argument("--expand-to", default="head",
                        help="release-api: the revision the expand migration stops at (default head: "
                        "no contract migrations in this release)")
    args = parser.parse_args(argv)
    if args.action == "release-api":
        if not args.image or "@sha256:" not in args.image:
            parser.error("release-api needs --image <name>@sha256:<digest>")
        try:
            return release_api(args.stack, args.image, args.expand_to, args.records, args.cwd)
        except DeployError as error:
            print(f"RELEASE FAILED: {error}", flush=True)
            return 2
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
