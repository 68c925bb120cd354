"""The environment's namespaces, labelled for Pod Security admission."""
from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra import kube


@dataclass
class NamespacesArgs:
    """The namespaces of one environment.

    name: the workloads' namespace, enforced at Pod Security "restricted".
    agents: the namespace of host-level agents (Filebeat reads node log files), at "privileged",
        or None where no agent runs.
    """

    name: str
    agents: str | None


def pod_security_labels(level: str) -> dict[str, str]:
    """Return the labels that enforce, audit and warn at one Pod Security level."""
    return {f"pod-security.kubernetes.io/{mode}": level for mode in ("enforce", "audit", "warn")}


class Namespaces(pulumi.ComponentResource):
    """A restricted namespace for the workloads and, when needed, a privileged one for agents."""

    def __init__(self, name: str, args: NamespacesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("tfship:namespaces:Namespaces", name, None, opts)
        own = kube.labels(name, "namespace")
        workloads = k8s.core.v1.Namespace(
            f"{name}-workloads", metadata={"name": args.name, "labels": {**own, **pod_security_labels("restricted")}},
            opts=pulumi.ResourceOptions(parent=self))
        self.name = workloads.metadata.name
        self.agents = None
        if args.agents:
            agents = k8s.core.v1.Namespace(
                f"{name}-agents", metadata={"name": args.agents, "labels": {**own, **pod_security_labels("privileged")}},
                opts=pulumi.ResourceOptions(parent=self))
            self.agents = agents.metadata.name
        self.register_outputs({"name": self.name, "agents": self.agents})
