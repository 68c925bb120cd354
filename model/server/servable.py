"""One loaded model version: its SavedModel, its signatures' specs, and how to run them."""
import functools
import logging
import os
import time

import numpy as np

from model.server import codec, flat_call, typed_rows
from model.server.errors import HTTP_STATUS, InvalidArgument, with_code

log = logging.getLogger(__name__)

PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
DEFAULT_SIGNATURE = "serving_default"


def read_meta_graph(path, tags):
    """Return the MetaGraphDef of the SavedModel at `path` whose tags are `tags`."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as handle:
        saved_model.ParseFromString(handle.read())
    for meta_graph in saved_model.meta_graphs:
        if set(meta_graph.meta_info_def.tags) == set(tags):
            return meta_graph
    raise InvalidArgument(f"Could not find meta graph def matching supplied tags: "
                          f"{{ {' '.join(sorted(tags))} }}. To inspect available tag-sets "
                          f"in the SavedModel, please use the SavedModel CLI: `saved_model_cli`")


def _spec(tensor_info):
    """Return the codec.TensorSpec of a TensorInfo proto."""
    from tensorflow.core.framework import types_pb2

    dtype = types_pb2.DataType.Name(tensor_info.dtype)
    shape_proto = tensor_info.tensor_shape
    if shape_proto.unknown_rank:
        return codec.TensorSpec(dtype, None)
    return codec.TensorSpec(dtype, tuple(None if dim.size < 0 else dim.size
                                         for dim in shape_proto.dim))


class Servable:
    """A loaded version: `run` calls one of its signatures on numpy inputs."""

    def __init__(self, name, version, path, tags=("serve",)):
        import tensorflow as tf

        self.name = name
        self.version = version
        self.runtime_observer = None  # (model name, API, microseconds) -> None
        self.closers = []  # run at unload, e.g. stopping this version's batcher
        self.batcher = None  # set when --enable_batching: predict calls go through it
        self.path = path
        self.meta_graph = read_meta_graph(path, tags)
        self.signature_defs = dict(self.meta_graph.signature_def)
        self._loaded = tf.saved_model.load(path, tags=list(tags))
        self._functions = dict(self._loaded.signatures)
        self.input_specs = {key: {n: _spec(info) for n, info in sig.inputs.items()}
                            for key, sig in self.signature_defs.items()}
        self.output_specs = {key: {n: _spec(info) for n, info in sig.outputs.items()}
                             for key, sig in self.signature_defs.items()}
        # DataType enums (TensorInfo's own), as the inputs' tensors are made from them.
        self._input_dtypes = {key: {n: info.dtype for n, info in sig.inputs.items()}
                              for key, sig in self.signature_defs.items()}
        self._flat_calls = {key: flat_call.prepare(function, self._input_dtypes.get(key, {}))
                            for key, function in self._functions.items()}
        self._tensor = flat_call.tensor_maker()
        default_inputs = self.input_specs.get(DEFAULT_SIGNATURE)
        self._decode_rows = typed_rows.decoder(default_inputs) if default_inputs else None

    def decode_rows(self, body):
        """Return (signature key, inputs) of a row-format body for the default signature on
        the typed short path (typed_rows.py), or None for the general path."""
        if self._decode_rows is None:
            return None
        found = self._decode_rows(body)
        if found is None or (found[0] or DEFAULT_SIGNATURE) != DEFAULT_SIGNATURE:
            return None
        return DEFAULT_SIGNATURE, found[1]

    def signature(self, signature_name):
        """Return the SignatureDef key for `signature_name` ('' means serving_default)."""
        key = signature_name or DEFAULT_SIGNATURE
        if key not in self.signature_defs:
            raise InvalidArgument(f'Serving signature name: "{key}" not found in signature def')
        return key

    def run(self, signature_key, inputs):
        """Return {output name: numpy array} of signature `signature_key` on `inputs`."""
        import tensorflow as tf

        function = self._functions.get(signature_key)
        if function is None:
            raise InvalidArgument(f'Serving signature name: "{signature_key}" has no '
                                  "callable function in this SavedModel")
        dtypes = self._input_dtypes[signature_key]
        if inputs.keys() != dtypes.keys():
            expected = set(dtypes)
            sent = ",".join(sorted(inputs))
            wanted = ",".join(sorted(expected))
            raise InvalidArgument(
                f"input size does not match signature: {len(inputs)}!={len(expected)} "
                f"len({{{sent}}}) != len({{{wanted}}}). Sent extra: "
                f"{{{','.join(sorted(set(inputs) - expected))}}}. Missing but required: "
                f"{{{','.join(sorted(expected - set(inputs)))}}}.")
        make = self._tensor
        tensors = {name: make(array, dtypes[name]) for name, array in inputs.items()}
        flat = self._flat_calls.get(signature_key)
        started = time.perf_counter()
        try:
            outputs = flat(tensors) if flat else function(**tensors)
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as error:
            raise InvalidArgument(_first_line(error)) from None
        except tf.errors.OpError as error:  # keep TensorFlow's own code (e.g. 8, exhausted)
            raise with_code(_code_names().get(error.error_code, "UNKNOWN"),
                            _first_line(error)) from None
        if self.runtime_observer:
            self.runtime_observer(self.name, "Predict", (time.perf_counter() - started) * 1e6)
        return {name: np.asarray(tensor.numpy()) for name, tensor in outputs.items()}

    def predict(self, signature_key, inputs):
        """Run a client's call: through this version's batcher when batching is on."""
        if self.batcher is not None:
            return self.batcher.run(signature_key, inputs)
        return self.run(signature_key, inputs)

    def unload(self):
        """Stop this version's batcher; the TensorFlow objects are freed with the last
        reference, so a call that resolved this version just before the unload completes
        (as a TF Serving handle keeps its servable alive)."""
        for close in self.closers:
            close()
        self.closers.clear()


@functools.cache
def _code_names():
    """Return TensorFlow's numeric error codes -> TF Serving's code names."""
    import tensorflow as tf

    return {getattr(tf.errors, name): name for name in HTTP_STATUS if hasattr(tf.errors, name)}


def _first_line(error):
    text = getattr(error, "message", None) or str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__
