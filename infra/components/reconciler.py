"""The rollout reconciler in the cluster: one pod running `tfship reconcile` from the API image.

It applies the registry's rollout state to TF Serving's model config, which lives in the model
server's ConfigMap (every replica mounts it and polls it): it reads and replaces exactly that
ConfigMap through the Kubernetes API, with a ServiceAccount whose Role names that ConfigMap and
grants nothing else (get; update, a replace carrying the resourceVersion it read). It finds
every model-server replica through a headless Service (one address per ready replica) and asks
each, on TF Serving's REST port, what it has loaded before it moves a label.

One replica with the Recreate strategy: two reconcilers never run at once, so it needs no
leader election, and a PodDisruptionBudget would only block node drains for a singleton whose
short absence delays rollouts and harms no traffic.
"""
from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra import kube
from infra.components.secrets import Secrets

KEY_DIR = f"{kube.SECRETS_DIR}/reconciler"
HEARTBEAT_FILE = "/tmp/reconciler-heartbeat"
# Where Kubernetes clients look for the in-cluster credentials (token, ca.crt, namespace).
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_EXPIRATION_S = 3600
CONFIG_KEY = "models.config"
INTERVAL_S = 2


@dataclass
class ReconcilerArgs:
    """How the reconciler runs.

    namespace: the environment's namespace (the ConfigMap's too).
    image: the API image (it carries `tfship reconcile`), pinned by digest.
    registry_url: the API's in-cluster base URL (the registry).
    key_secret: Secret holding the reader API key as file `key`.
    model_config_map: name of the ConfigMap holding TF Serving's `models.config`.
    replicas_url: http://<headless Service>:<REST port> resolving to every model-server replica.
    unload_grace_s: how long a dropped label or unnamed version stays loaded.
    """

    namespace: pulumi.Input[str]
    image: str
    registry_url: pulumi.Input[str]
    key_secret: str
    model_config_map: str
    replicas_url: pulumi.Input[str]
    unload_grace_s: int


def role_rules(config_map: str) -> list[dict]:
    """The only permissions the reconciler has: read and replace (PUT) one ConfigMap."""
    return [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [config_map],
             "verbs": ["get", "update"]}]


def service_account_volume(name: str = "kube-api-access") -> dict:
    """A short-lived, audience-bound token, the cluster CA and the namespace, as Kubernetes mounts them.

    Declared explicitly (automount off) so that only the reconciler container sees a token.
    """
    return {"name": name, "projected": {"defaultMode": 0o440, "sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": TOKEN_EXPIRATION_S}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}}


class Reconciler(pulumi.ComponentResource):
    """`tfship reconcile` as a singleton Deployment with least-privilege access to the model config."""

    def __init__(self, name: str, args: ReconcilerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("tfship:reconciler:Reconciler", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.selector = kube.labels(name, "rollout-reconciler")
        account = k8s.core.v1.ServiceAccount(
            f"{name}-account", metadata=kube.metadata(name, args.namespace, self.selector),
            automount_service_account_token=False, opts=child)
        role = k8s.rbac.v1.Role(
            f"{name}-role", metadata=kube.metadata(name, args.namespace, self.selector),
            rules=role_rules(args.model_config_map), opts=child)
        binding = k8s.rbac.v1.RoleBinding(
            f"{name}-binding", metadata=kube.metadata(name, args.namespace, self.selector),
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            subjects=[{"kind": "ServiceAccount", "name": name, "namespace": args.namespace}],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[account, role]))
        self.args = ["reconcile", "--registry", args.registry_url,
                     "--key-file", f"{KEY_DIR}/{Secrets.RECONCILER_KEY_FILE}",
                     "--model-config-configmap", pulumi.Output.concat(args.namespace, "/", args.model_config_map),
                     "--model-config-key", CONFIG_KEY,
                     "--model-server-dns", args.replicas_url,
                     "--unload-grace-seconds", str(args.unload_grace_s),
                     "--interval", str(INTERVAL_S),
                     "--heartbeat-file", HEARTBEAT_FILE]
        # Alive while passes keep coming (whether or not the registry answers: restarting would
        # not make it answer); a pass every INTERVAL_S seconds, each HTTP call bounded by 5 s.
        heartbeat = {"exec": {"command": ["/bin/sh", "-c", f'test -n "$(find {HEARTBEAT_FILE} -mmin -2)"']}}
        container = {
            "name": "reconciler", "image": args.image, "imagePullPolicy": "IfNotPresent",
            "args": self.args,
            "securityContext": kube.container_security(),
            "resources": kube.resources("50m", "96Mi", "192Mi"),
            "startupProbe": {**heartbeat, "periodSeconds": 5, "failureThreshold": 24},
            "readinessProbe": {**heartbeat, "periodSeconds": 30},
            "livenessProbe": {**heartbeat, "periodSeconds": 30, "failureThreshold": 3},
            "volumeMounts": [{"name": "reconciler-key", "mountPath": KEY_DIR, "readOnly": True},
                             {"name": "kube-api-access", "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": True},
                             {"name": "tmp", "mountPath": "/tmp"}],
        }
        k8s.apps.v1.Deployment(
            f"{name}-deployment", metadata=kube.metadata(name, args.namespace, self.selector),
            spec={"replicas": 1, "strategy": {"type": "Recreate"},
                  "selector": {"matchLabels": self.selector},
                  "template": {"metadata": {"labels": self.selector},
                               "spec": {"serviceAccountName": name,
                                        "automountServiceAccountToken": False,
                                        "securityContext": kube.pod_security(),
                                        "terminationGracePeriodSeconds": 10,
                                        "containers": [container],
                                        "volumes": [{"name": "reconciler-key",
                                                     "secret": {"secretName": args.key_secret, "defaultMode": 0o440}},
                                                    service_account_volume(), kube.tmp_volume(size="16Mi")]}}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[binding]))
        self.register_outputs({"selector": self.selector})
