"""Kubernetes Secrets made from Pulumi secrets, mounted as files by the workloads."""
from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra import kube


@dataclass
class SecretsArgs:
    """What the environment's Secrets hold.

    namespace: where the Secrets live.
    api_key_secret: server secret keying the API-key HMAC (a Pulumi secret).
    access_key_id, secret_access_key: object-store credentials (Pulumi secrets).
    reconciler_api_key: the rollout reconciler's reader key of the registry (a Pulumi secret).
    """

    namespace: pulumi.Input[str]
    api_key_secret: pulumi.Input[str]
    access_key_id: pulumi.Input[str]
    secret_access_key: pulumi.Input[str]
    reconciler_api_key: pulumi.Input[str]


class Secrets(pulumi.ComponentResource):
    """The API's key secret and the object-store credentials, as Kubernetes Secrets."""

    API_KEY_FILE = "key-secret"
    CREDENTIALS_FILE = "credentials"
    RECONCILER_KEY_FILE = "key"

    def __init__(self, name: str, args: SecretsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("tfship:secrets:Secrets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        object_labels = kube.labels("secrets", "config")
        self.api_key_name = f"{name}-api-key"
        k8s.core.v1.Secret(
            f"{name}-api-key", metadata=kube.metadata(self.api_key_name, args.namespace, object_labels),
            type="Opaque", string_data={self.API_KEY_FILE: args.api_key_secret}, opts=child)
        self.object_store_name = f"{name}-object-store"
        credentials = pulumi.Output.secret(pulumi.Output.all(args.access_key_id, args.secret_access_key).apply(
            lambda keys: f"[default]\naws_access_key_id = {keys[0]}\naws_secret_access_key = {keys[1]}\n"))
        k8s.core.v1.Secret(
            f"{name}-object-store",
            metadata=kube.metadata(self.object_store_name, args.namespace, object_labels),
            type="Opaque",
            string_data={self.CREDENTIALS_FILE: credentials, "ACCESS_KEY_ID": args.access_key_id,
                         "ACCESS_SECRET_KEY": args.secret_access_key},
            opts=child)
        self.reconciler_key_name = f"{name}-reconciler-key"
        k8s.core.v1.Secret(
            f"{name}-reconciler-key",
            metadata=kube.metadata(self.reconciler_key_name, args.namespace, object_labels),
            type="Opaque", string_data={self.RECONCILER_KEY_FILE: args.reconciler_api_key}, opts=child)
        self.register_outputs({"api_key_name": self.api_key_name, "object_store_name": self.object_store_name,
                               "reconciler_key_name": self.reconciler_key_name})
