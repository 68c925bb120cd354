"""Prometheus Operator objects generated from monitoring/: ServiceMonitors, rules, dashboards."""
from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from infra import kube, monitoring_files

MONITORING_API = "monitoring.coreos.com/v1"


@dataclass
class ScrapeTarget:
    """One thing Prometheus scrapes: a Service (or, with pods=True, pods) by selector, a named port."""

    name: str
    selector: dict
    port: str
    path: str
    pods: bool = False


@dataclass
class MonitoringArgs:
    """What the environment's monitoring wires in.

    namespace: the environment's namespace.
    slo_profile: the profile of monitoring/slo.yaml whose rules are deployed.
    selector_labels: labels the platform's Prometheus selects ServiceMonitors, PodMonitors and
        PrometheusRules by (a platform stack output).
    dashboard_labels: labels Grafana's dashboard sidecar selects ConfigMaps by (platform output).
    targets: what to scrape.
    """

    namespace: pulumi.Input[str]
    slo_profile: str
    selector_labels: pulumi.Input[dict]
    dashboard_labels: pulumi.Input[dict]
    targets: list[ScrapeTarget] = field(default_factory=list)


def _labels(extra: pulumi.Input[dict], own: dict) -> pulumi.Output[dict]:
    return pulumi.Output.from_input(extra).apply(lambda labels: {**own, **labels})


class Monitoring(pulumi.ComponentResource):
    """Scrape configs, alerting and recording rules, and dashboards for one environment."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("tfship:monitoring:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        own = kube.labels(name, "monitoring")
        selected = _labels(args.selector_labels, own)
        for target in args.targets:
            endpoint = {"port": target.port, "path": target.path, "interval": "15s"}
            kind = "PodMonitor" if target.pods else "ServiceMonitor"
            endpoints_key = "podMetricsEndpoints" if target.pods else "endpoints"
            k8s.apiextensions.CustomResource(
                f"{name}-{target.name}", api_version=MONITORING_API, kind=kind,
                metadata={"name": target.name, "namespace": args.namespace, "labels": selected},
                spec={"selector": {"matchLabels": target.selector}, endpoints_key: [endpoint]},
                opts=child)
        self.rule_files = monitoring_files.rule_files(args.slo_profile)
        for path in self.rule_files:
            rule_name = path.name.removesuffix(".yml").replace(".", "-")
            k8s.apiextensions.CustomResource(
                f"{name}-{rule_name}", api_version=MONITORING_API, kind="PrometheusRule",
                metadata={"name": rule_name, "namespace": args.namespace, "labels": selected},
                spec={"groups": monitoring_files.rule_groups(path)}, opts=child)
        self.dashboards = monitoring_files.dashboards()
        for file_name, text in self.dashboards.items():
            dashboard = file_name.removesuffix(".json").replace("_", "-").lower()
            k8s.core.v1.ConfigMap(
                f"{name}-dashboard-{dashboard}",
                metadata={"name": f"dashboard-{dashboard}", "namespace": args.namespace,
                          "labels": _labels(args.dashboard_labels, own)},
                data={file_name: text}, opts=child)
        self.register_outputs({"rule_files": [p.name for p in self.rule_files],
                               "dashboards": sorted(self.dashboards)})
