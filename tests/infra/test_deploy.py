"""The post-deploy sequence: deploy, gate, record; on a failed gate, roll back to the last good.

The Pulumi CLI cannot be installed here and there is no cluster, so `pulumi` and the gate
(`tfship verify`) are small scripts that log their calls; git is real. Budget: under 5 s.
"""
import json
import os
import subprocess
import sys

import pytest

from infra import deploy

FAKE_PULUMI = """#!/bin/sh
echo "pulumi $* @ $(git rev-parse --short HEAD)" >> "$CALLS"
if [ "$1" = config ] && [ "$2" = --json ]; then
  printf '{"tfship:apiImage": {"value": "%s", "secret": false}, "tfship:apiKeySecret": {"secret": true}}' "$(cat IMAGE)"
fi
"""
FAKE_TFSHIP = """#!/bin/sh
echo "tfship $* @ $(git rev-parse --short HEAD)" >> "$CALLS"
test ! -e BROKEN
"""


def git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True, timeout=30).stdout.strip()


@pytest.fixture
def repo(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "ci@example.com")
    git(repo, "config", "user.name", "ci")
    (repo / "IMAGE").write_text("api@sha256:" + "a" * 64)
    git(repo, "add", "IMAGE")
    git(repo, "commit", "-qm", "good")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("pulumi", FAKE_PULUMI), ("tfship", FAKE_TFSHIP)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PULUMI", str(bin_dir / "pulumi"))
    monkeypatch.setenv("TFSHIP", str(bin_dir / "tfship"))
    monkeypatch.setenv("CALLS", str(tmp_path / "calls.log"))
    return repo


def calls(repo):
    return (repo.parent / "calls.log").read_text().splitlines()


def test_good_deploy_is_recorded(repo, tmp_path):
    records = tmp_path / "records"
    assert deploy.run_command(["deploy", "--stack", "staging", "--records", str(records), "--cwd", str(repo)]) == 0
    head = git(repo, "rev-parse", "--short", "HEAD")
    assert calls(repo) == [f"pulumi config --json --stack staging @ {head}",
                           f"pulumi up --yes --skip-preview --stack staging --policy-pack infra/policy @ {head}",
                           f"tfship verify --env staging @ {head}"]
    record = deploy.last_good(records, "staging")
    assert record["commit"] == git(repo, "rev-parse", "HEAD")
    assert record["config"] == {"tfship:apiImage": "api@sha256:" + "a" * 64}, "secrets are never recorded"


def test_failed_gate_rolls_back_to_the_last_good_commit_and_config(repo, tmp_path):
    records = tmp_path / "records"
    assert deploy.run_command(["deploy", "--stack", "prod", "--records", str(records), "--cwd", str(repo)]) == 0
    good = git(repo, "rev-parse", "--short", "HEAD")
    (repo / "BROKEN").write_text("")
    (repo / "IMAGE").write_text("api@sha256:" + "b" * 64)
    git(repo, "add", "BROKEN", "IMAGE")
    git(repo, "commit", "-qm", "bad")
    bad = git(repo, "rev-parse", "--short", "HEAD")
    (repo.parent / "calls.log").write_text("")
    assert deploy.run_command(["deploy", "--stack", "prod", "--records", str(records), "--cwd", str(repo)]) == 1
    assert calls(repo) == [
        f"pulumi config --json --stack prod @ {bad}",
        f"pulumi up --yes --skip-preview --stack prod --policy-pack infra/policy @ {bad}",
        f"tfship verify --env prod @ {bad}",
        f"pulumi config set --stack prod tfship:apiImage api@sha256:{'a' * 64} @ {good}",
        f"pulumi up --yes --skip-preview --stack prod --policy-pack infra/policy @ {good}",
        f"tfship verify --env prod @ {good}",
    ]
    assert deploy.last_good(records, "prod")["commit"].startswith(good), "the bad deploy is not recorded"
    assert git(repo, "worktree", "list").count("\n") == 0, "the rollback worktree is removed"


def test_nothing_to_roll_back_to(repo, tmp_path, capsys):
    (repo / "BROKEN").write_text("")
    assert deploy.run_command(["deploy", "--stack", "dev", "--records", str(tmp_path / "r"), "--cwd", str(repo)]) == 2
    assert "no good deploy of dev is recorded" in capsys.readouterr().out


def test_cli_runs_as_a_module(repo, tmp_path):
    done = subprocess.run([sys.executable, "-m", "infra.deploy", "show", "--stack", "dev", "--records", str(tmp_path)],
                          capture_output=True, text=True, timeout=60, env=os.environ)
    assert done.returncode == 0 and json.loads(done.stdout) is None
