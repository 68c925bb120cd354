"""Train, evaluate and export one model version: the whole model pipeline in order."""
from dataclasses import asdict, dataclass
from pathlib import Path

from model import dataset, export, features, gate, training
from model.preprocessing import Preprocessor
from model.signature import SIGNATURE_NAME, ServingModule

DEFAULT_MODEL_NAME = "penguins"


@dataclass
class Result:
    """What a run produced: the published version and the metadata written beside it."""

    version: int
    path: Path
    metadata: dict


def build_metadata(model_name, config, metrics, stats, data_file):
    return {
        "model_name": model_name,
        "metrics": metrics,
        "input_schema": features.input_schema(stats, SIGNATURE_NAME),
        "feature_statistics": stats,
        "training_data_sha256": dataset.file_sha256(data_file),
        "training_data": Path(data_file).name,
        "training_config": asdict(config),
    }


def run(models_dir, model_name=DEFAULT_MODEL_NAME, config=training.TrainingConfig(),
        gate_config=gate.GateConfig(), stable_version=None, data_file=dataset.DATA_FILE,
        progress=print):
    """Train on the shipped data and publish the next version, or raise gate.GateRefused."""
    rows = dataset.read_rows(data_file)
    train, validation = dataset.split(rows, config.validation_fraction, config.seed)
    progress(f"data: {len(rows)} rows -> {len(train)} train / {len(validation)} validation")
    stats = dataset.statistics(train)
    preprocessor = Preprocessor(stats)
    network = training.build_network(preprocessor.width, config)
    training.fit(network, preprocessor, train, config)
    module = ServingModule(preprocessor, network)
    metrics = training.evaluate(module.serve(training.as_tensors(validation))["probabilities"],
                                validation.labels)
    metrics.update(train_rows=len(train), validation_rows=len(validation))
    progress(f"trained {config.epochs} epochs: validation accuracy {metrics['accuracy']:.4f}, "
             f"log loss {metrics['log_loss']:.4f}")
    metadata = build_metadata(model_name, config, metrics, stats, data_file)
    version, path, recorded = export.export(module, Path(models_dir) / model_name, metadata,
                                            validation.rows(), gate_config, stable_version)
    progress(f"exported {model_name} version {version} to {path}")
    return Result(version=version, path=path, metadata=recorded)
