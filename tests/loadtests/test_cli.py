"""`tfship verify` without a target: URLs, personas per environment, usage errors. Budget: < 1 s."""
import json

import pytest

from loadtests import cli


def test_local_uses_the_local_api_port(monkeypatch):
    monkeypatch.setenv("TFSHIP_API_PORT", "18080")
    assert cli.target_url("local") == "http://127.0.0.1:18080"
    assert cli.target_url("local", "http://example.test:81/") == "http://example.test:81"


def test_a_stack_url_comes_from_its_outputs_file_or_the_command_line(tmp_path):
    with pytest.raises(cli.UsageError, match="pass --url with the Pulumi stack's exported api_url"):
        cli.target_url("staging", outputs=tmp_path)
    (tmp_path / "staging.json").write_text(json.dumps({"api_url": "https://api.staging.example/"}))
    assert cli.target_url("staging", outputs=tmp_path) == "https://api.staging.example"


def test_prod_runs_only_the_read_and_predict_personas():
    names = {path.rsplit("/", 1)[1] for path in cli.locustfiles("prod")}
    assert names == {"shapes.py", "predict.py", "registry_reader.py"}
    assert "registry_writer.py" in {path.rsplit("/", 1)[1] for path in cli.locustfiles("staging")}


def test_keys_travel_as_file_paths_not_values(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("tfs_secret_value\n")
    args = cli.parser().parse_args(["--env", "dev", "--api-key-file", str(key_file)])
    command = cli.locust_command(args, "http://x", tmp_path)
    assert str(key_file) in command and not any("tfs_secret_value" in part for part in command)
    assert command[command.index("--slo-profile") + 1] == "dev"


def test_local_defaults_to_the_keys_the_local_stack_wrote(monkeypatch, tmp_path):
    monkeypatch.setenv("TFSHIP_STATE_DIR", str(tmp_path))
    for variable in ("TFSHIP_API_KEY", "TFSHIP_PREDICT_API_KEY"):
        monkeypatch.delenv(variable, raising=False)
    (tmp_path / "admin.key").write_text("a\n")
    (tmp_path / "predictor.key").write_text("p\n")
    args = cli.parser().parse_args(["--env", "local"])
    cli._default_to_local_keys(args)
    assert (args.api_key_file, args.predict_api_key_file) == (str(tmp_path / "admin.key"),
                                                              str(tmp_path / "predictor.key"))


def test_usage_errors_exit_2(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("TFSHIP_STATE_DIR", str(tmp_path))  # no local keys there
    monkeypatch.delenv("TFSHIP_API_KEY", raising=False)
    assert cli.run("verify", ["--env", "prod"]) == cli.EXIT_USAGE
    assert "pass --url" in capsys.readouterr().err
    assert cli.run("verify", ["--env", "local"]) == cli.EXIT_USAGE
    assert "--api-key-file" in capsys.readouterr().err
