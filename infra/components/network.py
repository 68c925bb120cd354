"""NetworkPolicies: deny everything by default, then allow exactly the flows listed."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from infra import kube

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Peer:
    """One end of a flow: a workload of this namespace, pods of another namespace, or a CIDR.

    name: names the workload's NetworkPolicy (in-namespace peers) and the flow in reviews.
    selector: pod labels (in-namespace, or within namespace when set).
    namespace: another namespace (by name); None means this one.
    cidr, except_cidrs: an IP block instead of pods.
    """

    name: str
    selector: tuple = ()
    namespace: str | None = None
    cidr: str | None = None
    except_cidrs: tuple = ()

    @property
    def local(self) -> bool:
        """Whether this peer is a workload of the environment's own namespace."""
        return self.namespace is None and self.cidr is None

    def rule_peer(self) -> dict:
        """Return this peer as a NetworkPolicy from/to entry."""
        if self.cidr:
            block = {"cidr": self.cidr}
            if self.except_cidrs:
                block["except"] = list(self.except_cidrs)
            return {"ipBlock": block}
        peer = {"podSelector": {"matchLabels": dict(self.selector)}}
        if self.namespace:
            peer["namespaceSelector"] = {"matchLabels": {NAMESPACE_NAME_LABEL: self.namespace}}
            if not self.selector:
                del peer["podSelector"]
        return peer


def workload(name: str, selector: dict) -> Peer:
    """A workload of the environment's namespace."""
    return Peer(name, tuple(sorted(selector.items())))


def namespace(name: str, namespace_name: str, selector: dict | None = None) -> Peer:
    """Pods (all, or those matching selector) of another namespace."""
    return Peer(name, tuple(sorted((selector or {}).items())), namespace=namespace_name)


@dataclass(frozen=True)
class Flow:
    """Traffic allowed from source to destination on one port."""

    source: Peer
    destination: Peer
    port: int
    protocol: str = "TCP"


@dataclass
class NetworkArgs:
    """The environment's allowed traffic.

    namespace: the environment's namespace.
    flows: every allowed flow; anything else is denied. DNS is always allowed.
    """

    namespace: pulumi.Input[str]
    flows: list[Flow] = field(default_factory=list)


def policies(flows: list[Flow]) -> dict[str, dict]:
    """Return one NetworkPolicy spec per local workload, with the ingress and egress it needs."""
    ingress, egress, selectors = defaultdict(list), defaultdict(list), {}
    for flow in flows:
        if flow.destination.local:
            selectors[flow.destination.name] = flow.destination.selector
            ingress[flow.destination.name].append(flow)
        if flow.source.local:
            selectors[flow.source.name] = flow.source.selector
            egress[flow.source.name].append(flow)

    def rules(grouped: list[Flow], direction: str, peer_of) -> list[dict]:
        by_port = defaultdict(list)
        for flow in grouped:
            peer = peer_of(flow).rule_peer()
            if peer not in by_port[(flow.port, flow.protocol)]:
                by_port[(flow.port, flow.protocol)].append(peer)
        return [{direction: peers, "ports": [{"port": port, "protocol": protocol}]}
                for (port, protocol), peers in sorted(by_port.items())]

    specs = {}
    for name, selector in sorted(selectors.items()):
        specs[name] = {
            "podSelector": {"matchLabels": dict(selector)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": rules(ingress[name], "from", lambda f: f.source),
            "egress": rules(egress[name], "to", lambda f: f.destination),
        }
    return specs


class Network(pulumi.ComponentResource):
    """Default-deny NetworkPolicy, DNS for everyone, and one policy per workload for its flows."""

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("tfship:network:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        own = kube.labels(name, "network")
        k8s.networking.v1.NetworkPolicy(
            f"{name}-default-deny", metadata=kube.metadata("default-deny", args.namespace, own),
            spec={"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}, opts=child)
        dns = namespace("dns", "kube-system", {"k8s-app": "kube-dns"}).rule_peer()
        k8s.networking.v1.NetworkPolicy(
            f"{name}-allow-dns", metadata=kube.metadata("allow-dns", args.namespace, own),
            spec={"podSelector": {}, "policyTypes": ["Egress"],
                  "egress": [{"to": [dns], "ports": [{"port": 53, "protocol": "UDP"},
                                                     {"port": 53, "protocol": "TCP"}]}]},
            opts=child)
        self.policy_names = []
        for workload_name, spec in policies(args.flows).items():
            policy_name = f"allow-{workload_name}"
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{policy_name}", metadata=kube.metadata(policy_name, args.namespace, own),
                spec=spec, opts=child)
            self.policy_names.append(policy_name)
        self.register_outputs({"policies": self.policy_names})
