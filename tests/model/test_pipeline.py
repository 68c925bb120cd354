"""Training, export layout, signature, warmup records, metadata and the gate at export.

Budget: ~40 s (TensorFlow import plus two trainings shared with the rest of the session).
"""
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from model import dataset, export, gate, pipeline, serving_check
from model.features import CLASSES, FEATURES
from model.training import TrainingConfig, as_tensors
from model.versions import metadata_path, version_dirs, warmup_path


def test_versions_are_consecutive_integers_in_tf_serving_layout(trained_models):
    base, results = trained_models
    assert [r.version for r in results] == [1, 2]
    model_dir = base / "penguins"
    assert sorted(version_dirs(model_dir)) == [1, 2]
    assert not [p for p in model_dir.iterdir() if p.name.startswith(".tmp-export-")]
    for result in results:
        assert (result.path / "saved_model.pb").exists()
        assert result.path.stat().st_mode & 0o055 == 0o055  # readable by a server running as another user


def test_signature_has_named_typed_inputs_and_named_outputs(trained_models):
    _, results = trained_models
    signature = tf.saved_model.load(str(results[0].path)).signatures["serving_default"]
    inputs = signature.structured_input_signature[1]
    assert set(inputs) == {f.name for f in FEATURES}
    for f in FEATURES:
        assert inputs[f.name].dtype == (tf.float32 if f.kind == "numeric" else tf.string)
        assert inputs[f.name].shape.as_list() == [None]
    outputs = signature.structured_outputs
    assert {k: v.dtype for k, v in outputs.items()} == {
        "probabilities": tf.float32, "class_id": tf.int64, "class_name": tf.string}


def test_validation_metrics_are_reported_and_good(trained_models):
    _, results = trained_models
    for result in results:
        metrics = result.metadata["metrics"]
        assert metrics["accuracy"] >= 0.9
        assert metrics["train_rows"] + metrics["validation_rows"] == 344


def test_metadata_records_schema_statistics_hash_and_time(trained_models):
    _, results = trained_models
    recorded = json.loads(metadata_path(results[1].path).read_text())
    assert recorded["version"] == 2 and recorded["model_name"] == "penguins"
    assert recorded["training_data_sha256"] == dataset.file_sha256()
    assert recorded["created_at"].endswith("+00:00")
    schema = recorded["input_schema"]
    assert schema["inputs"]["island"]["categories"] == ["Biscoe", "Dream", "Torgersen"]
    assert schema["inputs"]["bill_length_mm"] == {
        "dtype": "float32", "shape": [-1], "kind": "numeric", "missing": "NaN",
        "description": "Bill length in millimetres"}
    assert schema["classes"] == list(CLASSES)
    assert set(recorded["feature_statistics"]) == {f.name for f in FEATURES}
    assert recorded["gate"]["passed"] and recorded["gate"]["baseline_version"] == 1


def test_warmup_records_are_prediction_logs_the_signature_accepts(trained_models):
    from tensorflow_serving.apis import prediction_log_pb2

    _, results = trained_models
    signature = tf.saved_model.load(str(results[0].path)).signatures["serving_default"]
    records = list(tf.data.TFRecordDataset(str(warmup_path(results[0].path))))
    assert len(records) == len(export.WARMUP_BATCH_SIZES)
    for record, size in zip(records, export.WARMUP_BATCH_SIZES):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        assert request.model_spec.name == "penguins"
        assert request.model_spec.signature_name == "serving_default"
        tensors = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        assert signature(**tensors)["probabilities"].shape == (size, len(CLASSES))


def test_missing_and_unknown_values_have_defined_behaviour(trained_models):
    _, results = trained_models
    signature = tf.saved_model.load(str(results[0].path)).signatures["serving_default"]
    _, validation = dataset.split(dataset.read_rows())
    row = {k: v[:1] for k, v in as_tensors(validation).items()}
    base = signature(**row)["probabilities"].numpy()
    missing = dict(row, bill_depth_mm=tf.constant([math.nan]), sex=tf.constant([""]))
    probabilities = signature(**missing)["probabilities"].numpy()
    assert np.isfinite(probabilities).all() and np.allclose(probabilities.sum(), 1.0, atol=1e-5)
    unknown = signature(**dict(missing, sex=tf.constant(["unknown"])))["probabilities"].numpy()
    assert np.allclose(unknown, probabilities)  # unseen categories share the missing bucket
    assert not np.allclose(base, probabilities)


