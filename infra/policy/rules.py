"""The organisation's rules for one Kubernetes object, as plain functions of its manifest.

Each rule takes a manifest (camelCase, as the provider receives it) and returns a list of
violation messages. The Pulumi policy pack (infra/policy/__main__.py) enforces them at
preview and update time; the tests run them over every rendered object.
"""
from __future__ import annotations

import re
from typing import Callable, Iterator

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod")


def manifest_from_inputs(resource_type: str, inputs: dict) -> dict | None:
    """Return a Kubernetes resource's inputs as a manifest, or None for any other resource.

    The type token says the API version and kind (`kubernetes:apps/v1:Deployment`); Helm
    releases and providers are not Kubernetes objects.
    """
    if not resource_type.startswith("kubernetes:") or resource_type.startswith("kubernetes:helm"):
        return None
    group_version, kind = resource_type.split(":")[1:]
    group, _, version = group_version.rpartition("/")
    api_version = version if group in ("core", "") else f"{group}/{version}"
    return {"apiVersion": api_version, "kind": kind,
            **{k: v for k, v in inputs.items() if k not in ("apiVersion", "kind")}}


def pod_spec(manifest: dict) -> dict | None:
    """Return the pod spec of a workload object, or None for other kinds."""
    kind, spec = manifest.get("kind"), manifest.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        return ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template", {}).get("spec")
    if kind in WORKLOAD_KINDS:
        return (spec.get("template") or {}).get("spec")
    return None


def containers(manifest: dict, include_init: bool = True) -> Iterator[tuple[str, dict]]:
    """Yield (kind of container, container) of a workload object."""
    spec = pod_spec(manifest) or {}
    for container in spec.get("containers") or []:
        yield "container", container
    if include_init:
        for container in spec.get("initContainers") or []:
            yield "initContainer", container


def name_of(manifest: dict) -> str:
    """Name an object in messages: Kind/namespace/name."""
    meta = manifest.get("metadata") or {}
    return f"{manifest.get('kind')}/{meta.get('namespace', '-')}/{meta.get('name')}"


def images_pinned_by_digest(manifest: dict) -> list[str]:
    """Every container image (and CloudNativePG imageName) is pinned by a sha256 digest."""
    found = [(f"{kind} {c.get('name')}", c.get("image", "")) for kind, c in containers(manifest)]
    if manifest.get("kind") == "Cluster" and "imageName" in (manifest.get("spec") or {}):
        found.append(("imageName", manifest["spec"]["imageName"]))
    return [f"{name_of(manifest)}: {where} image {image!r} is not pinned by digest"
            for where, image in found if not DIGEST.search(image or "")]


def resources_set(manifest: dict) -> list[str]:
    """Every container requests CPU and memory and has a memory limit."""
    problems = []
    for kind, container in containers(manifest):
        resources = container.get("resources") or {}
        missing = [f"requests.{r}" for r in ("cpu", "memory") if r not in (resources.get("requests") or {})]
        if "memory" not in (resources.get("limits") or {}):
            missing.append("limits.memory")
        if missing:
            problems.append(f"{name_of(manifest)}: {kind} {container.get('name')} lacks {', '.join(missing)}")
    return problems


