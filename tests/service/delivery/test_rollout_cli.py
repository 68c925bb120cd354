"""`tfship rollout` argument handling (the rollouts themselves: test_rollout_e2e.py). Budget: <1 s."""
import argparse

import pytest

from service.delivery import rollout_cli


def test_steps_are_increasing_percentages():
    assert rollout_cli.parse_steps("5,25,50,100") == [0.05, 0.25, 0.5, 1.0]
    assert rollout_cli.parse_steps("100") == [1.0]


@pytest.mark.parametrize("text", ["", "50,25", "0,50", "5,150", "five", "5,5"])
def test_bad_steps_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError):
        rollout_cli.parse_steps(text)


def test_missing_registry_key_or_model_is_a_usage_error(monkeypatch, capsys):
    for name in ("TFSHIP_REGISTRY_URL", "TFSHIP_KEY_FILE", "TFSHIP_MODEL_NAME"):
        monkeypatch.delenv(name, raising=False)
    assert rollout_cli.run("rollout", ["status", "--model", "m"]) == 2
    assert "--registry, --key-file" in capsys.readouterr().err


def test_an_unreadable_key_file_is_a_clear_error(tmp_path, capsys):
    code = rollout_cli.run("rollout", ["abort", "--registry", "http://127.0.0.1:9",
                                       "--key-file", str(tmp_path / "none"), "--model", "m"])
    assert code == 1 and "cannot read the key file" in capsys.readouterr().err


def test_an_unknown_slo_profile_is_refused_before_anything_changes(tmp_path, capsys):
    key = tmp_path / "key"
    key.write_text("k\n")
    code = rollout_cli.run("rollout", ["start", "--version", "2", "--slo-profile", "nope",
                                       "--registry", "http://127.0.0.1:9",
                                       "--key-file", str(key), "--model", "m"])
    assert code == 1 and "no SLO" in capsys.readouterr().err