def test_a_refused_version_never_appears_where_servers_look(tmp_path):
    model_dir = tmp_path / "penguins"
    pipeline.run(tmp_path, config=TrainingConfig(epochs=20), progress=lambda _: None,
                 gate_config=gate.GateConfig(min_accuracy=0.5))
    with pytest.raises(gate.GateRefused, match="below the floor"):
        pipeline.run(tmp_path, config=TrainingConfig(epochs=0), progress=lambda _: None)
    with pytest.raises(gate.GateRefused, match="worse than version 1"):
        pipeline.run(tmp_path, config=TrainingConfig(epochs=0), progress=lambda _: None,
                     gate_config=gate.GateConfig(min_accuracy=0.0, max_regression=0.01))
    assert sorted(version_dirs(model_dir)) == [1]
    assert [p.name for p in model_dir.iterdir() if not p.name.startswith(".export")] == ["1"]


def test_train_command_exits_non_zero_with_a_clear_message(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tfship.cli", "train", "--models-dir", str(tmp_path),
         "--epochs", "0"], capture_output=True, text=True, timeout=180)
    assert result.returncode == 3, result.stderr
    assert "quality gate refused the new penguins version: validation accuracy" in result.stderr
    assert not version_dirs(tmp_path / "penguins")


def _served_as_tf_serving_serves(path, columns):
    """The default signature's answer with the export loaded as TF Serving loads it: the
    MetaGraph in a Session, variables through its saver, then the signature by tensor names."""
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.load(session, ["serve"], str(path))
        signature = meta_graph.signature_def["serving_default"]
        feeds = {signature.inputs[name].name: values for name, values in columns.items()}
        return session.run({key: info.name for key, info in signature.outputs.items()}, feeds)


def test_every_version_answers_when_loaded_as_tf_serving_loads_it(trained_models):
    _, results = trained_models
    validation = dataset.split(dataset.read_rows(), 0.2, 1)[1]
    columns = {f.name: np.array(validation.columns[f.name], dtype=np.float32 if f.kind == "numeric" else object)
               for f in FEATURES}
    for result in results:
        served = _served_as_tf_serving_serves(result.path, columns)
        loaded = tf.saved_model.load(str(result.path)).signatures["serving_default"]
        expected = loaded(**as_tensors(validation))
        np.testing.assert_allclose(served["probabilities"], expected["probabilities"].numpy(), rtol=1e-5, atol=1e-6)
        assert served["class_id"].tolist() == expected["class_id"].numpy().tolist()
        assert served["class_name"].tolist() == expected["class_name"].numpy().tolist()


def test_an_export_tf_serving_could_not_serve_is_refused_and_leaves_nothing(tmp_path, monkeypatch):
    """Without the module tracking its network's variables itself, the SavedModel's saver
    misses them (keras-team/keras#20096): TF Serving would fail every request, so no version."""
    from model.signature import ServingModule

    original_save = ServingModule.save

    def save_untracked(self, path):
        del self.serving_variables
        original_save(self, path)

    monkeypatch.setattr(ServingModule, "save", save_untracked)
    with pytest.raises(serving_check.ServingCheckError, match="Could not find variable"):
        pipeline.run(tmp_path, config=TrainingConfig(epochs=2), progress=lambda _: None,
                     gate_config=gate.GateConfig(min_accuracy=0.0))
    assert list((tmp_path / "penguins").iterdir()) == []  # no version, no staging directory


def test_train_command_exits_5_naming_why_tf_serving_could_not_serve_it(tmp_path, monkeypatch, capsys):
    from model import cli
    from model.signature import ServingModule

    original_save = ServingModule.save
    monkeypatch.setattr(ServingModule, "save", lambda self, path: (delattr(self, "serving_variables"),
                                                                     original_save(self, path)))
    status = cli.run("train", ["--models-dir", str(tmp_path), "--epochs", "2", "--min-accuracy", "0"])
    assert status == cli.EXIT_NOT_SERVABLE == 5
    error = capsys.readouterr().err
    assert "the new penguins version was not exported" in error
    assert "Could not find variable" in error and "Traceback" not in error
    assert not version_dirs(tmp_path / "penguins")


def test_the_serving_check_words_what_tf_serving_could_not_do(trained_models, tmp_path):
    import shutil

    from tests.model.server.fixture_models import write_warmup

    _, results = trained_models
    version = tmp_path / "1"
    shutil.copytree(results[0].path, version)
    serving_check.check(version)  # the real export passes
    write_warmup(str(version), [("no_such_signature", {"x": np.array([1.0], np.float32)})])
    with pytest.raises(serving_check.ServingCheckError, match="signature 'no_such_signature'"):
        serving_check.check(version)
    (version / "assets.extra" / "tf_serving_warmup_requests").unlink()
    with pytest.raises(serving_check.ServingCheckError, match="no warmup requests"):
        serving_check.check(version)
    write_warmup(str(version), [("serving_default", {"island": np.array([b"Dream"], object)})])
    with pytest.raises(serving_check.ServingCheckError, match="export loaded as TensorFlow Serving|fails when"):
        serving_check.check(version)  # a request missing five inputs: TensorFlow refuses it
    with pytest.raises(serving_check.ServingCheckError, match="does not load as TensorFlow Serving loads it"):
        serving_check.check(version, tags=("gpu",))
