"""The platform's operators, installed once per cluster as Helm releases of pinned chart versions."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra import kube, platform_contract
from infra.components.model_server import CONCURRENCY_METRIC
from infra.components.namespaces import pod_security_labels


@dataclass(frozen=True)
class Chart:
    """A pinned chart: its repository, name, version and the namespace it goes to."""

    repo: str
    chart: str
    version: str
    namespace_key: str
    pod_security: str


# Pinned chart versions. The CRD schemas in infra/crd-schemas/ must describe these releases:
# refresh both together (infra/crd-schemas/README.md).
CHARTS = {
    "kube-prometheus-stack": Chart("https://prometheus-community.github.io/helm-charts",
                                   "kube-prometheus-stack", "79.7.1", "monitoring", "privileged"),
    "prometheus-adapter": Chart("https://prometheus-community.github.io/helm-charts",
                                "prometheus-adapter", "4.14.1", "monitoring", "privileged"),
    "eck-operator": Chart("https://helm.elastic.co", "eck-operator", "3.1.0", "eck", "restricted"),
    "cloudnative-pg": Chart("https://cloudnative-pg.github.io/charts", "cloudnative-pg", "0.26.0",
                            "cnpg", "restricted"),
    "cert-manager": Chart("https://charts.jetstack.io", "cert-manager", "v1.18.2", "cert_manager",
                          "restricted"),
    "traefik": Chart("https://traefik.github.io/charts", "traefik", "37.0.0", "ingress", "baseline"),
}
ALERT_SECRETS_DIR = "/etc/alertmanager/secrets"
ALERT_RECEIVERS_SECRET = "alertmanager-receivers"
GRAFANA_ADMIN_SECRET = "grafana-admin"


@dataclass
class ClusterOperatorsArgs:
    """Per-cluster settings of the operators.

    prometheus_retention, prometheus_storage_size, alertmanager_storage_size: Prometheus and
        Alertmanager storage.
    grafana_host, tls_issuer: Grafana's Ingress.
    grafana_admin_password: Grafana's admin password (a Pulumi secret).
    alertmanager_config: monitoring/'s generated Alertmanager config (None until generated).
    alert_receiver_secrets: JSON object of the receivers' secret files (a Pulumi secret).
    """

    prometheus_retention: str
    prometheus_storage_size: str
    alertmanager_storage_size: str
    grafana_host: str
    tls_issuer: str
    grafana_admin_password: pulumi.Input[str]
    alertmanager_config: dict | None
    alert_receiver_secrets: pulumi.Input[str]


def kube_prometheus_values(args: ClusterOperatorsArgs) -> dict:
    """Values of kube-prometheus-stack: selection by the contract's labels, storage, Grafana."""
    alertmanager_spec = {
        "storage": {"volumeClaimTemplate": {"spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": args.alertmanager_storage_size}}}}},
        # The generated config reads receiver secrets from files in this directory.
        "volumes": [{"name": "receivers", "secret": {"secretName": ALERT_RECEIVERS_SECRET}}],
        "volumeMounts": [{"name": "receivers", "mountPath": ALERT_SECRETS_DIR, "readOnly": True}],
    }
    values = {
        "prometheus": {"prometheusSpec": {
            "retention": args.prometheus_retention,
            # Select monitors and rules of every namespace that carry the release label.
            "serviceMonitorSelectorNilUsesHelmValues": True,
            "podMonitorSelectorNilUsesHelmValues": True,
            "ruleSelectorNilUsesHelmValues": True,
            "serviceMonitorNamespaceSelector": {}, "podMonitorNamespaceSelector": {},
            "ruleNamespaceSelector": {},
            "storageSpec": {"volumeClaimTemplate": {"spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": args.prometheus_storage_size}}}}}}},
        "alertmanager": {"alertmanagerSpec": alertmanager_spec},
        "grafana": {
            "admin": {"existingSecret": GRAFANA_ADMIN_SECRET},
            "sidecar": {"dashboards": {"enabled": True,
                                       "label": next(iter(platform_contract.DASHBOARD_LABELS)),
                                       "labelValue": next(iter(platform_contract.DASHBOARD_LABELS.values())),
                                       "searchNamespace": "ALL"}},
            "ingress": {"enabled": True, "ingressClassName": platform_contract.INGRESS_CLASS,
                        "annotations": {"cert-manager.io/cluster-issuer": args.tls_issuer},
                        "hosts": [args.grafana_host],
                        "tls": [{"hosts": [args.grafana_host], "secretName": "grafana-tls"}]}},
    }
    if args.alertmanager_config is not None:
        values["alertmanager"]["config"] = args.alertmanager_config
    return values


