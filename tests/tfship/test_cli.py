"""The `tfship` dispatcher: every command resolves, and API commands never load TensorFlow.

Budget: ~5 s.
"""
import importlib
import subprocess
import sys

import pytest

from tfship import cli


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_command_names_a_module_with_run(command):
    module = importlib.import_module(cli.COMMANDS[command][0])
    assert callable(module.run)


def test_help_lists_every_command():
    result = subprocess.run([sys.executable, "-m", "tfship.cli", "--help"], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0
    for command in cli.COMMANDS:
        assert command in result.stdout


def test_unknown_command_is_refused():
    result = subprocess.run([sys.executable, "-m", "tfship.cli", "launch"], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2 and "invalid choice: 'launch'" in result.stderr


@pytest.mark.parametrize("argv", [["keys", "--help"], ["db", "--help"], ["api", "--help"],
                                  ["verify", "--help"]])
def test_api_and_gate_commands_never_import_tensorflow(argv):
    probe = ("import sys\nfrom tfship import cli\ntry:\n    cli.main(%r)\nexcept SystemExit:\n"
             "    pass\nassert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
             "print('clean')" % argv)
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and "clean" in result.stdout, result.stderr
