"""The environment program (infra/__main__.py) under mocks: per-resource invariants and wiring.

Every stack (dev, staging, prod) runs once per session with Pulumi.yaml's defaults and its
stack file. Failures name the resource. Budget: under 10 s.
"""
import pytest

pytest.importorskip("pulumi", reason="Pulumi programs are tested in .venv-infra")

import pytest

from infra import invariants, monitoring_files, platform_contract
from infra.components import model_server
from infra.components.cluster_operators import prometheus_adapter_values
from infra.policy import rules

ENVIRONMENTS = ("dev", "staging", "prod")


def by_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


@pytest.mark.parametrize("stack", ENVIRONMENTS)
@pytest.mark.parametrize("rule", sorted(rules.RULES))
def test_every_object_follows_the_rules(objects, stack, rule):
    problems = [m for o in objects[stack] for m in rules.RULES[rule](o)]
    assert problems == []


@pytest.mark.parametrize("stack", ENVIRONMENTS)
@pytest.mark.parametrize("check", invariants.CHECKS, ids=lambda c: c.__name__)
def test_objects_fit_together(objects, stack, check):
    assert check(objects[stack]) == []


@pytest.mark.parametrize("stack", ENVIRONMENTS)
def test_every_workload_is_checked(objects, stack):
    """The rules above saw the workloads: a stack without containers would pass vacuously."""
    names = {o["metadata"]["name"] for o in objects[stack] if rules.pod_spec(o) is not None}
    assert {"api-blue", "api-green", "model-server", "rate-limits", "reconciler"} <= names


@pytest.mark.parametrize("stack", ENVIRONMENTS)
def test_monitoring_output_is_wired_with_the_charts_selector_labels(objects, stack, runs):
    profile = runs[stack].exports["sloProfile"]
    rules_deployed = {o["metadata"]["name"]: o for o in by_kind(objects[stack], "PrometheusRule")}
    expected = monitoring_files.rule_files(profile)
    assert expected, "monitoring/generated/prometheus has no rule files for this profile"
    for path in expected:
        name = path.name.removesuffix(".yml").replace(".", "-")
        assert name in rules_deployed, f"{path.name} is not deployed as a PrometheusRule"
        assert rules_deployed[name]["spec"]["groups"] == monitoring_files.rule_groups(path), name
    assert len(rules_deployed) == len(expected), f"unexpected rules: {sorted(rules_deployed)}"
    dashboards = {k for o in by_kind(objects[stack], "ConfigMap") for k in (o.get("data") or {})
                  if (o["metadata"].get("labels") or {}).items() >= platform_contract.DASHBOARD_LABELS.items()}
    assert dashboards == set(monitoring_files.dashboards()), "every generated dashboard, labelled for the sidecar"
    for kind in ("ServiceMonitor", "PodMonitor", "PrometheusRule"):
        for obj in by_kind(objects[stack], kind):
            labels = obj["metadata"].get("labels") or {}
            assert labels.items() >= platform_contract.MONITORING_SELECTOR_LABELS.items(), \
                f"{rules.name_of(obj)} lacks the Prometheus selector labels"
    monitored = {o["metadata"]["name"] for o in by_kind(objects[stack], "ServiceMonitor")}
    assert {"api", "model-server"} <= monitored


@pytest.mark.parametrize("stack", ENVIRONMENTS)
def test_model_config_is_created_once_and_left_to_the_rollout(runs, stack):
    config_map = next(r for r in runs[stack].resources if r.name == "model-server-model-config")
    assert "data" in config_map.options["ignore_changes"], config_map.label
    text = config_map.inputs["data"]["models.config"]
    assert 'name: "penguins"' in text and "model_version_policy" in text


@pytest.mark.parametrize("stack", ENVIRONMENTS)
def test_model_server_scales_on_the_concurrency_metric_the_adapter_serves(objects, stack):
    hpa = next(o for o in by_kind(objects[stack], "HorizontalPodAutoscaler") if o["metadata"]["name"] == "model-server")
    pods_metrics = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    served = [rule["name"]["as"] for rule in prometheus_adapter_values()["rules"]["custom"]]
    assert pods_metrics == [model_server.CONCURRENCY_METRIC] and model_server.CONCURRENCY_METRIC in served


