"""Load an export the way TensorFlow Serving loads it, so a version it could not serve never ships.

TF Serving's C++ loader (LoadSavedModel) builds no Python objects: it imports the MetaGraph
into a Session, restores the variables through the MetaGraph's saver (its SaverDef restore op),
runs the init op and then runs a signature by its tensor names. TensorFlow's TF1 loader,
tf.compat.v1.saved_model.load, takes those same steps. tf.saved_model.load (what training code
and the local model server use) restores through the object graph instead, so an export can
load and answer there and still fail in TF Serving: a Keras 3 model held by a tf.Module saves
its variables in the object graph but not in the saver, and TF Serving then answers
FAILED_PRECONDITION "Could not find variable dense/bias" (keras-team/keras#20096).

check() replays the version's own warmup requests through both loaders and requires the same
answers, before the version is renamed into place.
"""
import contextlib

from model.server.warmup import read_predict_requests


class ServingCheckError(Exception):
    """The export would not answer in TF Serving as it does here; the message says where."""


def check(export_dir, tags=("serve",)):
    """Raise ServingCheckError unless every warmup request of `export_dir` runs in a TF1
    Session loaded as TF Serving loads it, with the answers tf.saved_model.load gives."""
    import numpy as np
    import tensorflow as tf

    requests = read_predict_requests(str(export_dir))
    if not requests:
        raise ServingCheckError(f"{export_dir} has no warmup requests to check it with")
    calls = _calls(requests)
    answers = _served_as_tf_serving_serves(export_dir, tags, calls)
    loaded = tf.saved_model.load(str(export_dir), tags=list(tags))
    for (name, inputs), served in zip(calls, answers):
        expected = loaded.signatures[name](**{key: tf.constant(value) for key, value in inputs.items()})
        for key, value in expected.items():
            value = value.numpy()
            same = (np.allclose(served[key], value, rtol=1e-5, atol=1e-6)
                    if np.issubdtype(value.dtype, np.floating) else np.array_equal(served[key], value))
            if not same:
                raise ServingCheckError(
                    f"signature {name!r} output {key!r} differs between the export loaded as "
                    f"TensorFlow Serving loads it and as tf.saved_model.load does")


def _calls(requests):
    """(signature name, {input name: numpy array}) of each PredictRequest."""
    import tensorflow as tf

    return [(request.model_spec.signature_name or "serving_default",
             {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()})
            for request in requests]


def _served_as_tf_serving_serves(export_dir, tags, calls):
    """Each call's outputs from a TF1 Session holding the export as TF Serving loads it."""
    import tensorflow as tf

    answers = []
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        try:
            with _quiet_deprecation():  # "use tf.saved_model.load instead": not here, on purpose
                meta_graph = tf.compat.v1.saved_model.load(session, list(tags), str(export_dir))
        except (RuntimeError, ValueError, tf.errors.OpError) as error:
            raise ServingCheckError(f"the export does not load as TensorFlow Serving loads it: "
                                    f"{type(error).__name__}: {_reason(str(error))}") from None
        for name, inputs in calls:
            if name not in meta_graph.signature_def or set(inputs) - set(meta_graph.signature_def[name].inputs):
                raise ServingCheckError(f"a warmup request names signature {name!r} or inputs "
                                        f"{sorted(inputs)} that the export does not have")
            signature_def = meta_graph.signature_def[name]
            fetches = {key: info.name for key, info in signature_def.outputs.items()}
            feeds = {signature_def.inputs[key].name: value for key, value in inputs.items()}
            try:
                answers.append(session.run(fetches, feeds))
            except tf.errors.OpError as error:
                first_line = _reason(error.message or str(error))
                raise ServingCheckError(
                    f"signature {name!r} fails when the export is loaded as TensorFlow Serving "
                    f"loads it (the MetaGraph's saver and init op, then a Session): "
                    f"{type(error).__name__}: {first_line}") from None
    return answers


def _quiet_deprecation():
    try:
        from tensorflow.python.util import deprecation
    except ImportError:
        return contextlib.nullcontext()
    return getattr(deprecation, "silence", contextlib.nullcontext)()


def _reason(text):
    """The line of a TensorFlow error that says what went wrong (not "Graph execution error:",
    not the [[node ...]] lines)."""
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.strip().startswith(("Graph execution error", "[["))]
    return lines[0] if lines else text.strip()
