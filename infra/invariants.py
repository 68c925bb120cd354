"""Checks across a stack's objects: selectors find their pods, and traffic has a policy.

Each check takes every manifest of one stack and returns violation messages that name the
objects involved. Pods of operator-managed custom resources (Elasticsearch, Kibana,
CloudNativePG) are included with the labels and ports their operators give them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from infra.components import log_pipeline, registry_database
from infra.policy.rules import name_of, pod_spec

# Pods that operators create for a custom resource: their labels and named ports.
OPERATOR_PODS = {
    "Elasticsearch": ("elasticsearch.k8s.elastic.co/cluster-name",
                      {"https": log_pipeline.ES_HTTP_PORT, "transport": log_pipeline.ES_TRANSPORT_PORT}),
    "Kibana": ("kibana.k8s.elastic.co/name", {"http": log_pipeline.KIBANA_PORT}),
    "Cluster": ("cnpg.io/cluster", {"postgresql": registry_database.PORT, "status": registry_database.STATUS_PORT,
                                    "metrics": registry_database.METRICS_PORT}),
}
# Services operators create for a custom resource: name suffix, port name, port number.
OPERATOR_SERVICES = {
    "Elasticsearch": [("-es-http", "https", log_pipeline.ES_HTTP_PORT)],
    "Kibana": [("-kb-http", "http", log_pipeline.KIBANA_PORT)],
    "Cluster": [(suffix, "postgresql", registry_database.PORT) for suffix in ("-rw", "-ro", "-r")],
}
SERVICE_URL = re.compile(r"\b(https?|redis)://([a-z0-9-]+)\.([a-z0-9-]+)\.svc(?:\.cluster\.local)?(?::(\d+))?")
DEFAULT_PORTS = {"http": 80, "https": 443, "redis": 6379}


@dataclass
class Pods:
    """The pods one object runs: where, with which labels, ports and containers."""

    owner: str
    namespace: str
    labels: dict
    ports: dict[str, int] = field(default_factory=dict)
    unnamed_ports: set[int] = field(default_factory=set)
    env_values: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)

    def numbers(self) -> set[int]:
        """Every port number the pods listen on."""
        return set(self.ports.values()) | self.unnamed_ports

    def port_number(self, port: int | str) -> int | None:
        """Resolve a named or numbered port."""
        return self.ports.get(port) if isinstance(port, str) else port


def pods_of(objects: list[dict]) -> list[Pods]:
    """Every set of pods the objects run (workloads and operator-managed custom resources)."""
    found = []
    for manifest in objects:
        meta = manifest.get("metadata") or {}
        spec = pod_spec(manifest)
        if spec is not None:
            template = manifest["spec"].get("template") or (
                (manifest["spec"].get("jobTemplate") or {}).get("spec", {}).get("template")) or {}
            pods = Pods(name_of(manifest), meta.get("namespace"), (template.get("metadata") or {}).get("labels") or {})
            for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
                for port in container.get("ports") or []:
                    if port.get("name"):
                        pods.ports[port["name"]] = port["containerPort"]
                    else:
                        pods.unnamed_ports.add(port["containerPort"])
                pods.env_values += [str(e.get("value")) for e in container.get("env") or [] if "value" in e]
                pods.args += [str(a) for a in (container.get("args") or []) + (container.get("command") or [])]
            found.append(pods)
        elif manifest.get("kind") in OPERATOR_PODS:
            label, ports = OPERATOR_PODS[manifest["kind"]]
            value = meta["name"]
            found.append(Pods(name_of(manifest), meta.get("namespace"), {label: value}, dict(ports)))
    return found


def services_of(objects: list[dict]) -> dict[tuple[str, str], dict]:
    """Every Service of the stack by (namespace, name), with those operators create for CRs."""
    services = {(o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects if o["kind"] == "Service"}
    for manifest in objects:
        for suffix, port_name, number in OPERATOR_SERVICES.get(manifest.get("kind"), []):
            meta = manifest["metadata"]
            label = OPERATOR_PODS[manifest["kind"]][0]
            name = meta["name"] + suffix
            services[(meta.get("namespace"), name)] = {
                "kind": "Service", "metadata": {"name": name, "namespace": meta.get("namespace")},
                "spec": {"selector": {label: meta["name"]},
                         "ports": [{"name": port_name, "port": number, "targetPort": port_name}]}}
    return services


def matches(selector: dict, labels: dict) -> bool:
    """Whether a matchLabels selector selects labels (an empty selector selects everything)."""
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def services_select_workloads(objects: list[dict]) -> list[str]:
    """Every Service selects pods of this stack, and each targetPort exists on them."""
    pods = pods_of(objects)
    problems = []
    for service in (o for o in objects if o["kind"] == "Service"):
        ns, selector = service["metadata"].get("namespace"), service["spec"].get("selector") or {}
        selected = [p for p in pods if p.namespace == ns and selector and matches(selector, p.labels)]
        if not selected:
            problems.append(f"{name_of(service)}: selector {selector} selects no pods of this stack")
            continue
        for port in service["spec"].get("ports") or []:
            target = port.get("targetPort", port["port"])
            if not any(p.port_number(target) in p.numbers() for p in selected):
                problems.append(f"{name_of(service)}: targetPort {target!r} is not a port of "
                                f"{', '.join(p.owner for p in selected)}")
    return problems


def selectors_find_targets(objects: list[dict]) -> list[str]:
    """PDBs select pods; HPAs scale an existing Deployment; Ingresses route to existing Service ports."""
    pods = pods_of(objects)
    problems = []
    deployments = {(o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects if o["kind"] == "Deployment"}
    services = services_of(objects)
    for obj in objects:
        ns = obj["metadata"].get("namespace")
        if obj["kind"] == "PodDisruptionBudget":
            selector = obj["spec"]["selector"].get("matchLabels")
            if not any(p.namespace == ns and matches(selector, p.labels) for p in pods):
                problems.append(f"{name_of(obj)}: selector {selector} selects no pods")
        elif obj["kind"] == "HorizontalPodAutoscaler":
            target = obj["spec"]["scaleTargetRef"]
            if target["kind"] != "Deployment" or (ns, target["name"]) not in deployments:
                problems.append(f"{name_of(obj)}: scales {target['kind']}/{target['name']}, not a Deployment here")
        elif obj["kind"] == "Ingress":
            for rule in obj["spec"].get("rules") or []:
                for path in (rule.get("http") or {}).get("paths") or []:
                    backend = path["backend"]["service"]
                    service = services.get((ns, backend["name"]))
                    port = backend["port"]
                    if service is None:
                        problems.append(f"{name_of(obj)}: backend Service {backend['name']} does not exist")
                    elif not any(port.get("name") == sp.get("name") or port.get("number") == sp["port"]
                                 for sp in service["spec"]["ports"]):
                        problems.append(f"{name_of(obj)}: backend port {port} is not a port of {name_of(service)}")
    return problems


def _policy_allows(policy: dict, direction: str, peer_labels: dict | None, port: int, pods: Pods | None) -> bool:
    """Whether one policy has a rule in direction admitting port (and, when given, the peer)."""
    for rule in policy["spec"].get(direction) or []:
        ports = rule.get("ports")
        if ports and not any(p.get("port") == port or (pods and pods.port_number(p.get("port")) == port)
                             for p in ports):
            continue
        if peer_labels is None:
            return True
        peers = rule.get("from" if direction == "ingress" else "to") or []
        if any("namespaceSelector" not in peer and "ipBlock" not in peer
               and matches((peer.get("podSelector") or {}).get("matchLabels"), peer_labels) for peer in peers):
            return True
    return False


def network_policies_cover_ports(objects: list[dict]) -> list[str]:
    """Every listening port has an ingress allow; every in-cluster URL a pod calls has both ends allowed.

    Calls are found in the pods' own configuration: environment values and arguments holding
    `scheme://<service>.<namespace>.svc[:port]` URLs (the model server URL, the rate-limit
    store, Elasticsearch, Kibana, the API for Locust).
    """
    pods = pods_of(objects)
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    restricted_namespaces = {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"
                             and (o["metadata"].get("labels") or {}).get("pod-security.kubernetes.io/enforce") == "restricted"}
    services = services_of(objects)
    problems = []

    def policies_for(target: Pods) -> list[dict]:
        return [p for p in policies if p["metadata"].get("namespace") == target.namespace
                and matches(p["spec"]["podSelector"].get("matchLabels"), target.labels)]

    for target in pods:
        if target.namespace not in restricted_namespaces:
            continue
        if not any(p["spec"]["podSelector"] == {} and set(p["spec"].get("policyTypes", [])) >= {"Ingress", "Egress"}
                   and not p["spec"].get("ingress") and not p["spec"].get("egress")
                   for p in policies if p["metadata"].get("namespace") == target.namespace):
            problems.append(f"namespace {target.namespace}: no default-deny NetworkPolicy")
        for port in sorted(target.numbers()):
            if not any(_policy_allows(p, "ingress", None, port, target) for p in policies_for(target)):
                problems.append(f"{target.owner}: port {port} has no NetworkPolicy ingress allow")
    for client in pods:
        for text in client.env_values + client.args:
            for scheme, service_name, ns, port in SERVICE_URL.findall(text):
                service = services.get((ns, service_name))
                if service is None:
                    problems.append(f"{client.owner}: calls {service_name}.{ns}, which is no Service of this stack")
                    continue
                number = int(port) if port else DEFAULT_PORTS[scheme]
                service_port = next((sp for sp in service["spec"]["ports"] if sp["port"] == number), None)
                if service_port is None:
                    problems.append(f"{client.owner}: calls port {number} of {name_of(service)}, which it lacks")
                    continue
                targets = [t for t in pods if t.namespace == ns and matches(service["spec"]["selector"], t.labels)]
                if not targets:
                    problems.append(f"{client.owner}: calls {name_of(service)}, which selects no pods")
                for target in targets:
                    target_port = target.port_number(service_port.get("targetPort", number))
                    if not any(_policy_allows(p, "egress", target.labels, target_port, target)
                               for p in policies_for(client)):
                        problems.append(f"{client.owner}: no egress allow to {target.owner} port {target_port}")
                    if not any(_policy_allows(p, "ingress", client.labels, target_port, target)
                               for p in policies_for(target)):
                        problems.append(f"{target.owner}: no ingress allow from {client.owner} port {target_port}")
    return problems


def monitors_select_services(objects: list[dict]) -> list[str]:
    """ServiceMonitors select Services that have the scraped port; PodMonitors select pods with it."""
    pods = pods_of(objects)
    problems = []
    for monitor in (o for o in objects if o["kind"] in ("ServiceMonitor", "PodMonitor")):
        ns, selector = monitor["metadata"].get("namespace"), monitor["spec"]["selector"].get("matchLabels")
        if monitor["kind"] == "ServiceMonitor":
            services = [o for o in objects if o["kind"] == "Service" and o["metadata"].get("namespace") == ns
                        and matches(selector, o["metadata"].get("labels") or {})]
            names = {p.get("name") for s in services for p in s["spec"]["ports"]}
            endpoints = monitor["spec"].get("endpoints") or []
        else:
            selected = [p for p in pods if p.namespace == ns and matches(selector, p.labels)]
            names = {n for p in selected for n in p.ports}
            services = selected
            endpoints = monitor["spec"].get("podMetricsEndpoints") or []
        if not services:
            problems.append(f"{name_of(monitor)}: selector {selector} selects nothing")
        for endpoint in endpoints:
            if endpoint.get("port") not in names:
                problems.append(f"{name_of(monitor)}: port {endpoint.get('port')!r} is not among {sorted(names)}")
    return problems


CHECKS = (services_select_workloads, selectors_find_targets, network_policies_cover_ports, monitors_select_services)


def violations(objects: list[dict]) -> list[str]:
    """Every cross-object violation of a stack."""
    return [message for check in CHECKS for message in check(objects)]
