"""The flat signature call answers exactly as the public call, on every fixture signature,
and the pinned TensorFlow takes it. Budget: < 5 s (the fixture models load once per session)."""
import os

import numpy as np
import pytest

from model.server import flat_call
from model.server.servable import Servable

from .fixture_models import MODEL_NAME

INPUTS = {  # signature -> inputs, with the signature's dtypes
    "serving_default": {"a": np.array([1.5, -2.0], np.float32),
                        "b": np.array([[1.0, 2.0], [3.0, 4.0]], np.float32),
                        "c": np.array([b"ab", "\u00e9t\u00e9".encode()], dtype=object)},
    "scale": {"x": np.arange(6, dtype=np.float32).reshape(2, 3)},
    "binary": {"image_bytes": np.array([b"\x00\xff", b""], dtype=object)},
    "rowcount": {"x": np.ones((3, 3), np.float32)},
}


@pytest.fixture(scope="module")
def servable(model_bases):
    loaded = Servable(MODEL_NAME, 2, os.path.join(model_bases[MODEL_NAME], "2"))
    yield loaded
    loaded.unload()


@pytest.mark.parametrize("signature", sorted(INPUTS))
def test_flat_call_answers_as_the_public_call(servable, signature):
    import tensorflow as tf

    assert servable._flat_calls[signature] is not None, "the pinned TF must take the fast path"
    inputs = INPUTS[signature]
    fast = servable.run(signature, inputs)
    public = servable._functions[signature](**{name: tf.constant(array)
                                               for name, array in inputs.items()})
    assert fast.keys() == public.keys()
    for name, tensor in public.items():
        expected = tensor.numpy()
        assert fast[name].dtype == expected.dtype and fast[name].shape == expected.shape
        assert np.array_equal(fast[name], expected), name


def test_other_input_names_keep_the_public_call(servable):
    function = servable._functions["scale"]
    assert flat_call.prepare(function, {"x": None}) is not None
    assert flat_call.prepare(function, {"y": None}) is None
    assert flat_call.prepare(function, {"x": None, "z": None}) is None


def test_a_function_without_the_private_attributes_keeps_the_public_call():
    def plain(**tensors):
        return tensors

    assert flat_call.prepare(plain, {"x": None}) is None


@pytest.mark.parametrize("array", [np.array([1.5, -2.0], np.float32), np.arange(6, dtype=np.int64).reshape(2, 3),
                                   np.array([b"ab", b"", "\u00e9".encode()], dtype=object),
                                   np.array([[True], [False]]), np.array([0.25, 1e300])])
def test_a_made_tensor_is_what_tf_constant_makes(servable, array):
    import tensorflow as tf

    expected = tf.constant(array)
    made = flat_call.tensor_maker()(array, expected.dtype.as_datatype_enum)
    assert made.dtype == expected.dtype and made.shape == expected.shape
    assert np.array_equal(made.numpy(), expected.numpy())
    as_float32 = flat_call.tensor_maker()(np.array([0.5, 2.0]), tf.float32.as_datatype_enum)
    assert as_float32.dtype == tf.float32 and as_float32.numpy().tolist() == [0.5, 2.0]
