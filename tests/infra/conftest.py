"""Shared fixtures of the infra tests: every stack run under mocks once, rendered once.

The Pulumi tests need the .venv-infra virtualenv (Pulumi's SDK conflicts with TensorFlow's
protobuf): `.venv-infra/bin/pytest tests/infra --ignore=tests/infra/local`. In other
virtualenvs each of those modules skips itself (pytest.importorskip at its top), so that
tests/infra/local keeps running there.
"""
import pytest

INFRA_VENV_ONLY = "Pulumi programs are tested in .venv-infra: .venv-infra/bin/pytest tests/infra"


def _render():
    from infra import render
    return render


@pytest.fixture(scope="session")
def runs():
    """Every stack's mocked run, by stack name."""
    render = _render()
    return {stack: render.run_stack(stack) for stack in render.ALL_STACKS}


@pytest.fixture(scope="session")
def objects(runs):
    """Every stack's Kubernetes objects (as rendered), by stack name."""
    return {stack: _render().manifests(run) for stack, run in runs.items()}


@pytest.fixture(scope="session")
def rendered(tmp_path_factory, runs):
    """A folder holding every stack rendered by the renderer's CLI, one subfolder per stack."""
    out = tmp_path_factory.mktemp("render")
    assert _render().main(["--all", "--out", str(out)]) == 0
    return out
