"""The API's blue/green release (`python -m infra.deploy release-api`): check, switch, gate, retire.

No Pulumi CLI and no cluster here: `pulumi` is a small script keeping the stack's config in a
JSON file (and deriving the apiRelease output from it), `kubectl` another whose port-forward
serves real HTTP on a free port (its /readyz answers 200 or 503), `tfship verify` passes or
fails on demand. Each `pulumi up` logs the config it would deploy. Budget: under 10 s.
"""
import json
import sys

import pytest

from infra import deploy

NEW = "ghcr.io/example/tfship-api:0.2.0@sha256:" + "b" * 64
OLD = "ghcr.io/example/tfship-api:0.1.0@sha256:" + "a" * 64

FAKE_PULUMI = r'''
import json, os, sys
state, log = os.environ["STATE"], os.environ["CALLS"]
config = json.load(open(state))
args = sys.argv[1:]
def write(line):
    open(log, "a").write(line + "\n")
if args[:2] == ["config", "set"]:
    config[args[-2]] = args[-1]
    json.dump(config, open(state, "w"))
elif args[:2] == ["config", "--json"]:
    print(json.dumps({"tfship:" + k: {"value": v, "secret": False} for k, v in config.items()}))
elif args[:2] == ["stack", "output"]:
    print(json.dumps({"apiRelease": {"namespace": "tfship-staging", "liveColour": config["apiLiveColour"],
                                     "phase": config["apiReleasePhase"], "liveService": "api",
                                     "services": {"blue": "api-blue", "green": "api-green"},
                                     "selectors": {c: {"app.kubernetes.io/name": "api", "tfship.io/colour": c}
                                                   for c in ("blue", "green")},
                                     "singleWriter": config.get("databaseKind") == "sqlite"}}))
elif args[0] == "up":
    write("up live={apiLiveColour} phase={apiReleasePhase} green={apiGreenImage} expand={apiExpandRevision}"
          .format(**config))
'''
FAKE_KUBECTL = r'''
import http.server, os, sys
args = sys.argv[1:]
open(os.environ["CALLS"], "a").write("kubectl " + " ".join(args) + "\n")
if args[0] == "rollout" and os.path.exists(os.path.join(os.environ["FLAGS"], "rollout-stuck")):
    sys.exit(1)
if args[0] == "port-forward" and os.path.exists(os.path.join(os.environ["FLAGS"], "no-pods")):
    print("error: no running pods for service/" + args[-2].split("/")[1])
    sys.exit(1)
if args[0] == "port-forward":
    ready = 503 if os.path.exists(os.path.join(os.environ["FLAGS"], "not-ready")) else 200
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(ready if self.path == "/readyz" else 200)
            self.end_headers()
        def log_message(self, *a):
            pass
    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    print(f"Forwarding from 127.0.0.1:{server.server_port} -> 8080", flush=True)
    server.serve_forever()
'''
FAKE_TFSHIP = r'''
import os, sys
open(os.environ["CALLS"], "a").write("tfship " + " ".join(sys.argv[1:]) + "\n")
sys.exit(1 if os.path.exists(os.path.join(os.environ["FLAGS"], "gate-fails")) else 0)
'''


@pytest.fixture
def stack(tmp_path, monkeypatch):
    """A fake staging stack live on blue with OLD, steady; returns helpers to read what happened."""
    bin_dir, flags = tmp_path / "bin", tmp_path / "flags"
    bin_dir.mkdir()
    flags.mkdir()
    for name, text in (("pulumi", FAKE_PULUMI), ("kubectl", FAKE_KUBECTL), ("tfship", FAKE_TFSHIP)):
        (bin_dir / name).write_text(f"#!{sys.executable}\n{text}")
        (bin_dir / name).chmod(0o755)
        monkeypatch.setenv(name.upper(), str(bin_dir / name))
    state = tmp_path / "config.json"
    state.write_text(json.dumps({"apiLiveColour": "blue", "apiReleasePhase": "steady", "apiBlueImage": OLD,
                                 "apiGreenImage": OLD, "apiExpandRevision": "head"}))
    monkeypatch.setenv("STATE", str(state))
    monkeypatch.setenv("CALLS", str(tmp_path / "calls.log"))
    monkeypatch.setenv("FLAGS", str(flags))
    monkeypatch.setattr(deploy, "current_record", lambda s, cwd: {"stack": s, "commit": "c0ffee",
                                                                   "config": json.loads(state.read_text())})

    class Stack:
        records = tmp_path / "records"

        @staticmethod
        def flag(name):
            (flags / name).write_text("")

        @staticmethod
        def config():
            return json.loads(state.read_text())

        @staticmethod
        def calls():
            log = tmp_path / "calls.log"
            return log.read_text().splitlines() if log.exists() else []

        @staticmethod
        def release(*extra):
            return deploy.run_command(["release-api", "--stack", "staging", "--image", NEW,
                                       "--records", str(Stack.records), "--cwd", str(tmp_path), *extra])
    return Stack


