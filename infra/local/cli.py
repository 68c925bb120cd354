"""`tfship up|down|status`: the local environment as background processes on this machine."""
import argparse
import sys

from infra.local import api, model_server, processes, prometheus
from infra.local.settings import LocalSettings


def up(settings, out=print):
    """Start every local component that is not already running, in dependency order."""
    running = {p.name for p in processes.recorded(settings) if processes.alive(p.pid)}
    if "model-server" not in running:
        out(f"[up] starting the model server on {settings.model_server_url} ...")
        model_server.start(settings)
    versions = model_server.available_versions(settings)
    out(f"[up] model server: {settings.model_name} versions {versions} AVAILABLE")
    if "api" not in running:
        out(f"[up] migrating the registry and starting the API on {settings.api_url} ...")
        api.start(settings)
    api.register_exports(settings, out)
    out(f"[up] API ready: {settings.api_url}/api/v1/docs; admin key in "
        f"{settings.key_file('admin')}, predictor key in {settings.key_file('predictor')}")
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
                                        "TFSHIP_MODELS_DIR.").parse_args(argv)
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
