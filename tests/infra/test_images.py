"""The images the stacks run: service/Dockerfile and infra/images/loadtests.Dockerfile.

No Docker engine here, so the Dockerfiles are checked as text against the repository: non-root
with the UID the pods run as, slim base, no TensorFlow, sources that exist, the port and
arguments the Kubernetes objects expect. CI builds them for real. Budget: under 1 s.
"""
import re
import tomllib
from pathlib import Path

import pytest

from infra import kube

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = [REPO / "service" / "Dockerfile", REPO / "infra" / "images" / "loadtests.Dockerfile"]


def instructions(path):
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    return [(line.split()[0].upper(), line.split(None, 1)[1]) for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_runs_slim_and_non_root_as_the_pods_do(path):
    steps = instructions(path)
    final = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    users = [arg for op, arg in steps[final:] if op == "USER"]
    assert users == [f"{kube.RUN_AS_USER}:{kube.RUN_AS_USER}"]
    base = next(arg for op, arg in steps if op == "ARG" and arg.startswith("PYTHON_IMAGE="))
    assert base.endswith("-slim-bookworm")


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_copied_sources_exist_and_are_in_the_build_context(path):
    ignore = (REPO / ".dockerignore").read_text()
    for op, arg in instructions(path):
        if op == "COPY" and not arg.startswith("--from"):
            *sources, _ = arg.split()
            for source in sources:
                assert (REPO / source).exists() or source == "README.md", f"{path.name}: {source} is missing"
                top = source.split("/")[0]
                assert f"!{source}" in ignore or f"!{top}/**" in ignore or f"!{source}/**" in ignore, \
                    f".dockerignore leaves {source} out of the build context"


def test_api_image_installs_the_api_extra_without_tensorflow():
    steps = instructions(REPO / "service" / "Dockerfile")
    installs = [arg for op, arg in steps if op == "RUN" and "pip install" in arg]
    assert len(installs) == 1 and '--constraint requirements.lock ".[api]"' in installs[0]
    assert '! /opt/tfship/bin/python -c "import tensorflow"' in installs[0], "the build fails if TF got in"
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert not [d for d in extras["api"] if re.match(r"(tensorflow|keras)", d)]


def test_api_image_starts_what_the_deployment_runs():
    pytest.importorskip("pulumi", reason="Pulumi programs are tested in .venv-infra")
    from infra.components import api
    steps = instructions(REPO / "service" / "Dockerfile")
    assert ("ENTRYPOINT", '["tfship"]') in steps
    assert ("CMD", f'["api", "--host", "0.0.0.0", "--port", "{api.PORT}"]') in steps
    assert ("EXPOSE", str(api.PORT)) in steps


def test_loadtest_image_runs_the_persona_locustfiles():
    entry = next(arg for op, arg in instructions(REPO / "infra" / "images" / "loadtests.Dockerfile") if op == "ENTRYPOINT")
    files = re.search(r'"-f", "([^"]+)"', entry).group(1).split(",")
    assert files and all((REPO / f.removeprefix("/app/")).exists() for f in files)
