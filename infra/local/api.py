"""The local API: migrate the SQLite registry, start gunicorn, bootstrap keys, register the model.

The API runs as its own process through `tfship api`; this module talks to it over HTTP and
drives its admin commands, never importing the service code.
"""
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

from infra.local import processes
from model import registration
from model.versions import metadata_path, version_dirs

BOOTSTRAP_KEYS = {"admin": "bootstrap-admin", "predictor": "local-demo-predictor"}


def environment(settings):
    """The API's settings for the local stack (TFSHIP_API_*; see `python -m service.settings`)."""
    return {
        "TFSHIP_API_DATA_DIR": str(settings.state_dir / "api"),
        "TFSHIP_API_MODEL_SERVER_URL": settings.model_server_url,
    }


def _tfship(settings, *args, timeout=120):
    result = subprocess.run([sys.executable, "-m", "tfship.cli", *args], capture_output=True,
                            text=True, timeout=timeout,
                            env=dict(os.environ, **environment(settings)))
    if result.returncode != 0:
        raise processes.StartError(f"`tfship {' '.join(args)}` failed: {result.stderr.strip()}")
    return result.stdout


def bootstrap_keys(settings):
    """Create the admin and demo predictor keys once; each is written to a 0600 file."""
    for role, name in BOOTSTRAP_KEYS.items():
        path = settings.key_file(role)
        if path.exists():
            continue
        key = _tfship(settings, "keys", "create", "--role", role, "--name", name).strip()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")


def _request(method, url, key, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def register_exports(settings, out):
    """Register every exported version the registry lacks; make the newest stable if none is."""
    key = settings.key_file("admin").read_text().strip()
    base = f"{settings.api_url}/api/v1/models/{settings.model_name}"
    status, _ = _request("GET", f"{base}/versions?per_page=100", key)
    known = set()
    if status == 200:
        _, page = _request("GET", f"{base}/versions?per_page=100", key)
        known = {item["version"] for item in page["items"]}
    for version, path in sorted(version_dirs(settings.models_dir / settings.model_name).items()):
        if version in known or not metadata_path(path).exists():
            continue
        metadata = json.loads(metadata_path(path).read_text())
        registration.register(settings.api_url, key, metadata, path, owner="local")
        out(f"[up] registered {settings.model_name} version {version}")
    status, rollout = _request("GET", f"{base}/rollout", key)
    if status == 200 and rollout["stable"] is None:
        newest = max(version_dirs(settings.models_dir / settings.model_name))
        status, body = _request("PUT", f"{base}/rollout", key, {"stable": newest})
        if status != 200:
            raise processes.StartError(f"setting the rollout state failed ({status}): {body}")
        out(f"[up] rollout state: stable = version {newest}")


def start(settings, timeout=60.0):
    """Migrate, start gunicorn and wait until the API answers /readyz."""
    (settings.state_dir / "api").mkdir(parents=True, exist_ok=True)
    _tfship(settings, "db", "upgrade")
    process = processes.start(
        settings, "api",
        [sys.executable, "-m", "tfship.cli", "api", "--port", str(settings.api_port)],
        settings.api_url, env=environment(settings))
    processes.wait_until(process, lambda: processes.get_json(f"{settings.api_url}/readyz"),
                         timeout)
    bootstrap_keys(settings)
    return process
