"""Export a trained model as the next TF Serving version, atomically and only past the gate.

The SavedModel, its warmup records and its metadata are written into a hidden temporary
directory beside the versions (TF Serving ignores names that are not integers). The export is
loaded as TF Serving loads it and must answer its warmup requests as it does here
(serving_check.py). The next version number is taken under a lock, the quality gate runs, and
only then is the directory renamed into place. A refused or failed export leaves nothing where
a server looks.
"""
import datetime
import fcntl
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from model import gate, serving_check
from model.versions import metadata_path, version_dirs, warmup_path

WARMUP_BATCH_SIZES = (1, 8, 32)


@contextmanager
def _locked(model_dir):
    """Serialise version allocation between concurrent exports of one model."""
    with open(model_dir / ".export.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_warmup_records(path, model_name, signature_name, rows):
    """Write PredictionLog records (TF Serving's own protos) replayed when a version loads."""
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    from model.features import FEATURES

    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for size in WARMUP_BATCH_SIZES:
            batch = [rows[i % len(rows)] for i in range(size)]
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature_name))
            for feature in FEATURES:
                dtype = tf.float32 if feature.kind == "numeric" else tf.string
                values = [row[feature.name] for row in batch]
                request.inputs[feature.name].CopyFrom(tf.make_tensor_proto(values, dtype=dtype))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def export(module, model_dir, metadata, warmup_rows, gate_config, stable_version=None):
    """Save, gate and publish the next version; return (version, its directory, the metadata written)."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-export-", dir=model_dir))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide the version from a server running as another user
    try:
        module.save(staging)
        write_warmup_records(warmup_path(staging), metadata["model_name"],
                             metadata["input_schema"]["signature_name"], warmup_rows)
        serving_check.check(staging)
        with _locked(model_dir):
            versions = version_dirs(model_dir)
            version = max(versions, default=0) + 1
            baseline_version, baseline_metrics = gate.baseline(model_dir, stable_version)
            decision = gate.check(metadata["metrics"], gate_config, baseline_version,
                                  baseline_metrics)
            record = dict(metadata, version=version, gate=decision,
                          created_at=datetime.datetime.now(datetime.timezone.utc).isoformat())
            metadata_path(staging).write_text(json.dumps(record, indent=2, sort_keys=True))
            final = model_dir / str(version)
            if final.exists():  # never overwrite a version, even an empty directory
                raise FileExistsError(f"version directory {final} already exists")
            os.rename(staging, final)
        return version, final, record
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
