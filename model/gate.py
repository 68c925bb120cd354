"""The quality gate: a version ships only if it clears a floor and does not regress."""
import json
from dataclasses import dataclass
from pathlib import Path

from model.versions import metadata_path, version_dirs

GATE_METRIC = "accuracy"


class GateRefused(Exception):
    """The candidate may not ship; the message says which rule and which numbers."""


@dataclass(frozen=True)
class GateConfig:
    """The floor for the gate metric, and how far below the baseline a candidate may fall."""

    min_accuracy: float = 0.90
    max_regression: float = 0.02


def load_metrics(version_dir):
    """The recorded metrics of an exported version, or None when it has no metadata."""
    path = metadata_path(version_dir)
    if not path.exists():
        return None
    return json.loads(path.read_text())["metrics"]


def baseline(model_dir, stable_version=None):
    """The version to beat: the stable one when known, else the latest exported."""
    versions = version_dirs(model_dir)
    if stable_version is not None and stable_version in versions:
        return stable_version, load_metrics(versions[stable_version])
    if versions:
        latest = max(versions)
        return latest, load_metrics(versions[latest])
    return None, None


def check(candidate_metrics, config, baseline_version=None, baseline_metrics=None):
    """Raise GateRefused when the candidate is below the floor or regresses past the margin."""
    score = candidate_metrics[GATE_METRIC]
    if score < config.min_accuracy:
        raise GateRefused(
            f"validation {GATE_METRIC} {score:.4f} is below the floor {config.min_accuracy:.4f}")
    if baseline_metrics is not None:
        reference = baseline_metrics[GATE_METRIC]
        if score < reference - config.max_regression:
            raise GateRefused(
                f"validation {GATE_METRIC} {score:.4f} is worse than version {baseline_version}'s "
                f"{reference:.4f} by more than the allowed {config.max_regression:.4f}")
    return {"metric": GATE_METRIC, "value": score, "floor": config.min_accuracy,
            "baseline_version": baseline_version,
            "baseline_value": None if baseline_metrics is None else baseline_metrics[GATE_METRIC],
            "max_regression": config.max_regression, "passed": True}


def stable_from_model_config(config_file, model_name):
    """The version a TF Serving model config file labels `stable` for this model, if any."""
    if config_file is None or not Path(config_file).exists():
        return None
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = text_format.Parse(Path(config_file).read_text(),
                               model_server_config_pb2.ModelServerConfig())
    for model in config.model_config_list.config:
        if model.name == model_name and "stable" in model.version_labels:
            return int(model.version_labels["stable"])
    return None
