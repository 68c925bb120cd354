"""TF Serving's MonitoringConfig and BatchingParameters messages, which its pip package lacks.

Built from descriptors that mirror tensorflow_serving/config/monitoring_config.proto and
servables/tensorflow/session_bundle_config.proto (field names and types), so the same text
files parse here as in tensorflow_model_server.
"""
import functools

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from google.protobuf import wrappers_pb2

_FIELD = descriptor_pb2.FieldDescriptorProto


class ProtoTextError(ValueError):
    """A text-format file that does not parse as its message."""


def _field(message, name, number, kind, type_name=None, repeated=False):
    field = message.field.add(name=name, number=number, type=kind,
                              label=_FIELD.LABEL_REPEATED if repeated else _FIELD.LABEL_OPTIONAL)
    if type_name:
        field.type_name = type_name


@functools.cache
def _classes():
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)

    monitoring = descriptor_pb2.FileDescriptorProto(
        name="tfship/monitoring_config.proto", package="tensorflow.serving", syntax="proto3")
    prometheus = monitoring.message_type.add(name="PrometheusConfig")
    _field(prometheus, "enable", 1, _FIELD.TYPE_BOOL)
    _field(prometheus, "path", 2, _FIELD.TYPE_STRING)
    config = monitoring.message_type.add(name="MonitoringConfig")
    _field(config, "prometheus_config", 1, _FIELD.TYPE_MESSAGE,
           ".tensorflow.serving.PrometheusConfig")
    pool.Add(monitoring)

    batching = descriptor_pb2.FileDescriptorProto(
        name="tfship/session_bundle_config.proto", package="tensorflow.serving",
        syntax="proto3", dependency=["google/protobuf/wrappers.proto"])
    params = batching.message_type.add(name="BatchingParameters")
    int64_value, string_value = ".google.protobuf.Int64Value", ".google.protobuf.StringValue"
    _field(params, "max_batch_size", 1, _FIELD.TYPE_MESSAGE, int64_value)
    _field(params, "batch_timeout_micros", 2, _FIELD.TYPE_MESSAGE, int64_value)
    _field(params, "max_enqueued_batches", 3, _FIELD.TYPE_MESSAGE, int64_value)
    _field(params, "num_batch_threads", 4, _FIELD.TYPE_MESSAGE, int64_value)
    _field(params, "thread_pool_name", 5, _FIELD.TYPE_MESSAGE, string_value)
    _field(params, "allowed_batch_sizes", 6, _FIELD.TYPE_INT64, repeated=True)
    _field(params, "pad_variable_length_inputs", 7, _FIELD.TYPE_BOOL)
    pool.Add(batching)

    def cls(name):
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))

    return cls("tensorflow.serving.MonitoringConfig"), cls("tensorflow.serving.BatchingParameters")


def _parse(cls, path):
    message = cls()
    try:
        with open(path, encoding="utf-8") as handle:
            text_format.Parse(handle.read(), message)
    except OSError as error:
        raise ProtoTextError(f"Cannot read {path}: {error.strerror}") from None
    except text_format.ParseError as error:
        raise ProtoTextError(f"Invalid {cls.DESCRIPTOR.name} in {path}: {error}") from None
    return message


def read_monitoring_config(path):
    """Return the MonitoringConfig message in the text file at `path`."""
    return _parse(_classes()[0], path)


def read_batching_parameters(path):
    """Return the BatchingParameters message in the text file at `path`."""
    return _parse(_classes()[1], path)


def new_batching_parameters():
    """Return an empty BatchingParameters message (all defaults)."""
    return _classes()[1]()
