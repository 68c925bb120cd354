"""Register an exported version with the tfship registry over its REST API.

The model pipeline talks to the registry over HTTP only (it never imports the service), with the
standard library's client so the model install needs no HTTP library.
"""
import json
import os
import urllib.error
import urllib.request
from pathlib import Path

KEY_ENV = "TFSHIP_REGISTRY_KEY"


class RegistrationError(RuntimeError):
    """The registry refused the version or could not be reached; the message says why."""


def read_key(key_file=None):
    """The deployer key: from a file when given, else the TFSHIP_REGISTRY_KEY environment variable."""
    if key_file:
        return Path(key_file).read_text().strip()
    key = os.environ.get(KEY_ENV, "").strip()
    if not key:
        raise RegistrationError(f"no registry key: pass --registry-key-file or set {KEY_ENV}")
    return key


def _call(method, url, key, body=None, timeout=10.0):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {key}", "Accept": "application/json",
        **({"Content-Type": "application/json"} if data is not None else {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        try:
            detail = json.loads(error.read() or b"null")
        except ValueError:
            detail = None
        return error.code, detail
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        raise RegistrationError(f"registry at {url} unreachable: {error}") from None


def register(registry_url, key, metadata, version_dir, owner="tfship-train"):
    """Create the model if it is new, then register the version; return the registry's record."""
    base = registry_url.rstrip("/") + "/api/v1/models"
    name = metadata["model_name"]
    status, body = _call("GET", f"{base}/{name}", key)
    if status == 404:
        status, body = _call("POST", base, key, {
            "name": name, "owner": owner,
            "description": f"{name} classifier trained by tfship"})
        if status not in (201, 409):  # 409: created meanwhile by a concurrent run
            raise RegistrationError(f"creating model {name} failed ({status}): {body}")
    elif status != 200:
        raise RegistrationError(f"reading model {name} failed ({status}): {body}")
    status, body = _call("POST", f"{base}/{name}/versions", key, {
        "version": metadata["version"],
        "artifact_uri": Path(version_dir).absolute().as_uri(),
        "metrics": metadata["metrics"],
        "input_schema": metadata["input_schema"],
        "feature_statistics": metadata["feature_statistics"],
        "training_data_sha256": metadata["training_data_sha256"],
        "exported_at": metadata["created_at"],
    })
    if status != 201:
        raise RegistrationError(f"registering {name} version {metadata['version']} failed "
                                f"({status}): {body}")
    return body
