"""cert-manager ClusterIssuers: Let's Encrypt (staging and production) and a self-signed one."""
from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra import kube, platform_contract

ACME_SERVERS = {"letsencrypt-staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
                "letsencrypt-prod": "https://acme-v02.api.letsencrypt.org/directory"}


@dataclass
class ClusterIssuersArgs:
    """The issuers.

    acme_email: contact address registered with Let's Encrypt.
    """

    acme_email: str


class ClusterIssuers(pulumi.ComponentResource):
    """ClusterIssuers named in platform_contract.CLUSTER_ISSUERS, solving HTTP-01 through the ingress."""

    def __init__(self, name: str, args: ClusterIssuersArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("tfship:cluster_issuers:ClusterIssuers", name, None, opts)
        own = kube.labels(name, "tls")
        specs = {issuer: {"acme": {"server": server, "email": args.acme_email,
                                   "privateKeySecretRef": {"name": f"{issuer}-account-key"},
                                   "solvers": [{"http01": {"ingress": {
                                       "ingressClassName": platform_contract.INGRESS_CLASS}}}]}}
                 for issuer, server in ACME_SERVERS.items()}
        specs["selfsigned"] = {"selfSigned": {}}
        for issuer in platform_contract.CLUSTER_ISSUERS:
            k8s.apiextensions.CustomResource(
                f"{name}-{issuer}", api_version="cert-manager.io/v1", kind="ClusterIssuer",
                metadata={"name": issuer, "labels": own}, spec=specs[issuer],
                opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"issuers": list(platform_contract.CLUSTER_ISSUERS)})