@pytest.mark.parametrize("stack", ENVIRONMENTS)
def test_model_server_is_configured_for_monitoring_batching_and_probes(objects, stack):
    deployment = next(o for o in by_kind(objects[stack], "Deployment") if o["metadata"]["name"] == "model-server")
    server = deployment["spec"]["template"]["spec"]["containers"][0]
    assert any(a.startswith("--monitoring_config_file=") for a in server["args"])
    assert "--enable_batching=true" in server["args"]
    assert server["startupProbe"]["failureThreshold"] * server["startupProbe"]["periodSeconds"] >= 300
    assert server["readinessProbe"]["httpGet"]["path"] == "/v1/models/penguins"
    assert deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]


@pytest.mark.parametrize("stack", ENVIRONMENTS)
def test_grpc_is_open_only_to_labelled_clients(objects, stack):
    grpc_rules = [(p["metadata"]["name"], rule) for p in by_kind(objects[stack], "NetworkPolicy")
                  for rule in p["spec"].get("ingress") or []
                  if any(port["port"] == model_server.GRPC_PORT for port in rule.get("ports") or [])]
    assert len(grpc_rules) == 1
    peers = grpc_rules[0][1]["from"]
    assert peers == [{"podSelector": {"matchLabels": {model_server.GRPC_CLIENT_LABEL: "true"}}}]


@pytest.mark.parametrize("stack", ENVIRONMENTS)
def test_migrations_run_before_the_api_rolls_out(runs, objects, stack):
    live = next(r for r in runs[stack].resources if r.name == "api-blue")
    jobs = [o for o in by_kind(objects[stack], "Job") if o["metadata"]["name"].startswith("api-migrate-")]
    init = live.inputs["spec"]["template"]["spec"].get("initContainers") or []
    if jobs:
        assert "api-migrate" in live.options["depends_on"]
        assert jobs[0]["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "upgrade", "head"]
    else:
        assert [c["args"] for c in init] == [["db", "upgrade", "head"]], "SQLite migrates in an init container"


@pytest.mark.parametrize("stack", ENVIRONMENTS)
def test_secrets_are_files_not_environment(objects, stack):
    for obj in objects[stack]:
        for _, container in rules.containers(obj):
            for env in container.get("env") or []:
                assert "valueFrom" not in env, f"{rules.name_of(obj)}: {env['name']} comes from a Secret via env"


@pytest.mark.parametrize("stack", ENVIRONMENTS)
def test_namespaces_and_pod_security(objects, stack):
    levels = {o["metadata"]["name"]: o["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
              for o in by_kind(objects[stack], "Namespace")}
    workloads = {o["metadata"]["namespace"] for o in objects[stack] if rules.pod_spec(o) is not None}
    assert all(levels[ns] == "restricted" for ns in workloads)
    beats = by_kind(objects[stack], "Beat")
    assert all(levels[b["metadata"]["namespace"]] == "privileged" for b in beats)


def test_environments_differ_only_in_config(objects, runs):
    dev, prod = objects["dev"], objects["prod"]
    assert not by_kind(dev, "Cluster") and by_kind(prod, "Cluster")
    assert by_kind(prod, "Cluster")[0]["spec"]["instances"] == 3
    assert by_kind(dev, "Deployment") and not any(o["metadata"]["name"].startswith("locust") for o in prod)
    assert {r.type.split(":")[1] for r in runs["staging"].resources} >= {r.type.split(":")[1] for r in runs["prod"].resources}


@pytest.mark.parametrize("stack", ENVIRONMENTS)
def test_exports(runs, stack):
    exports = runs[stack].exports
    assert exports["apiUrl"].startswith("https://api.")
    assert exports["grafanaUrl"].startswith("https://grafana.")
    assert exports["kibanaUrl"].startswith("https://kibana.")
    assert exports["modelServerUrl"] == f"http://model-server.tfship-{stack}.svc.cluster.local:8501"


@pytest.mark.parametrize("stack", ENVIRONMENTS)
def test_ingresses_use_a_platform_issuer(objects, stack):
    for ingress in by_kind(objects[stack], "Ingress"):
        issuer = ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"]
        assert issuer in platform_contract.CLUSTER_ISSUERS, rules.name_of(ingress)
        assert ingress["spec"]["ingressClassName"] == platform_contract.INGRESS_CLASS