def runs_restricted(manifest: dict) -> list[str]:
    """Containers run as non-root, read-only root, no privilege escalation, ALL capabilities dropped."""
    spec = pod_spec(manifest)
    if spec is None:
        return []
    pod_context = spec.get("securityContext") or {}
    problems = []
    for kind, container in containers(manifest):
        context = container.get("securityContext") or {}
        where = f"{name_of(manifest)}: {kind} {container.get('name')}"
        if not (context.get("runAsNonRoot") or pod_context.get("runAsNonRoot")):
            problems.append(f"{where} may run as root (runAsNonRoot unset)")
        if context.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where} has a writable root filesystem")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where} allows privilege escalation")
        if "ALL" not in ((context.get("capabilities") or {}).get("drop") or []):
            problems.append(f"{where} does not drop ALL capabilities")
        if (context.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get("type") not in (
                "RuntimeDefault", "Localhost"):
            problems.append(f"{where} has no RuntimeDefault seccomp profile")
    if (spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC")):
        problems.append(f"{name_of(manifest)}: shares a host namespace")
    return problems


def serving_containers_probed(manifest: dict) -> list[str]:
    """A container that serves a port has readiness and liveness probes."""
    problems = []
    for _, container in containers(manifest, include_init=False):
        if not container.get("ports"):
            continue
        missing = [p for p in ("readinessProbe", "livenessProbe") if p not in container]
        if missing:
            problems.append(f"{name_of(manifest)}: container {container.get('name')} serves a port "
                            f"but has no {', '.join(missing)}")
    return problems


def selector_matches_template(manifest: dict) -> list[str]:
    """A workload's selector matches its own pod template's labels."""
    spec = manifest.get("spec") or {}
    if manifest.get("kind") not in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
        return []
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not selector:
        return [f"{name_of(manifest)}: has no matchLabels selector"]
    wrong = {k: v for k, v in selector.items() if labels.get(k) != v}
    return [f"{name_of(manifest)}: selector {wrong} does not match its pod labels {labels}"] if wrong else []


def no_external_load_balancers(manifest: dict) -> list[str]:
    """Services stay inside the cluster; traffic comes in through the Ingress only."""
    if manifest.get("kind") == "Service" and (manifest.get("spec") or {}).get("type") in ("LoadBalancer", "NodePort"):
        return [f"{name_of(manifest)}: type {manifest['spec']['type']} bypasses the Ingress"]
    return []


def ingress_has_tls(manifest: dict) -> list[str]:
    """Every Ingress serves TLS with a cert-manager issuer."""
    if manifest.get("kind") != "Ingress":
        return []
    problems = []
    annotations = (manifest.get("metadata") or {}).get("annotations") or {}
    if "cert-manager.io/cluster-issuer" not in annotations and "cert-manager.io/issuer" not in annotations:
        problems.append(f"{name_of(manifest)}: no cert-manager issuer annotation")
    hosts = {rule.get("host") for rule in (manifest.get("spec") or {}).get("rules") or []}
    tls_hosts = {h for tls in (manifest.get("spec") or {}).get("tls") or [] for h in tls.get("hosts") or []}
    if hosts - tls_hosts:
        problems.append(f"{name_of(manifest)}: hosts without TLS: {sorted(hosts - tls_hosts)}")
    return problems


WRITE_VERBS = ("update", "patch", "delete", "deletecollection")
PRIVILEGED_VERBS = ("escalate", "bind", "impersonate", "*")


def rbac_least_privilege(manifest: dict) -> list[str]:
    """Roles grant no wildcards and no escalation; writes (update, patch, delete) name their objects."""
    if manifest.get("kind") not in ("Role", "ClusterRole"):
        return []
    problems = []
    for number, rule in enumerate(manifest.get("rules") or []):
        where = f"{name_of(manifest)}: rule {number}"
        for field in ("apiGroups", "resources", "verbs"):
            if "*" in (rule.get(field) or []):
                problems.append(f"{where} grants * in {field}")
        verbs = rule.get("verbs") or []
        escalating = sorted(set(verbs) & set(PRIVILEGED_VERBS) - {"*"})
        if escalating:
            problems.append(f"{where} grants {', '.join(escalating)}")
        if "create" in verbs:
            problems.append(f"{where} grants create (it cannot be limited to named objects)")
        if set(verbs) & set(WRITE_VERBS) and not rule.get("resourceNames"):
            problems.append(f"{where} writes {', '.join(rule.get('resources') or [])} without resourceNames")
    return problems


RULES: dict[str, Callable[[dict], list[str]]] = {
    "images-pinned-by-digest": images_pinned_by_digest,
    "resources-set": resources_set,
    "runs-restricted": runs_restricted,
    "serving-containers-probed": serving_containers_probed,
    "selector-matches-template": selector_matches_template,
    "no-external-load-balancers": no_external_load_balancers,
    "ingress-has-tls": ingress_has_tls,
    "rbac-least-privilege": rbac_least_privilege,
}


def violations(manifest: dict, skip: tuple[str, ...] = ()) -> list[str]:
    """Every violation of every rule, except the rules named in skip."""
    return [message for name, rule in RULES.items() if name not in skip for message in rule(manifest)]
