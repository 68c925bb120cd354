"""TF Serving's config files, as the text-format protobufs tensorflow_model_server reads.

Pure functions (no Pulumi): a test parses their output with TF Serving's own messages.
"""


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
