"""Deliberately broken stacks fail the cross-object checks, each naming what is wrong.

Budget: under 2 s (works on the session's mocked runs).
"""
import copy

import pytest

pytest.importorskip("pulumi", reason="Pulumi programs are tested in .venv-infra")

from infra import invariants  # noqa: E402
from infra.policy import rules  # noqa: E402


@pytest.fixture
def prod(objects):
    return copy.deepcopy(objects["prod"])


def find(objects, kind, name):
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def test_wrong_service_selector(prod):
    find(prod, "Service", "model-server")["spec"]["selector"]["app.kubernetes.io/name"] = "model-servr"
    problems = invariants.services_select_workloads(prod)
    assert len(problems) == 1
    assert problems[0].startswith("Service/tfship-prod/model-server: selector {")
    assert "'model-servr'" in problems[0] and problems[0].endswith("selects no pods of this stack")
    assert any("model-server" in p for p in invariants.network_policies_cover_ports(prod))


def test_wrong_workload_selector(prod):
    find(prod, "Deployment", "api-blue")["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] = "gateway"
    assert any("Deployment/tfship-prod/api-blue: selector" in p for p in rules.selector_matches_template(find(prod, "Deployment", "api-blue")))


def test_wrong_target_port(prod):
    find(prod, "Service", "api")["spec"]["ports"][0]["targetPort"] = "https"
    assert invariants.services_select_workloads(prod) == [
        "Service/tfship-prod/api: targetPort 'https' is not a port of Deployment/tfship-prod/api-blue"]


def test_missing_memory_limit(prod):
    deployment = find(prod, "Deployment", "model-server")
    del deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert rules.resources_set(deployment) == [
        "Deployment/tfship-prod/model-server: container tfserving lacks limits.memory"]


def test_port_without_network_policy(prod):
    policy = find(prod, "NetworkPolicy", "allow-rate-limit-store")
    policy["spec"]["ingress"] = []
    problems = invariants.network_policies_cover_ports(prod)
    assert "Deployment/tfship-prod/rate-limits: port 6379 has no NetworkPolicy ingress allow" in problems
    assert "Deployment/tfship-prod/rate-limits: no ingress allow from Deployment/tfship-prod/api-blue port 6379" in problems


def test_call_without_egress(prod):
    policy = find(prod, "NetworkPolicy", "allow-api")
    policy["spec"]["egress"] = [r for r in policy["spec"]["egress"] if r["ports"][0]["port"] != 8501]
    assert sorted(invariants.network_policies_cover_ports(prod)) == [
        "Deployment/tfship-prod/api-blue: no egress allow to Deployment/tfship-prod/model-server port 8501",
        "Deployment/tfship-prod/api-green: no egress allow to Deployment/tfship-prod/model-server port 8501"]


def test_missing_default_deny(prod):
    prod.remove(find(prod, "NetworkPolicy", "default-deny"))
    assert any("no default-deny" in p for p in invariants.network_policies_cover_ports(prod))


def test_monitor_on_a_missing_port(prod):
    find(prod, "ServiceMonitor", "api")["spec"]["endpoints"][0]["port"] = "metrics"
    assert invariants.monitors_select_services(prod) == [
        "ServiceMonitor/tfship-prod/api: port 'metrics' is not among ['http']"]


def test_hpa_and_pdb_targets(prod):
    find(prod, "HorizontalPodAutoscaler", "api")["spec"]["scaleTargetRef"]["name"] = "apii"
    find(prod, "PodDisruptionBudget", "model-server")["spec"]["selector"]["matchLabels"] = {"app": "nope"}
    problems = invariants.selectors_find_targets(prod)
    assert len(problems) == 2 and "apii" in problems[0] + problems[1]


def test_operator_pods_count(prod):
    """Ports of operator-managed pods (PostgreSQL, Elasticsearch, Kibana) need allows too."""
    policy = find(prod, "NetworkPolicy", "allow-database")
    policy["spec"]["ingress"] = [r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] != 9187]
    assert invariants.network_policies_cover_ports(prod) == [
        "Cluster/tfship-prod/registry-db: port 9187 has no NetworkPolicy ingress allow"]
