"""Redis as the API's shared rate-limit store, so per-key limits hold across workers and pods."""
from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra import kube

PORT = 6379


@dataclass
class RateLimitStoreArgs:
    """The rate-limit Redis.

    namespace: the environment's namespace.
    image: Redis pinned by digest.
    memory: memory request and limit; Redis is told to stay 20% under it.
    """

    namespace: pulumi.Input[str]
    image: str
    memory: str


def maxmemory(quantity: str) -> str:
    """Return Redis' maxmemory for a container memory size: 80% of it, in bytes."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    number, unit = (quantity[:-2], quantity[-2:]) if quantity[-2:] in units else (quantity, "")
    return str(int(float(number) * units.get(unit, 1) * 0.8))


class RateLimitStore(pulumi.ComponentResource):
    """A single in-memory Redis: losing it only resets the rate-limit windows."""

    def __init__(self, name: str, args: RateLimitStoreArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("tfship:rate_limit_store:RateLimitStore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.selector = kube.labels(name, "rate-limit-store")
        probe = {"tcpSocket": {"port": "redis"}, "periodSeconds": 10, "failureThreshold": 3}
        container = {
            "name": "redis", "image": args.image, "imagePullPolicy": "IfNotPresent",
            "args": ["--save", "", "--appendonly", "no", "--maxmemory", maxmemory(args.memory),
                     "--maxmemory-policy", "volatile-ttl"],
            "ports": [{"name": "redis", "containerPort": PORT}],
            "readinessProbe": probe, "livenessProbe": probe,
            "resources": kube.resources("50m", args.memory, args.memory),
            "securityContext": kube.container_security(),
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        }
        k8s.apps.v1.Deployment(
            f"{name}-deployment", metadata=kube.metadata(name, args.namespace, self.selector),
            spec={"replicas": 1, "selector": {"matchLabels": self.selector},
                  "template": {"metadata": {"labels": self.selector},
                               "spec": {"securityContext": kube.pod_security(),
                                        "automountServiceAccountToken": False,
                                        "containers": [container],
                                        "volumes": [kube.tmp_volume("data")]}}},
            opts=child)
        k8s.core.v1.Service(
            f"{name}-service", metadata=kube.metadata(name, args.namespace, self.selector),
            spec={"type": "ClusterIP", "selector": self.selector,
                  "ports": [{"name": "redis", "port": PORT, "targetPort": "redis"}]},
            opts=child)
        self.url = pulumi.Output.concat("redis://", name, ".", args.namespace, ".svc.cluster.local:", str(PORT))
        self.register_outputs({"url": self.url})
