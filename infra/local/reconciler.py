"""The local rollout reconciler: `tfship reconcile` in the background, beside the model server.

It reads the registry's rollout state (with the reader key `tfship up` bootstraps) and rewrites
the model config file the model server polls, so the server loads the versions the state names
and moves their labels only once they are AVAILABLE. This module starts it and waits until the
model server serves that state; the logic lives in service/delivery/reconciler.py.
"""
import sys

from infra.local import api, model_server, processes

NAME = "reconciler"
# The rollout roles the reconciler turns into labels (service/delivery/reconciler.py LABELS).
LABELS = ("stable", "canary", "previous", "shadow")


def command(settings):
    return [sys.executable, "-m", "tfship.cli", "reconcile",
            "--registry", settings.api_url, "--key-file", str(settings.key_file("reader")),
            "--model-config-file", str(settings.model_config_file),
            "--model-server", settings.model_server_url,
            "--interval", f"{settings.reconcile_interval_seconds:g}",
            "--unload-grace-seconds", f"{settings.unload_grace_seconds:g}"]


def follows(settings):
    """The URL of the rollout state the reconciler follows (shown by `tfship status`)."""
    return f"{settings.api_url}/api/v1/models/{settings.model_name}/rollout"


def converged(settings):
    """The rollout state when every label it names resolves to its version; else None."""
    state = api.rollout_state(settings)
    wanted = {label: state[label] for label in LABELS if state.get(label) is not None}
    if all(model_server.label_version(settings, label) == version
           for label, version in wanted.items()):
        return state
    return None


def start(settings):
    """Start the reconciler in the background; the caller waits for `converged`."""
    return processes.start(settings, NAME, command(settings), follows(settings))


def wait_converged(settings, process, timeout=60.0):
    """Wait until the model server serves the registry's rollout state; return that state."""
    return processes.wait_until(process, lambda: converged(settings), timeout)
