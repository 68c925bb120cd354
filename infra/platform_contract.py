"""What the platform stack promises environment stacks: names both projects build on.

The platform program creates these and exports them; environment stacks read the exports
through a StackReference. Namespace names are needed as plain values (NetworkPolicy peers
are computed before any output resolves), so they are fixed here, and a test holds the
platform's exports equal to this module.
"""
NAMESPACES = {
    "ingress": "traefik",
    "monitoring": "monitoring",
    "cnpg": "cnpg-system",
    "eck": "elastic-system",
    "cert_manager": "cert-manager",
}
INGRESS_CLASS = "traefik"
# kube-prometheus-stack's Prometheus selects ServiceMonitors, PodMonitors and PrometheusRules
# by this label (the chart's default: release=<release name>).
PROMETHEUS_RELEASE = "kube-prometheus-stack"
MONITORING_SELECTOR_LABELS = {"release": PROMETHEUS_RELEASE}
# Grafana's dashboard sidecar (chart defaults: label grafana_dashboard="1"), searching all namespaces.
DASHBOARD_LABELS = {"grafana_dashboard": "1"}
CLUSTER_ISSUERS = ("letsencrypt-staging", "letsencrypt-prod", "selfsigned")
