"""The local API: migrate the SQLite registry, start gunicorn, bootstrap keys, register the model.

The API runs as its own process through `tfship api`; this module talks to it over HTTP and
drives its admin commands, never importing the service code.
"""
import concurrent.futures
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

from infra.local import processes
from model import registration
from model.versions import metadata_path, version_dirs

# The reconciler only reads the rollout state: it gets a reader key of its own.
BOOTSTRAP_KEYS = {"admin": "bootstrap-admin", "predictor": "local-demo-predictor",
                  "reader": "local-reconciler"}


def environment(settings):
    """The API's settings for the local stack (TFSHIP_API_*; see `python -m service.settings`)."""
    return {
        "TFSHIP_API_DATA_DIR": str(settings.state_dir / "api"),
        "TFSHIP_API_MODEL_SERVER_URL": settings.model_server_url,
        "TFSHIP_API_ROLLOUT_CACHE_TTL_S": str(settings.rollout_cache_ttl_seconds),
    }


def first_stable(settings):
    """The version `tfship up` makes stable while the registry has none: the newest export."""
    versions = version_dirs(settings.models_dir / settings.model_name)
    if not versions:
        raise FileNotFoundError(f"no exported versions under "
                                f"{settings.models_dir / settings.model_name}; run `tfship train` first")
    return max(versions)


def _tfship(settings, *args, timeout=120):
    result = subprocess.run([sys.executable, "-m", "tfship.cli", *args], capture_output=True,
                            text=True, timeout=timeout,
                            env=dict(os.environ, **environment(settings)))
    if result.returncode != 0:
        raise processes.StartError(f"`tfship {' '.join(args)}` failed: {result.stderr.strip()}")
    return result.stdout


def bootstrap_keys(settings, roles=None):
    """Create the bootstrap keys of roles (default all) once, in parallel; each in a 0600 file."""
    missing = {role: name for role, name in BOOTSTRAP_KEYS.items()
               if (roles is None or role in roles) and not settings.key_file(role).exists()}
    with concurrent.futures.ThreadPoolExecutor(max(len(missing), 1)) as pool:
        keys = dict(zip(missing, pool.map(
            lambda item: _tfship(settings, "keys", "create", "--role", item[0],
                                 "--name", item[1]).strip(), missing.items())))
    for role, key in keys.items():
        fd = os.open(settings.key_file(role), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")


def _request(method, url, key, body=None):
    """One JSON call to the API; returns (status, decoded body)."""
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
        stable = first_stable(settings)
        status, body = _request("PUT", f"{base}/rollout", key, {
            "stable": stable, "step": "bootstrap",
            "reason": "tfship up: the newest export serves while the registry names none"})
        if status != 200:
            raise processes.StartError(f"setting the rollout state failed ({status}): {body}")
        out(f"[up] rollout state: stable = version {stable}")


def rollout_state(settings):
    """The registry's rollout state of the stack's model, read with the reconciler's key."""
    key = settings.key_file("reader").read_text().strip()
    status, state = _request(
        "GET", f"{settings.api_url}/api/v1/models/{settings.model_name}/rollout", key)
    if status != 200:
        raise processes.StartError(f"reading the rollout state failed ({status}): {state}")
    return state


def start(settings, timeout=60.0):
    """Migrate, start gunicorn and wait until the API answers /readyz; bootstrap the keys.

    The first key also creates the API's key secret file, so gunicorn's workers and the
    other keys (created while gunicorn boots) all find it rather than race to create it.
    """
    (settings.state_dir / "api").mkdir(parents=True, exist_ok=True)
    _tfship(settings, "db", "upgrade")
    bootstrap_keys(settings, roles=["admin"])
    process = processes.start(
        settings, "api",
        [sys.executable, "-m", "tfship.cli", "api", "--port", str(settings.api_port)],
        settings.api_url, env=environment(settings))
    bootstrap_keys(settings)
    processes.wait_until(process, lambda: processes.get_json(f"{settings.api_url}/readyz"),
                         timeout)
    return process
