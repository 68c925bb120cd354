"""Locust master and workers running the loadtests/ suites inside the cluster (optional)."""
from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra import kube

MASTER_PORT = 5557
WEB_PORT = 8089


@dataclass
class LoadTestArgs:
    """Distributed Locust.

    namespace: the environment's namespace.
    image: the loadtests image (infra/images/loadtests.Dockerfile), pinned by digest.
    workers: worker replicas.
    target_url: the API's in-cluster URL the users call.
    """

    namespace: pulumi.Input[str]
    image: str
    workers: int
    target_url: pulumi.Input[str]


class LoadTest(pulumi.ComponentResource):
    """A Locust master (web UI and worker port) and its workers."""

    def __init__(self, name: str, args: LoadTestArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("tfship:load_test:LoadTest", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.master_selector = kube.labels(name, "locust-master")
        self.worker_selector = kube.labels(name, "locust-worker")
        self.master_name = f"{name}-master"
        base = {"image": args.image, "imagePullPolicy": "IfNotPresent",
                "securityContext": kube.container_security(),
                "env": [{"name": "LOCUST_HOST", "value": args.target_url}],
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]}
        master = {"name": "master", **base,
                  "args": ["--master", f"--master-bind-port={MASTER_PORT}", f"--web-port={WEB_PORT}"],
                  "ports": [{"name": "web", "containerPort": WEB_PORT},
                            {"name": "master", "containerPort": MASTER_PORT}],
                  "readinessProbe": kube.http_probe("/", "web", period=10, failures=3),
                  "livenessProbe": kube.http_probe("/", "web", period=20, failures=3),
                  "resources": kube.resources("250m", "256Mi", "512Mi")}
        worker = {"name": "worker", **base,
                  "args": ["--worker", f"--master-host={self.master_name}", f"--master-port={MASTER_PORT}"],
                  "resources": kube.resources("500m", "256Mi", "512Mi")}
        # A worker serves no port to probe; it quits by itself when the master's heartbeats stop.
        no_probe = "the Locust worker serves no port; it exits when the master's heartbeats stop"
        worker_annotations = {"checkov.io/skip1": f"CKV_K8S_8={no_probe}",
                              "checkov.io/skip2": f"CKV_K8S_9={no_probe}"}
        for role, selector, container, replicas, annotations in (
                ("master", self.master_selector, master, 1, {}),
                ("worker", self.worker_selector, worker, args.workers, worker_annotations)):
            k8s.apps.v1.Deployment(
                f"{name}-{role}",
                metadata=kube.metadata(f"{name}-{role}", args.namespace, selector, annotations=annotations),
                spec={"replicas": replicas, "selector": {"matchLabels": selector},
                      "template": {"metadata": {"labels": selector},
                                   "spec": {"securityContext": kube.pod_security(),
                                            "automountServiceAccountToken": False,
                                            "containers": [container], "volumes": [kube.tmp_volume()]}}},
                opts=child)
        k8s.core.v1.Service(
            f"{name}-master-service", metadata=kube.metadata(self.master_name, args.namespace, self.master_selector),
            spec={"type": "ClusterIP", "selector": self.master_selector,
                  "ports": [{"name": "master", "port": MASTER_PORT, "targetPort": "master"},
                            {"name": "web", "port": WEB_PORT, "targetPort": "web"}]},
            opts=child)
        self.register_outputs({"master": self.master_name})
