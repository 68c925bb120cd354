"""Each organisation rule on hand-made manifests: what passes, and the message for what fails.

No Pulumi runtime. Budget: under 1 s.
"""
import pytest

from infra.policy import rules

DIGEST = "@sha256:" + "a" * 64


def deployment(**container):
    base = {"name": "app", "image": "registry/app:1" + DIGEST,
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
            "securityContext": {"runAsNonRoot": True, "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}},
            "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
            "livenessProbe": {"httpGet": {"path": "/", "port": "http"}}}
    base.update(container)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "app", "namespace": "ns"},
            "spec": {"selector": {"matchLabels": {"app": "app"}},
                     "template": {"metadata": {"labels": {"app": "app"}}, "spec": {"containers": [base]}}}}


def test_a_good_deployment_passes():
    assert rules.violations(deployment()) == []


@pytest.mark.parametrize("change, rule, message", [
    ({"image": "registry/app:1"}, "images-pinned-by-digest", "image 'registry/app:1' is not pinned by digest"),
    ({"resources": {"requests": {"cpu": "1"}}}, "resources-set", "lacks requests.memory, limits.memory"),
    ({"securityContext": {}}, "runs-restricted", "may run as root"),
    ({"readinessProbe": None}, "serving-containers-probed", "has no readinessProbe"),
])
def test_each_rule_names_the_problem(change, rule, message):
    manifest = deployment(**{k: v for k, v in change.items() if v is not None})
    for key, value in change.items():
        if value is None:
            del manifest["spec"]["template"]["spec"]["containers"][0][key]
    problems = rules.RULES[rule](manifest)
    assert problems and problems[0].startswith("Deployment/ns/app: ") and message in problems[0]


def test_wrong_selector():
    manifest = deployment()
    manifest["spec"]["selector"]["matchLabels"] = {"app": "other"}
    assert rules.selector_matches_template(manifest) == [
        "Deployment/ns/app: selector {'app': 'other'} does not match its pod labels {'app': 'app'}"]


def test_load_balancer_and_ingress_without_tls():
    service = {"kind": "Service", "metadata": {"name": "s"}, "spec": {"type": "LoadBalancer"}}
    assert rules.no_external_load_balancers(service) == ["Service/-/s: type LoadBalancer bypasses the Ingress"]
    ingress = {"kind": "Ingress", "metadata": {"name": "i"}, "spec": {"rules": [{"host": "a.example.com"}]}}
    assert len(rules.ingress_has_tls(ingress)) == 2


def test_cnpg_image_name_must_be_pinned():
    cluster = {"kind": "Cluster", "metadata": {"name": "db"}, "spec": {"imageName": "postgres:16"}}
    assert rules.images_pinned_by_digest(cluster) == ["Cluster/-/db: imageName image 'postgres:16' is not pinned by digest"]


def role(*rules_):
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "r", "namespace": "ns"}, "rules": list(rules_)}


def test_a_role_writing_one_named_config_map_passes():
    assert rules.rbac_least_privilege(role({"apiGroups": [""], "resources": ["configmaps"],
                                            "resourceNames": ["model-config"], "verbs": ["get", "update"]})) == []
    assert rules.rbac_least_privilege(role({"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]})) == []


@pytest.mark.parametrize("rule, message", [
    ({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["update"]}, "writes configmaps without resourceNames"),
    ({"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]}, "grants * in apiGroups"),
    ({"apiGroups": [""], "resources": ["*"], "verbs": ["get"]}, "grants * in resources"),
    ({"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["c"], "verbs": ["*"]}, "grants * in verbs"),
    ({"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "resourceNames": ["r"], "verbs": ["bind", "escalate"]},
     "grants bind, escalate"),
    ({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]}, "grants create"),
])
def test_roles_beyond_least_privilege_fail(rule, message):
    problems = rules.rbac_least_privilege(role(rule))
    assert problems and problems[0].startswith("Role/ns/r: rule 0") and message in " ".join(problems)
