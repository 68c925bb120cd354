"""The local model server: TF Serving's own binary where installed, else tfship's compatible server."""
import shutil
import sys

from infra.local import processes

BINARY = "tensorflow_model_server"


def initial_model_config(settings, stable):
    """A ModelServerConfig for the first start: version stable only, labelled `stable`.

    The reconciler owns the file from then on: it serves the versions the registry's rollout
    state names (stable, canary, previous) and moves their labels; `tfship up` writes the file
    only when it is absent.
    """
    model_dir = settings.models_dir / settings.model_name
    return (
        "model_config_list {\n"
        "  config {\n"
        f'    name: "{settings.model_name}"\n'
        f'    base_path: "{model_dir}"\n'
        '    model_platform: "tensorflow"\n'
        f"    model_version_policy {{ specific {{ versions: {stable} }} }}\n"
        f'    version_labels {{ key: "stable" value: {stable} }}\n'
        "  }\n"
        "}\n"
    )


MONITORING_CONFIG = 'prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }\n'


def flags(settings):
    """The flags, identical for TF Serving's binary and the local server."""
    return [
        f"--monitoring_config_file={settings.state_dir / 'monitoring.config'}",
        "--enable_model_warmup=true",
        f"--rest_api_port={settings.model_server_port}",
        f"--port={settings.model_server_grpc_port}",
        f"--model_config_file={settings.model_config_file}",
        f"--model_config_file_poll_wait_seconds={settings.model_config_poll_seconds}",
        f"--file_system_poll_wait_seconds={settings.file_system_poll_seconds}",
        f"--tensorflow_session_parallelism={settings.model_server_tf_threads}",
    ]


def command(settings):
    binary = shutil.which(BINARY)
    if binary:
        return [binary, *flags(settings)]
    return [sys.executable, "-m", "tfship.cli", "model-server", *flags(settings)]


def available_versions(settings):
    """The versions the server reports AVAILABLE for the model (empty when none or unreachable)."""
    status = processes.get_json(f"{settings.model_server_url}/v1/models/{settings.model_name}")
    if not status:
        return []
    return sorted(int(v["version"]) for v in status.get("model_version_status", [])
                  if v.get("state") == "AVAILABLE")


def label_version(settings, label):
    """The version label points at on the model server (None when it is unknown)."""
    status = processes.get_json(
        f"{settings.model_server_url}/v1/models/{settings.model_name}/labels/{label}")
    versions = (status or {}).get("model_version_status") or []
    return int(versions[0]["version"]) if versions else None


def launch(settings, stable):
    """Start the model server in the background; stable seeds a missing config file."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    if not settings.model_config_file.exists():
        settings.model_config_file.write_text(initial_model_config(settings, stable))
    (settings.state_dir / "monitoring.config").write_text(MONITORING_CONFIG)
    return processes.start(settings, "model-server", command(settings), settings.model_server_url)


def wait_ready(settings, process, timeout=120.0):
    """Wait until the model server reports a version of the model AVAILABLE."""
    return processes.wait_until(process, lambda: available_versions(settings), timeout)
