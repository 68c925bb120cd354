"""The rollout reconciler's Deployment, RBAC and network flows in every environment. Budget: under 1 s.

Runs on the session's mocked stacks (tests/infra/conftest.py); the objects are also validated
against Kubernetes' schemas, scanned by checkov and checked by the invariants with the rest.
"""
import pytest

pytest.importorskip("pulumi", reason="Pulumi programs are tested in .venv-infra")

from infra.components import model_server, reconciler  # noqa: E402
from infra.invariants import matches  # noqa: E402
from infra.policy import rules  # noqa: E402

ENVIRONMENTS = ("dev", "staging", "prod")


def find(objects, kind, name):
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def option(args, flag):
    return args[args.index(flag) + 1]


@pytest.mark.parametrize("stack", ENVIRONMENTS)
def test_one_restricted_replica_that_cannot_overlap(objects, stack):
    deployment = find(objects[stack], "Deployment", "reconciler")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert reconciler.HEARTBEAT_FILE in container[probe]["exec"]["command"][-1], probe
    assert option(container["args"], "--heartbeat-file") == reconciler.HEARTBEAT_FILE
    for rule in (rules.runs_restricted, rules.resources_set, rules.images_pinned_by_digest):
        assert rule(deployment) == [], rule.__name__
    assert not any(o["kind"] == "PodDisruptionBudget" and o["metadata"]["name"] == "reconciler" for o in objects[stack])


@pytest.mark.parametrize("stack", ENVIRONMENTS)
def test_it_runs_the_live_api_image_against_the_registry_and_every_replica(objects, stack):
    spec = find(objects[stack], "Deployment", "reconciler")["spec"]["template"]["spec"]
    args = spec["containers"][0]["args"]
    ns = find(objects[stack], "Deployment", "reconciler")["metadata"]["namespace"]
    live = find(objects[stack], "Service", "api")["spec"]["selector"]["tfship.io/colour"]
    assert spec["containers"][0]["image"] == find(objects[stack], "Deployment", f"api-{live}")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert args[0] == "reconcile"
    assert option(args, "--registry") == f"http://api.{ns}.svc.cluster.local"
    assert option(args, "--model-config-configmap") == f"{ns}/model-server-model-config"
    assert option(args, "--model-config-key") == "models.config"
    assert option(args, "--model-server-dns") == f"http://model-server-replicas.{ns}.svc.cluster.local:{model_server.REST_PORT}"
    assert int(option(args, "--unload-grace-seconds")) >= 30
    headless = find(objects[stack], "Service", "model-server-replicas")
    assert headless["spec"]["clusterIP"] == "None" and not headless["spec"].get("publishNotReadyAddresses")
    server = find(objects[stack], "Deployment", "model-server")
    assert matches(headless["spec"]["selector"], server["spec"]["template"]["metadata"]["labels"])
    key_mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "reconciler-key")
    assert option(args, "--key-file").startswith(key_mount["mountPath"] + "/")
    secret = next(v for v in spec["volumes"] if v["name"] == "reconciler-key")["secret"]["secretName"]
    assert find(objects[stack], "Secret", secret)["stringData"] == {"key": "REDACTED-BY-RENDER"}


@pytest.mark.parametrize("stack", ENVIRONMENTS)
def test_rbac_reaches_exactly_the_model_config_map(objects, stack):
    role = find(objects[stack], "Role", "reconciler")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"],
                              "resourceNames": ["model-server-model-config"], "verbs": ["get", "update"]}]
    binding = find(objects[stack], "RoleBinding", "reconciler")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reconciler"}
    ns = role["metadata"]["namespace"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "reconciler", "namespace": ns}]
    assert find(objects[stack], "ServiceAccount", "reconciler")["automountServiceAccountToken"] is False
    assert find(objects[stack], "ConfigMap", "model-server-model-config")
    assert not [o for o in objects[stack] if o["kind"] in ("ClusterRole", "ClusterRoleBinding")
                and "reconciler" in o["metadata"]["name"]]
    pod = find(objects[stack], "Deployment", "reconciler")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "reconciler" and pod["automountServiceAccountToken"] is False
    token = next(v for v in pod["volumes"] if v["name"] == "kube-api-access")["projected"]["sources"][0]
    assert token["serviceAccountToken"]["expirationSeconds"] <= 3600, "a short-lived token, mounted explicitly"


@pytest.mark.parametrize("stack", ENVIRONMENTS)
def test_network_policy_allows_its_three_flows_and_nothing_else(objects, stack):
    policy = find(objects[stack], "NetworkPolicy", "allow-reconciler")
    assert policy["spec"]["ingress"] == [], "nothing calls the reconciler"
    egress = {rule["ports"][0]["port"]: rule["to"] for rule in policy["spec"]["egress"]}
    assert set(egress) == {8080, model_server.REST_PORT, 443, 6443}
    api_labels = find(objects[stack], "Deployment", "api-blue")["spec"]["template"]["metadata"]["labels"]
    server_labels = find(objects[stack], "Deployment", "model-server")["spec"]["template"]["metadata"]["labels"]
    assert [matches(peer["podSelector"]["matchLabels"], api_labels) for peer in egress[8080]] == [True]
    assert [matches(peer["podSelector"]["matchLabels"], server_labels) for peer in egress[model_server.REST_PORT]] == [True]
    for name in ("allow-api", "allow-model-server"):
        froms = [peer for rule in find(objects[stack], "NetworkPolicy", name)["spec"]["ingress"] for peer in rule["from"]]
        assert {"podSelector": {"matchLabels": reconciler_labels()}} in froms, name


def reconciler_labels():
    return {"app.kubernetes.io/component": "rollout-reconciler", "app.kubernetes.io/name": "reconciler",
            "app.kubernetes.io/part-of": "tfship"}


VENV_PYTHON = __import__("pathlib").Path(__file__).resolve().parents[3] / ".venv" / "bin" / "python"


def test_the_deployment_passes_only_options_the_reconciler_accepts(objects):
    """The reconciler's own CLI (in the API's virtualenv) knows every flag the Deployment gives it."""
    import subprocess
    if not VENV_PYTHON.exists():
        pytest.skip("the API's virtualenv (.venv) is missing")
    args = find(objects["prod"], "Deployment", "reconciler")["spec"]["template"]["spec"]["containers"][0]["args"]
    done = subprocess.run([str(VENV_PYTHON), "-m", "service.delivery.reconciler", "--help"],
                          capture_output=True, text=True, timeout=60, cwd=VENV_PYTHON.parents[2])
    assert done.returncode == 0, done.stderr
    flags = [a for a in args[1:] if a.startswith("--")]
    assert [f for f in flags if f not in done.stdout] == []
