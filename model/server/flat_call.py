"""Call a loaded signature with its inputs already checked: TensorFlow's argument binding skipped.

A loaded SavedModel signature (a ConcreteFunction) binds its keyword arguments to its
FunctionType on every call: canonicalise, cast, subtype checks. For the penguins model's six
inputs that costs ~0.15-0.2 ms of Python, as long as TensorFlow then takes to run the graph
at batch 128. The server has already built each input with the signature's dtype and checked
its shape (codec.check_shape), so it hands the function's AtomicFunction the flat list the
binding would have produced, with the same captured inputs, and packs the outputs the same
way: what ConcreteFunction._call_flat does in eager mode when no gradient tape is watching.

This leans on TensorFlow's private attributes. Where one is missing or the signature has a
shape this does not cover (another TF version, a positional or nested input), `prepare`
answers None and the caller keeps the public call; a test holds the pinned TF to the fast path.
"""
import inspect

_KEYWORD_ONLY = inspect.Parameter.KEYWORD_ONLY


def prepare(function, input_names):
    """Return call(tensors by input name) -> {output name: tensor}, or None when `function`
    (a loaded signature) does not offer what the flat call needs."""
    try:
        atomic = function._inference_function
        function_type = function.function_type
        parameters = function_type.parameters
        flat_inputs = function_type.flat_inputs
        call_preflattened = atomic.call_preflattened
        function.captured_inputs  # noqa: B018 - the attribute must exist before it is relied on
    except (AttributeError, TypeError):
        return None
    names = list(parameters)
    if (set(names) != set(input_names) or len(flat_inputs) != len(names)
            or any(p.kind is not _KEYWORD_ONLY for p in parameters.values())):
        return None

    def call(tensors):
        return call_preflattened([tensors[name] for name in names] + function.captured_inputs)

    return call


def tensor_maker():
    """Return make(numpy array, DataType enum) -> EagerTensor: what tf.constant does for an
    array in eager mode, without its wrappers and its defensive copy (the server builds each
    input array for the call and never writes to it after). tf.constant where the private
    class is missing."""
    import tensorflow as tf

    try:
        from tensorflow.python.eager import context
        from tensorflow.python.framework import ops

        eager_tensor = ops.EagerTensor
        ctx = context.context()
        ctx.ensure_initialized()
        ctx.device_name  # noqa: B018 - the attribute must exist before it is relied on
    except (ImportError, AttributeError):
        return lambda array, dtype_enum: tf.constant(array, dtype=tf.dtypes.as_dtype(dtype_enum))

    def make(array, dtype_enum):
        return eager_tensor(array, ctx.device_name, dtype_enum)

    return make
