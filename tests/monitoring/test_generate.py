"""The committed generated files are exactly what the generator writes now. Budget: < 3 s."""
import shutil

from monitoring import generate


def test_committed_files_are_up_to_date():
    outdated = generate.stale()
    assert not outdated, f"regenerate with `python -m monitoring.generate`: {outdated}"


def test_check_reports_an_edited_and_an_unknown_file(tmp_path):
    root = tmp_path / "generated"
    shutil.copytree(generate.GENERATED, root)
    rules = root / "prometheus" / "slo-prod.rules.yml"
    rules.write_text(rules.read_text().replace("14.4", "1.44"))
    (root / "grafana" / "stray.json").write_text("{}")
    assert generate.stale(root) == ["grafana/stray.json", "prometheus/slo-prod.rules.yml"]
    generate.write(root)
    assert generate.stale(root) == []


def test_check_command_exit_code(capsys):
    assert generate.main(["--check"]) == 0


def test_every_profile_and_kind_is_generated():
    paths = set(generate.files())
    for profile in ("local", "dev", "staging", "prod", "test"):
        assert f"prometheus/slo-{profile}.rules.yml" in paths
        assert f"prometheus/tests/slo-{profile}.test.yml" in paths
    assert {"prometheus/components.rules.yml", "alertmanager/alertmanager.yml", "grafana/api.json",
            "grafana/model-server.json", "grafana/slo.json", "grafana/canary.json"} <= paths
