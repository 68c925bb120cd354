"""Replay a version's assets.extra/tf_serving_warmup_requests before it becomes AVAILABLE."""
import logging
import os

from model.server.errors import InvalidArgument

log = logging.getLogger(__name__)

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_RECORDS = 1000  # TF Serving's kMaxNumRecords


def read_predict_requests(version_path):
    """Return the PredictRequests of the version's warmup file ([] when it has none)."""
    path = os.path.join(version_path, WARMUP_FILE)
    if not os.path.exists(path):
        return []
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    requests = []
    for count, record in enumerate(tf.data.TFRecordDataset(path).as_numpy_iterator(), 1):
        if count > MAX_RECORDS:
            raise InvalidArgument(f"Number of warmup records exceeds the maximum "
                                  f"({MAX_RECORDS}) at {path}")
        entry = prediction_log_pb2.PredictionLog()
        entry.ParseFromString(record)
        kind = entry.WhichOneof("log_type")
        if kind != "predict_log":
            raise InvalidArgument(f"Unsupported log_type for warmup: {kind}; this server "
                                  "replays predict_log records only")
        requests.append(entry.predict_log.request)
    return requests


def replay(servable, iterations=1):
    """Run every warmup request `iterations` times on `servable`; return how many ran."""
    import tensorflow as tf

    requests = read_predict_requests(servable.path)
    for request in requests:
        key = servable.signature(request.model_spec.signature_name)
        inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        for _ in range(iterations):
            servable.run(key, inputs)
    if requests:
        log.info("Finished reading warmup data for model at %s. Number of warmup records "
                 "read: %d.", servable.path, len(requests))
    return len(requests)
