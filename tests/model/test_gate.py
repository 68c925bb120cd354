"""The quality gate's rules and baselines. Budget: 1 s."""
import json

import pytest

from model import gate
from model.versions import metadata_path


def _version(model_dir, version, accuracy):
    path = metadata_path(model_dir / str(version))
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"metrics": {"accuracy": accuracy}}))


def test_refuses_below_the_floor():
    with pytest.raises(gate.GateRefused, match="below the floor 0.9000"):
        gate.check({"accuracy": 0.5}, gate.GateConfig(min_accuracy=0.9))


def test_refuses_a_regression_past_the_margin_and_allows_one_within():
    config = gate.GateConfig(min_accuracy=0.5, max_regression=0.02)
    with pytest.raises(gate.GateRefused, match="worse than version 4's 0.9800"):
        gate.check({"accuracy": 0.95}, config, 4, {"accuracy": 0.98})
    decision = gate.check({"accuracy": 0.97}, config, 4, {"accuracy": 0.98})
    assert decision["passed"] and decision["baseline_version"] == 4


def test_baseline_is_stable_else_latest(tmp_path):
    assert gate.baseline(tmp_path) == (None, None)
    _version(tmp_path, 1, 0.99)
    _version(tmp_path, 2, 0.91)
    (tmp_path / ".tmp-export-x").mkdir()
    assert gate.baseline(tmp_path) == (2, {"accuracy": 0.91})
    assert gate.baseline(tmp_path, stable_version=1) == (1, {"accuracy": 0.99})
    assert gate.baseline(tmp_path, stable_version=9) == (2, {"accuracy": 0.91})


def test_stable_version_is_read_from_a_tf_serving_model_config(tmp_path):
    config = tmp_path / "models.config"
    config.write_text('model_config_list { config { name: "penguins" base_path: "/m" '
                      'model_platform: "tensorflow" version_labels { key: "stable" value: 3 } } }')
    assert gate.stable_from_model_config(config, "penguins") == 3
    assert gate.stable_from_model_config(config, "other") is None
    assert gate.stable_from_model_config(None, "penguins") is None
