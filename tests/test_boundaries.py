"""The import boundaries: the repo satisfies its import-linter contracts, and a crossing fails them.

Budget: ~10 s (two lint-imports runs).
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tfship", "model", "service", "monitoring", "loadtests", "infra")
LINT = str(Path(sys.executable).with_name("lint-imports"))


def lint(root):
    return subprocess.run([LINT, "--config", str(root / "pyproject.toml")], cwd=root,
                          env=dict(os.environ, PYTHONPATH=str(root)), capture_output=True,
                          text=True, timeout=120)


def test_the_repository_keeps_its_boundaries():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("module, line, contract", [
    ("service/leak.py", "import model.features", "The API never imports the model pipeline"),
    ("service/leak.py", "import tensorflow", "The API never imports the model pipeline"),
    ("loadtests/leak.py", "from model import dataset", "Load tests never import"),
    ("infra/leak.py", "import service.errors", "Infrastructure imports no service code"),
])
def test_a_crossing_import_breaks_the_contract(tmp_path, module, line, contract):
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "model" / "features.py").write_text("")
    (tmp_path / "model" / "dataset.py").write_text("")
    (tmp_path / "service" / "errors.py").write_text("")
    (tmp_path / module).write_text(line + "\n")
    result = lint(tmp_path)
    assert result.returncode != 0
    assert contract in result.stdout and "BROKEN" in result.stdout
