"""The platform program (infra/platform/__main__.py) under mocks: pinned charts, the contract.

Budget: under 3 s (runs are shared with the other infra tests).
"""
import pytest

pytest.importorskip("pulumi", reason="Pulumi programs are tested in .venv-infra")

import re

import pytest

from infra import monitoring_files, platform_contract
from infra.components.cluster_operators import ALERT_SECRETS_DIR, CHARTS
from infra.render import alert_secret_files

PLATFORMS = ("platform/nonprod", "platform/prod")


def releases(run):
    return {r.inputs["name"]: r.inputs for r in run.of_type("kubernetes:helm.sh/v3:Release")}


@pytest.mark.parametrize("stack", PLATFORMS)
def test_operators_come_from_pinned_charts(runs, stack):
    found = releases(runs[stack])
    assert set(found) == {"kube-prometheus-stack", "prometheus-adapter", "eck-operator", "cloudnative-pg",
                          "cert-manager", "traefik"}
    for name, inputs in found.items():
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", inputs["version"]), f"{name}: version {inputs['version']!r} not pinned"
        assert inputs["version"] == CHARTS[name].version and inputs["atomic"] is True


@pytest.mark.parametrize("stack", PLATFORMS)
def test_exports_are_the_contract(runs, stack):
    exports = runs[stack].exports
    assert exports["namespaces"] == platform_contract.NAMESPACES
    assert exports["monitoringSelectorLabels"] == platform_contract.MONITORING_SELECTOR_LABELS
    assert exports["dashboardLabels"] == platform_contract.DASHBOARD_LABELS
    assert exports["ingressClassName"] == platform_contract.INGRESS_CLASS
    issuers = {o["metadata"]["name"] for _, o in runs[stack].kubernetes_objects() if o["kind"] == "ClusterIssuer"}
    assert issuers == set(exports["clusterIssuers"]) == set(platform_contract.CLUSTER_ISSUERS)


@pytest.mark.parametrize("stack", PLATFORMS)
def test_prometheus_selects_by_the_contract_labels(runs, stack):
    values = releases(runs[stack])["kube-prometheus-stack"]["values"]
    spec = values["prometheus"]["prometheusSpec"]
    # With *NilUsesHelmValues the chart selects release=<release name>: the contract's label.
    assert spec["serviceMonitorSelectorNilUsesHelmValues"] and spec["ruleSelectorNilUsesHelmValues"]
    assert spec["podMonitorSelectorNilUsesHelmValues"]
    assert {"release": "kube-prometheus-stack"} == platform_contract.MONITORING_SELECTOR_LABELS
    assert spec["serviceMonitorNamespaceSelector"] == {} == spec["ruleNamespaceSelector"]
    sidecar = values["grafana"]["sidecar"]["dashboards"]
    assert {sidecar["label"]: sidecar["labelValue"]} == platform_contract.DASHBOARD_LABELS
    assert sidecar["searchNamespace"] == "ALL"


def test_retention_is_set_per_cluster(runs):
    retention = {s: releases(runs[s])["kube-prometheus-stack"]["values"]["prometheus"]["prometheusSpec"]["retention"]
                 for s in PLATFORMS}
    assert retention == {"platform/nonprod": "15d", "platform/prod": "45d"}


@pytest.mark.parametrize("stack", PLATFORMS)
def test_alertmanager_runs_the_generated_config_with_its_secret_files(runs, stack):
    values = releases(runs[stack])["kube-prometheus-stack"]["values"]["alertmanager"]
    generated = monitoring_files.alertmanager_config()
    if generated is None:
        pytest.skip("monitoring/ has not generated alertmanager.yml yet")
    assert values["config"] == generated
    mounts = values["alertmanagerSpec"]["volumeMounts"]
    assert [m["mountPath"] for m in mounts] == [ALERT_SECRETS_DIR]
    secret = next(o for _, o in runs[stack].kubernetes_objects() if o["kind"] == "Secret"
                  and o["metadata"]["name"] == values["alertmanagerSpec"]["volumes"][0]["secret"]["secretName"])
    assert alert_secret_files(), "the generated config reads no secret files"
    assert set(secret["stringData"]) == set(alert_secret_files())
