"""TF Serving's config files, as the text-format protobufs tensorflow_model_server reads.

Pure functions (no Pulumi): a test parses their output with TF Serving's own messages.
"""
import math


def initial_model_config(model_name: str, base_path: str) -> str:
    """Return the first ModelServerConfig: serve the newest version until the rollout owns it.

    The rollout reconciler rewrites this file from the registry's rollout state (stable,
    canary and previous labels); Pulumi creates it once and never overwrites it.
    """
    return (f'model_config_list {{\n  config {{\n    name: "{model_name}"\n'
            f'    base_path: "{base_path}"\n    model_platform: "tensorflow"\n'
            f'    model_version_policy {{ latest {{ num_versions: 1 }} }}\n  }}\n}}\n')


def monitoring_config(path: str) -> str:
    """Return the MonitoringConfig that exports Prometheus metrics on the REST port at path."""
    return f'prometheus_config {{ enable: true, path: "{path}" }}\n'


def batching_parameters(max_batch_size: int, timeout_micros: int, threads: int) -> str:
    """Return BatchingParameters for online serving: the queue no deeper than the threads."""
    return (f"max_batch_size {{ value: {max_batch_size} }}\n"
            f"batch_timeout_micros {{ value: {timeout_micros} }}\n"
            f"max_enqueued_batches {{ value: {threads} }}\n"
            f"num_batch_threads {{ value: {threads} }}\n")


def session_parallelism(cpu_request: str) -> int:
    """Return TensorFlow's intra- and inter-op thread count for a container granted
    `cpu_request` (a Kubernetes CPU quantity: "500m", "2", "1.5"): the whole cores it rounds
    up to, at least one. Inside a container TensorFlow would size both pools from the node's
    cores, not from the container's share, and run more threads than it has CPU for."""
    text = str(cpu_request).strip()
    try:
        cores = float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        raise ValueError(f"not a Kubernetes CPU quantity: {cpu_request!r}") from None
    if not math.isfinite(cores) or cores <= 0:
        raise ValueError(f"a CPU request must be a positive quantity: {cpu_request!r}")
    return max(1, math.ceil(cores))
