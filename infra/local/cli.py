"""`tfship up|down|status`: the local environment as background processes on this machine."""
import argparse
import sys

from infra.local import api, model_server, processes, prometheus, reconciler
from infra.local.settings import LocalSettings


def up(settings, out=print):
    """Start every local component that is not already running, in dependency order.

    The model server (seconds of TensorFlow import and loading) starts in the background
    while the API starts and the exports are registered; the reconciler then makes the
    model server follow the registry's rollout state, the only source of truth.
    """
    running = {p.name for p in processes.recorded(settings) if processes.alive(p.pid)}
    server = None
    if "model-server" not in running:
        out(f"[up] starting the model server on {settings.model_server_url} ...")
        server = model_server.launch(settings, api.first_stable(settings))
    if "api" not in running:
        out(f"[up] migrating the registry and starting the API on {settings.api_url} ...")
        api.start(settings)
    api.register_exports(settings, out)
    out(f"[up] API ready: {settings.api_url}/api/v1/docs; admin key in "
        f"{settings.key_file('admin')}, predictor key in {settings.key_file('predictor')}")
    if server is not None:
        model_server.wait_ready(settings, server)
    out(f"[up] model server: {settings.model_name} versions "
        f"{model_server.available_versions(settings)} AVAILABLE")
    if reconciler.NAME not in running:
        state = reconciler.wait_converged(settings, reconciler.start(settings))
        roles = ", ".join(f"{label} {state[label]}" for label in reconciler.LABELS
                          if state.get(label) is not None)
        out(f"[up] reconciler: the model server serves the registry's rollout state ({roles})")
    out(f"[up] rollouts: TFSHIP_REGISTRY_URL={settings.api_url} "
        f"TFSHIP_KEY_FILE={settings.key_file('admin')} TFSHIP_MODEL_NAME={settings.model_name} "
        "tfship rollout status|start|promote|abort|rollback")
    if prometheus.installed():
        if "prometheus" not in running:
            prometheus.start(settings)
        out(f"[up] Prometheus with the generated rules: {settings.prometheus_url}")
    else:
        out("[up] Prometheus not installed (tfship doctor --install adds it); skipped")
    out(f"[up] logs: {settings.logs_dir}")


def down(settings, out=print):
    stopped = processes.stop(settings)
    out("[down] stopped " + (", ".join(p.name for p in stopped) if stopped else "nothing"))


def status(settings, out=print):
    entries = processes.recorded(settings)
    if not entries:
        out("local stack: not running")
        return 1
    healthy = True
    for p in entries:
        up_now = processes.alive(p.pid)
        healthy &= up_now
        out(f"{p.name:14} pid {p.pid:<7} {'running' if up_now else 'DEAD'}  {p.url}  log: {p.log}")
    return 0 if healthy else 1


def run(command, argv):
    argparse.ArgumentParser(prog=f"tfship {command}",
                            description="Settings come from the environment: "
                                        "TFSHIP_MODEL_SERVER_PORT, TFSHIP_API_PORT, "
                                        "TFSHIP_PROMETHEUS_PORT, TFSHIP_STATE_DIR, "
                                        "TFSHIP_MODELS_DIR, TFSHIP_MODEL_CONFIG_POLL_SECONDS, "
                                        "TFSHIP_RECONCILE_INTERVAL_SECONDS, "
                                        "TFSHIP_API_ROLLOUT_CACHE_TTL_S (see "
                                        "infra/local/settings.py).").parse_args(argv)
    settings = LocalSettings.from_env()
    try:
        if command == "up":
            up(settings)
        elif command == "down":
            down(settings)
        else:
            return status(settings)
    except (processes.StartError, FileNotFoundError, api.registration.RegistrationError) as error:
        print(f"[{command}] {error}", file=sys.stderr)
        return 1
    return 0