def prometheus_adapter_values() -> dict:
    """Values of Prometheus Adapter: TF Serving's request concurrency as a per-pod custom metric."""
    return {
        "prometheus": {"url": f"http://{platform_contract.PROMETHEUS_RELEASE}-prometheus."
                              f"{platform_contract.NAMESPACES['monitoring']}.svc", "port": 9090},
        "rules": {"default": False, "custom": [{
            "seriesQuery": ':tensorflow:serving:request_latency_sum{namespace!="",pod!=""}',
            "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
            "name": {"as": CONCURRENCY_METRIC},
            # Little's law: latency-seconds accumulated per second = mean requests in flight.
            "metricsQuery": "sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>) / 1e6",
        }]},
    }


def chart_values(args: ClusterOperatorsArgs) -> dict[str, dict]:
    """Values of every chart."""
    return {
        "kube-prometheus-stack": kube_prometheus_values(args),
        "prometheus-adapter": prometheus_adapter_values(),
        "eck-operator": {},
        "cloudnative-pg": {},
        "cert-manager": {"crds": {"enabled": True}},
        "traefik": {"ingressClass": {"enabled": True, "isDefaultClass": False,
                                     "name": platform_contract.INGRESS_CLASS},
                    "ports": {"web": {"redirections": {"entryPoint": {"to": "websecure", "scheme": "https"}}}}},
    }


class ClusterOperators(pulumi.ComponentResource):
    """Namespaces and Helm releases of the cluster-wide operators."""

    def __init__(self, name: str, args: ClusterOperatorsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("tfship:cluster_operators:ClusterOperators", name, None, opts)
        own = kube.labels(name, "platform")
        namespaces = {}
        for chart in CHARTS.values():
            ns_name = platform_contract.NAMESPACES[chart.namespace_key]
            if ns_name not in namespaces:
                namespaces[ns_name] = k8s.core.v1.Namespace(
                    f"{name}-{ns_name}", metadata={"name": ns_name,
                                                   "labels": {**own, **pod_security_labels(chart.pod_security)}},
                    opts=pulumi.ResourceOptions(parent=self))
        monitoring_ns = platform_contract.NAMESPACES["monitoring"]
        in_monitoring = pulumi.ResourceOptions(parent=self, depends_on=[namespaces[monitoring_ns]])
        secrets = [
            k8s.core.v1.Secret(f"{name}-grafana-admin",
                               metadata=kube.metadata(GRAFANA_ADMIN_SECRET, monitoring_ns, own),
                               type="Opaque", string_data={"admin-user": "admin",
                                                           "admin-password": args.grafana_admin_password},
                               opts=in_monitoring),
            k8s.core.v1.Secret(f"{name}-alertmanager-receivers",
                               metadata=kube.metadata(ALERT_RECEIVERS_SECRET, monitoring_ns, own),
                               type="Opaque", string_data=pulumi.Output.secret(
                                   pulumi.Output.from_input(args.alert_receiver_secrets).apply(json.loads)),
                               opts=in_monitoring)]
        values = chart_values(args)
        self.releases = {}
        for release, chart in CHARTS.items():
            ns_name = platform_contract.NAMESPACES[chart.namespace_key]
            self.releases[release] = k8s.helm.v3.Release(
                f"{name}-{release}", name=release, namespace=ns_name, chart=chart.chart, version=chart.version,
                repository_opts={"repo": chart.repo}, values=values[release], atomic=True, timeout=900,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[
                    namespaces[ns_name], *(secrets if release == "kube-prometheus-stack" else [])]))
        self.register_outputs({"releases": {r: c.version for r, c in CHARTS.items()}})