def interesting(calls):
    return [c for c in calls if c.startswith(("up ", "tfship ", "kubectl rollout", "kubectl port-forward",
                                              "kubectl scale", "kubectl wait"))]


def test_good_release_switches_after_the_checks_and_retires_the_old_colour_last(stack):
    assert stack.release("--expand-to", "0004") == 0
    assert interesting(stack.calls()) == [
        f"up live=blue phase=release green={NEW} expand=0004",
        "kubectl rollout status --namespace tfship-staging deployment/api-green --timeout=600s",
        "kubectl port-forward --namespace tfship-staging service/api-green :80",
        f"up live=green phase=switched green={NEW} expand=0004",
        "tfship verify --env staging",
        "kubectl scale --namespace tfship-staging deployment/api-blue --replicas=0",
        "kubectl wait --namespace tfship-staging --for=delete pod --selector "
        "app.kubernetes.io/name=api,tfship.io/colour=blue --timeout=600s",
        f"up live=green phase=steady green={NEW} expand=0004",
    ]
    assert stack.config() == {"apiLiveColour": "green", "apiReleasePhase": "steady", "apiBlueImage": OLD,
                              "apiGreenImage": NEW, "apiExpandRevision": "head"}
    assert deploy.last_good(stack.records, "staging")["config"]["apiGreenImage"] == NEW


def test_failed_smoke_check_never_switches(stack):
    stack.flag("not-ready")
    assert stack.release() == 1
    ups = [c for c in stack.calls() if c.startswith("up ")]
    assert ups == [f"up live=blue phase=release green={NEW} expand=head",
                   f"up live=blue phase=steady green={NEW} expand=head"]
    assert not any(c.startswith("tfship") for c in stack.calls()), "no gate: nothing was switched"
    assert stack.config()["apiLiveColour"] == "blue" and deploy.last_good(stack.records, "staging") is None


def test_incomplete_rollout_never_switches(stack):
    stack.flag("rollout-stuck")
    assert stack.release() == 1
    assert not any("port-forward" in c or "live=green" in c for c in stack.calls())
    assert stack.config()["apiReleasePhase"] == "steady"


def test_failed_gate_switches_straight_back_while_the_old_colour_runs(stack):
    stack.flag("gate-fails")
    assert stack.release("--expand-to", "0004") == 1
    flow = interesting(stack.calls())
    gate = flow.index("tfship verify --env staging")
    assert flow[gate - 1] == f"up live=green phase=switched green={NEW} expand=0004"
    assert flow[gate + 1] == f"up live=blue phase=release green={NEW} expand=0004", "old colour still running"
    assert flow[gate + 2] == f"up live=blue phase=steady green={NEW} expand=head", "then the new one is retired"
    assert not any(c.startswith("kubectl scale") for c in flow), "the old colour was never scaled down"
    assert stack.config()["apiLiveColour"] == "blue"


def test_release_refuses_to_start_during_another(stack):
    deploy.set_config("staging", stack.records.parent, apiReleasePhase="switched")
    assert stack.release() == 2
    assert not any(c.startswith("up ") for c in stack.calls())


def test_image_must_be_pinned(stack, capsys):
    with pytest.raises(SystemExit):
        deploy.run_command(["release-api", "--stack", "staging", "--image", "ghcr.io/example/tfship-api:latest"])
    assert "@sha256" in capsys.readouterr().err


def test_a_port_forward_that_fails_ends_the_release_with_kubectls_words(stack, capsys):
    stack.flag("no-pods")
    assert stack.release() == 1
    assert "port-forward to service/api-green ended: error: no running pods" in capsys.readouterr().out
    assert stack.config()["apiLiveColour"] == "blue"
