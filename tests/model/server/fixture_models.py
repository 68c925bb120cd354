"""Small SavedModels with the shapes the server must handle, built with tf.Module."""
import os
import shutil

MODEL_NAME = "multi"


def build_module(factor):
    """Return a tf.Module whose outputs depend on `factor`, so versions are told apart.

    serving_default: inputs a float[-1], b float[-1,2], c string[-1];
                     outputs total float[-1], length int64[-1], shout string[-1].
    scale:           input x float[-1,3]; one output y float[-1,3].
    binary:          input image_bytes string[-1]; outputs size int32[-1], echo_bytes string[-1].
    rowcount:        input x float[-1,3]; outputs y = x * factor, rows int32[-1] (the batch's
                     row count, so a test can see that calls were batched together).
    """
    import tensorflow as tf

    class Fixture(tf.Module):
        def __init__(self):
            super().__init__()
            self.factor = tf.Variable(float(factor), trainable=False)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="a"),
                                      tf.TensorSpec([None, 2], tf.float32, name="b"),
                                      tf.TensorSpec([None], tf.string, name="c")])
        def serve(self, a, b, c):
            return {"total": (a + tf.reduce_sum(b, axis=1)) * self.factor,
                    "length": tf.cast(tf.strings.length(c), tf.int64),
                    "shout": tf.strings.upper(c)}

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def scale(self, x):
            return {"y": x * self.factor}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
        def binary(self, image_bytes):
            return {"size": tf.strings.length(image_bytes), "echo_bytes": image_bytes}

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def rowcount(self, x):
            rows = tf.shape(x)[0]
            return {"y": x * self.factor, "rows": tf.fill([rows], rows)}

    return Fixture()


def export_tiny(path):
    """Write the smallest useful SavedModel (one signature: y = 2x) at `path`."""
    import tensorflow as tf

    class Tiny(tf.Module):
        def __init__(self):
            super().__init__()
            self.weight = tf.Variable(2.0, trainable=False)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def double(self, x):
            return {"y": x * self.weight}

    module = Tiny()
    tf.saved_model.save(module, path, signatures={"serving_default": module.double})
    return path


def export(module, path):
    """Write `module` as a SavedModel at `path` with its three signatures."""
    import tensorflow as tf

    tf.saved_model.save(module, path, signatures={
        "serving_default": module.serve, "scale": module.scale, "binary": module.binary,
        "rowcount": module.rowcount})


def export_versions(base_path, factors):
    """Export one version per {version: factor} under `base_path`; return the base path."""
    os.makedirs(base_path, exist_ok=True)
    for version, factor in factors.items():
        export(build_module(factor), os.path.join(base_path, str(version)))
    return base_path


def copy_version(base_path, source, target):
    """Publish a copy of version `source` as `target` atomically (copy, then rename)."""
    staging = os.path.join(base_path, f".tmp-export-{target}")
    shutil.copytree(os.path.join(base_path, str(source)), staging)
    os.rename(staging, os.path.join(base_path, str(target)))


def write_warmup(version_path, requests):
    """Write TF Serving warmup records: PredictionLogs of {signature: {input: array}}."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    directory = os.path.join(version_path, "assets.extra")
    os.makedirs(directory, exist_ok=True)
    with tf.io.TFRecordWriter(os.path.join(directory, "tf_serving_warmup_requests")) as writer:
        for signature, inputs in requests:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = MODEL_NAME
            request.model_spec.signature_name = signature
            for name, array in inputs.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
