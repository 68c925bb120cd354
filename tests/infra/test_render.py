"""The renderer writes every object of every stack as YAML, with secrets redacted.

Budget: under 5 s.
"""
import pytest

pytest.importorskip("pulumi", reason="Pulumi programs are tested in .venv-infra")

import yaml

from infra import render


def test_every_stack_is_rendered(rendered, objects):
    for stack in render.ALL_STACKS:
        folder = rendered / stack.replace("/", "-")
        files = sorted(folder.glob("*.yaml"))
        assert len(files) == len(objects[stack]) > 0, stack
        for path in files:
            manifest = yaml.safe_load(path.read_text())
            assert {"apiVersion", "kind", "metadata"} <= set(manifest), path
            assert path.name == render.file_name(manifest)


def test_platform_releases_are_rendered_with_chart_and_version(rendered):
    values = rendered / "platform-prod" / "helm" / "kube-prometheus-stack.yaml"
    text = values.read_text()
    assert text.startswith("# Helm release kube-prometheus-stack in namespace monitoring: chart kube-prometheus-stack")
    assert yaml.safe_load(text)["prometheus"]["prometheusSpec"]["retention"] == "45d"


def test_secret_values_never_reach_the_output(rendered):
    for path in rendered.rglob("*.yaml"):
        manifest = yaml.safe_load(path.read_text())
        if isinstance(manifest, dict) and manifest.get("kind") == "Secret":
            assert set(manifest["stringData"].values()) == {render.REDACTED}, path
        assert "mocked-secret-value" not in path.read_text(), path


def test_single_stack_cli(tmp_path):
    assert render.main(["--stack", "dev", "--out", str(tmp_path / "dev")]) == 0
    assert (tmp_path / "dev" / "tfship-dev.deployment.api-blue.yaml").exists()


def test_refuses_to_replace_files_it_did_not_write(tmp_path, capsys):
    (tmp_path / "mine.yaml").write_text("keep: me\n")
    assert render.main(["--stack", "dev", "--out", str(tmp_path)]) == 1
    assert (tmp_path / "mine.yaml").read_text() == "keep: me\n"
    assert "did not write" in capsys.readouterr().err


def test_rerendering_replaces_the_previous_render(tmp_path):
    out = tmp_path / "dev"
    assert render.main(["--stack", "dev", "--out", str(out)]) == 0
    (out / "stale.yaml").write_text("kind: Stale\n")
    assert render.main(["--stack", "dev", "--out", str(out)]) == 0
    assert not (out / "stale.yaml").exists()
