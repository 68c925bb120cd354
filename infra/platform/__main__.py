"""A platform stack (one per cluster): the operators every environment stack builds on."""
import pulumi

from infra import config, monitoring_files, platform_contract
from infra.components.cluster_issuers import ClusterIssuers, ClusterIssuersArgs
from infra.components.cluster_operators import CHARTS, ClusterOperators, ClusterOperatorsArgs

cfg = config.load_platform()
operators = ClusterOperators("platform", ClusterOperatorsArgs(
    prometheus_retention=cfg.prometheus_retention, prometheus_storage_size=cfg.prometheus_storage_size,
    alertmanager_storage_size=cfg.alertmanager_storage_size, grafana_host=cfg.grafana_host,
    tls_issuer="letsencrypt-prod", grafana_admin_password=cfg.grafana_admin_password,
    alertmanager_config=monitoring_files.alertmanager_config(),
    alert_receiver_secrets=cfg.alert_receiver_secrets))
ClusterIssuers("tls", ClusterIssuersArgs(acme_email=cfg.acme_email),
               opts=pulumi.ResourceOptions(depends_on=[operators.releases["cert-manager"]]))

pulumi.export("ingressClassName", platform_contract.INGRESS_CLASS)
pulumi.export("clusterIssuers", list(platform_contract.CLUSTER_ISSUERS))
pulumi.export("namespaces", platform_contract.NAMESPACES)
pulumi.export("monitoringSelectorLabels", platform_contract.MONITORING_SELECTOR_LABELS)
pulumi.export("dashboardLabels", platform_contract.DASHBOARD_LABELS)
pulumi.export("grafanaUrl", f"https://{cfg.grafana_host}")
pulumi.export("chartVersions", {release: chart.version for release, chart in CHARTS.items()})
