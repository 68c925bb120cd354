"""Small builders of Kubernetes object fragments that every component shares.

Manifests are written as plain dicts with the API's own camelCase field names, so what a
component declares reads like the YAML that is rendered and reviewed.
"""
from __future__ import annotations

import hashlib
import json

PART_OF = "tfship"
RUN_AS_USER = 10001
SECRETS_DIR = "/var/run/secrets/tfship"


def labels(name: str, component: str) -> dict[str, str]:
    """Return the selector labels of one workload: stable, minimal, unique per workload."""
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/component": component,
            "app.kubernetes.io/part-of": PART_OF}


def metadata(name: str, namespace: str, object_labels: dict[str, str], **extra) -> dict:
    """Return object metadata with an explicit name (names are part of the wiring, not random)."""
    return {"name": name, "namespace": namespace, "labels": dict(object_labels), **extra}


def container_security(run_as_user: int | None = RUN_AS_USER) -> dict:
    """Return a container securityContext that Pod Security "restricted" admits."""
    context = {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if run_as_user is not None:
        context["runAsUser"] = run_as_user
        context["runAsGroup"] = run_as_user
    return context


def pod_security(run_as_user: int = RUN_AS_USER) -> dict:
    """Return a pod securityContext: non-root, RuntimeDefault seccomp, volumes group-owned."""
    return {"runAsNonRoot": True, "runAsUser": run_as_user, "runAsGroup": run_as_user,
            "fsGroup": run_as_user, "seccompProfile": {"type": "RuntimeDefault"}}


def resources(cpu_request: str, memory_request: str, memory_limit: str) -> dict:
    """Return container resources. No CPU limit on purpose: throttling hurts tail latency."""
    return {"requests": {"cpu": cpu_request, "memory": memory_request},
            "limits": {"memory": memory_limit}}


def http_probe(path: str, port: str | int, period: int, failures: int, timeout: int = 2) -> dict:
    """Return an HTTP GET probe."""
    return {"httpGet": {"path": path, "port": port}, "periodSeconds": period,
            "failureThreshold": failures, "timeoutSeconds": timeout}


def spread(selector: dict[str, str]) -> list[dict]:
    """Spread replicas across zones (best effort) and nodes (as far as possible)."""
    return [
        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
         "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": dict(selector)}},
        {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
         "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": dict(selector)}},
    ]


def tmp_volume(name: str = "tmp", size: str = "64Mi") -> dict:
    """Return a bounded emptyDir, the only writable place of a read-only root filesystem."""
    return {"name": name, "emptyDir": {"sizeLimit": size}}


def checksum(data: dict) -> str:
    """Return a short digest of config data, put on a pod template so a change rolls the pods."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
