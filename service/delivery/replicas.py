"""Ask every model-server replica, through TF Serving's status API, what it serves.

Replicas are given as URLs, or found through DNS (`resolve`): in Kubernetes a headless
Service's name resolves to one address per ready replica, so every pass sees the replicas the
autoscaler runs now.
"""
import ipaddress
import socket
from urllib.parse import quote, urlsplit

import requests

TIMEOUT_S = (1.0, 5.0)
FAILED = "FAILED"


class ReplicaUnreachable(RuntimeError):
    """A replica did not answer its status API."""


def resolve(url, lookup=socket.getaddrinfo):
    """Return one base URL per address url's host resolves to (sorted; ReplicaUnreachable if none).

    url is `http://<name>:<port>`; each address gives `http://<address>:<port>`.
    """
    scheme, host, port = split_url(url)
    try:
        infos = lookup(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise ReplicaUnreachable(f"{host}: no replica address ({error})") from None
    addresses = sorted({info[4][0] for info in infos},
                       key=lambda a: (ipaddress.ip_address(a).version, ipaddress.ip_address(a)))
    if not addresses:
        raise ReplicaUnreachable(f"{host}: no replica address")
    return [f"{scheme}://{f'[{a}]' if ':' in a else a}:{port}" for a in addresses]


def split_url(url):
    """Return (scheme, host, port) of an http(s)://host[:port] URL; ValueError otherwise."""
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = None
    if parts.scheme not in ("http", "https") or not parts.hostname or port is None \
            or parts.path not in ("", "/"):
        raise ValueError(f"{url!r} is not an http(s)://host[:port] URL")
    return parts.scheme, parts.hostname, port


def version_states(replica_url, model, session=requests):
    """Return {version: state} of model on one replica ({} when the replica does not know it).

    States are TF Serving's (START, LOADING, AVAILABLE, UNLOADING, END), and FAILED for a
    version whose load ended with an error.
    """
    url = f"{replica_url.rstrip('/')}/v1/models/{quote(model, safe='')}"
    try:
        response = session.get(url, timeout=TIMEOUT_S)
    except requests.RequestException as error:
        raise ReplicaUnreachable(f"{replica_url}: {type(error).__name__}") from None
    if response.status_code == 404:
        return {}
    if response.status_code != 200:
        raise ReplicaUnreachable(f"{replica_url}: status API answered {response.status_code}")
    states = {}
    for item in response.json().get("model_version_status", []):
        code = (item.get("status") or {}).get("error_code", "OK")
        failed = item["state"] == "END" and code != "OK"
        states[int(item["version"])] = FAILED if failed else item["state"]
    return states


def label_version(replica_url, model, label, session=requests):
    """Return the version label points at on one replica (None when the label is unknown)."""
    url = f"{replica_url.rstrip('/')}/v1/models/{quote(model, safe='')}/labels/{quote(label)}"
    try:
        response = session.get(url, timeout=TIMEOUT_S)
    except requests.RequestException as error:
        raise ReplicaUnreachable(f"{replica_url}: {type(error).__name__}") from None
    if response.status_code != 200:
        return None
    statuses = response.json().get("model_version_status", [])
    return int(statuses[0]["version"]) if statuses else None


def available_everywhere(replica_urls, model, session=requests):
    """Return the versions of model AVAILABLE on every replica."""
    common = None
    for url in replica_urls:
        available = {v for v, state in version_states(url, model, session).items()
                     if state == "AVAILABLE"}
        common = available if common is None else common & available
    return common or set()


def failed_anywhere(replica_urls, model, versions, session=requests):
    """Return the versions among versions whose load failed on some replica."""
    failed = set()
    for url in replica_urls:
        states = version_states(url, model, session)
        failed |= {v for v in versions if states.get(v) == FAILED}
    return failed
