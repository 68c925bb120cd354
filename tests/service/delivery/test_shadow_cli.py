"""`tfship rollout shadow start|status|stop` argument handling and report lines (the commands
against a real stack: test_shadow_stack.py). Budget: <1 s."""
import argparse

import pytest

from service.delivery import rollout_cli, shadow_cli


@pytest.mark.parametrize("text, share", [("0.1", 0.1), ("10%", 0.1), ("1", 1.0), ("0", 0.0),
                                         ("100%", 1.0)])
def test_shares_are_fractions_or_percentages(text, share):
    assert shadow_cli.parse_share(text) == pytest.approx(share)


@pytest.mark.parametrize("text", ["1.5", "-0.1", "101%", "ten", ""])
def test_bad_shares_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError):
        shadow_cli.parse_share(text)


def test_the_commands_parse():
    parser = rollout_cli.parser()
    args = parser.parse_args(["shadow", "start", "3", "--share", "25%", "--model", "m",
                              "--model-server", "http://a", "--model-server", "http://b"])
    assert (args.action, args.shadow_action, args.version, args.share) == ("shadow", "start", 3, 0.25)
    assert args.model_servers == ["http://a", "http://b"]
    assert parser.parse_args(["shadow", "status", "--version", "4"]).version == 4
    assert parser.parse_args(["shadow", "stop", "--reason", "done"]).reason == "done"


def test_start_needs_a_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        rollout_cli.parser().parse_args(["shadow", "start", "--share", "0.1"])
    assert exit_info.value.code == 2 and "version" in capsys.readouterr().err


def test_an_unreachable_registry_is_a_clear_error(tmp_path, capsys):
    key = tmp_path / "key"
    key.write_text("k\n")
    code = rollout_cli.run("rollout", ["shadow", "status", "--registry", "http://127.0.0.1:9",
                                       "--key-file", str(key), "--model", "m"])
    assert code == 1 and "unreachable" in capsys.readouterr().err


def test_the_report_names_agreement_and_latency():
    lines = shadow_cli.describe({
        "primary_version": 2, "shadow_version": 3, "requests": 10, "failed": 1, "dropped": 4,
        "rows": 9, "agreed": 8, "agreement_rate": 8 / 9,
        "primary_latency": {"mean_s": 0.002, "p50_s": 0.002, "p95_s": 0.004, "p99_s": 0.005},
        "shadow_latency": {"mean_s": None, "p50_s": None, "p95_s": None, "p99_s": None}})
    assert lines[0] == "  shadow 3 vs stable 2: 10 mirrored, 1 failed, 4 dropped (queue full)"
    assert "88.89% (8/9 rows)" in lines[1]
    assert "stable 2 ms / 2 ms / 4 ms / 5 ms; shadow - / - / - / -" in lines[2]
