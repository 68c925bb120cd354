"""The command line of `python -m loadtests.bench` / `tfship bench`. Budget: <1 s."""
import pytest

from loadtests.bench import cli, runner


def test_defaults_run_every_section_for_five_seconds_each():
    args = cli.parse_args([])
    assert args.sections == runner.SECTIONS
    assert args.seconds == 5.0 and args.registry_models == 100_000
    assert str(args.out / "results.json") == "build/bench/results.json"
    assert args.repeat == 1


def test_only_picks_sections():
    assert cli.parse_args(["--only", "gateway,registry"]).sections == ("gateway", "registry")


@pytest.mark.parametrize("argv, message", [
    (["--only", "gateway,bogus"], "unknown sections: bogus"),
    (["--seconds", "0.5"], "--seconds must be at least 1"),
    (["--registry-models", "10"], "--registry-models at least 3000"),
    (["--repeat", "0"], "--repeat must be at least 1"),
])
def test_bad_options_are_refused_with_a_message(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        cli.run("bench", argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "tfship bench" in err
