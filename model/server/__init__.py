"""A local model server that speaks TensorFlow Serving's REST API and reads its flags and files.

Modules, one responsibility each: flags (tensorflow_model_server's command line), config
(ModelServerConfig text), manager (versions, states, labels, the per-request snapshot, the
poll threads), servable (one loaded SavedModel), codec (REST JSON <-> tensors), errors (TF
Serving's error codes and their HTTP statuses), rest (the WSGI routes), monitoring (TF
Serving's Prometheus metrics), batching (--enable_batching), warmup (warmup record replay),
protos (the config messages the tensorflow-serving-api wheel lacks), main (start and stop).
"""
