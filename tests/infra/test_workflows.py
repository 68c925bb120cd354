"""The GitHub Actions workflows: their shape, and that every command they run exists.

Commands are checked against the repository: make targets against the Makefile, `python -m`
modules and scripts against the tree, files named by flags against the tree, Pulumi stacks
against the stack files. Budget: under 2 s.
"""
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
STACKS = {"dev", "staging", "prod"}


def load(name):
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads `on:` as True
    return workflow


def run_lines():
    """Every shell command line of every workflow step, with its file and job."""
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for job_name, job in load(path.name)["jobs"].items():
            for step in job.get("steps", []):
                for line in step.get("run", "").splitlines():
                    line = line.strip()
                    if line and not line.startswith("#"):
                        yield f"{path.name}:{job_name}", line


def make_targets():
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z0-9_.-]+):", text, re.M))


def test_pull_requests_run_tests_render_scans_and_preview():
    ci = load("ci.yml")
    assert "pull_request" in ci["on"] and ci["on"]["push"]["branches"] == ["main"]
    runs = "\n".join(line for where, line in run_lines() if where.startswith("ci.yml"))
    for needed in ("make test", "python -m infra.render", "python -m infra.validate", "checkov --config-file",
                   "pulumi preview", "--policy-pack infra/policy", "pytest tests/infra"):
        assert needed in runs, needed
    assert ci["jobs"]["preview"]["if"] == "github.event_name == 'pull_request'"
    assert set(ci["jobs"]["preview"]["strategy"]["matrix"]["stack"]) == STACKS


def test_main_builds_deploys_dev_then_promotes_through_staging_to_prod():
    jobs = load("ci.yml")["jobs"]
    assert jobs["images"]["if"] == "github.event_name == 'push'"
    files = {step["with"]["file"] for step in jobs["images"]["steps"] if "docker/build-push-action" in step.get("uses", "")}
    assert files == {"service/Dockerfile", "infra/images/loadtests.Dockerfile"}
    assert all((REPO / f).exists() for f in files)
    order = [("deploy-dev", "images"), ("deploy-staging", "deploy-dev"), ("deploy-prod", "deploy-staging")]
    for job, after in order:
        needs = jobs[job]["needs"]
        assert after in (needs if isinstance(needs, list) else [needs]), f"{job} must wait for {after}"
        assert jobs[job]["uses"] == "./.github/workflows/deploy.yml"
        assert "@${{ needs.images.outputs.api }}" in jobs[job]["with"]["api-image"], "deployed by digest"
    assert [jobs[j]["with"]["stack"] for j, _ in order] == ["dev", "staging", "prod"]


def test_deploy_runs_the_gate_with_rollback():
    deploy = load("deploy.yml")
    assert set(deploy["on"]["workflow_call"]["inputs"]) == {"stack", "api-image", "loadtest-image"}
    job = deploy["jobs"]["deploy"]
    assert job["environment"] == "${{ inputs.stack }}" and job["concurrency"]["cancel-in-progress"] is False
    runs = [line for where, line in run_lines() if where.startswith("deploy.yml")]
    assert any("python -m infra.deploy deploy --stack" in line for line in runs)
    release = [i for i, line in enumerate(runs) if "python -m infra.deploy release-api --stack" in line]
    assert release and '--image "${{ inputs.api-image }}"' in runs[release[0]], "the API image is released blue/green"
    assert release[0] > next(i for i, line in enumerate(runs) if "infra.deploy deploy" in line)
    source = (REPO / "infra" / "deploy.py").read_text()
    assert '"verify", "--env"' in source and "def rollback" in source


def test_e2e_job_runs_on_kind_and_says_it_needs_docker():
    ci_text = (WORKFLOWS / "ci.yml").read_text()
    job = load("ci.yml")["jobs"]["e2e-kind"]
    assert any("helm/kind-action" in step.get("uses", "") for step in job["steps"])
    assert "cannot run on machines\n# without a Docker engine" in ci_text
    assert "cannot run where no Docker engine exists" in (REPO / "infra" / "e2e" / "kind.sh").read_text()


@pytest.mark.parametrize("where, line", list(run_lines()), ids=lambda v: v if len(v) < 60 else v[:60])
def test_every_command_exists(where, line):
    words = shlex.split(line.replace("$(", " ").replace(")", " "))
    if words[0] == "make":
        assert set(words[1:]) <= make_targets(), f"{where}: make {' '.join(words[1:])} is not a Makefile target"
    for i, word in enumerate(words):
        if word == "-m" and i > 0 and words[i - 1].endswith("python"):
            module = words[i + 1]
            path = REPO / Path(*module.split("."))
            assert path.with_suffix(".py").exists() or (path / "__main__.py").exists(), f"{where}: no module {module}"
        if re.match(r"^(\.venv[-a-z]*/bin/|infra/|\./)", word):
            target = REPO / word if not word.startswith(".venv") else None
            if target is not None:
                assert target.exists(), f"{where}: {word} does not exist"
            elif word.startswith(".venv"):
                venv, _, tool = word.partition("/bin/")
                assert tool in ("python", "pytest", "checkov", "tfship"), f"{where}: unexpected {word}"
        if word in ("--config-file", "--policy-pack", "-f", "--file"):
            assert (REPO / words[i + 1]).exists(), f"{where}: {words[i + 1]} does not exist"
        if word == "--stack" and not words[i + 1].startswith("$") and "${{" not in words[i + 1]:
            assert words[i + 1] in STACKS, f"{where}: unknown stack {words[i + 1]}"
    if words[0] == "pulumi" and words[1] == "config" and words[2] == "set":
        key = words[-2]
        assert key in yaml.safe_load((REPO / "Pulumi.yaml").read_text())["config"], f"{where}: undeclared key {key}"


def test_venv_tools_are_installed_by_make_setup():
    makefile = (REPO / "Makefile").read_text()
    assert "INFRA_VENV ?= .venv-infra" in makefile and "SCAN_VENV ?= .venv-scan" in makefile


def test_kind_script_is_executable_and_parses():
    script = REPO / "infra" / "e2e" / "kind.sh"
    assert script.stat().st_mode & 0o111
    assert subprocess.run(["bash", "-n", str(script)], timeout=30).returncode == 0
    for action in ("build", "deploy", "diagnose"):
        assert re.search(rf"^{action}\(\) \{{", script.read_text(), re.M)
    for key in re.findall(r"pulumi config set (?:--secret )?\"?\$?([a-zA-Z]+)", script.read_text()):
        if key not in ("key",):
            declared = yaml.safe_load((REPO / "Pulumi.yaml").read_text())["config"]
            platform = yaml.safe_load((REPO / "infra" / "platform" / "Pulumi.yaml").read_text())["config"]
            assert key in declared or key in platform, key
