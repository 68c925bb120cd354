"""NetworkPolicies from flows: one policy per local workload, grouped by port. Budget: under 1 s."""
import pytest

pytest.importorskip("pulumi", reason="Pulumi programs are tested in .venv-infra")

from infra.components.network import Flow, Peer, namespace, policies, workload  # noqa: E402


def test_flows_become_ingress_and_egress_of_each_end():
    api, db = workload("api", {"app": "api"}), workload("db", {"app": "db"})
    ingress = namespace("ingress", "traefik")
    store = Peer("store", cidr="0.0.0.0/0", except_cidrs=("10.0.0.0/8",))
    specs = policies([Flow(ingress, api, 8080), Flow(api, db, 5432), Flow(db, store, 443)])
    assert specs["api"] == {
        "podSelector": {"matchLabels": {"app": "api"}}, "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "traefik"}}}],
                     "ports": [{"port": 8080, "protocol": "TCP"}]}],
        "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}], "ports": [{"port": 5432, "protocol": "TCP"}]}]}
    assert specs["db"]["egress"] == [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}],
                                      "ports": [{"port": 443, "protocol": "TCP"}]}]
    assert set(specs) == {"api", "db"}, "no policy for peers outside the namespace"


def test_peers_on_one_port_share_a_rule():
    api, a, b = workload("api", {"app": "api"}), workload("a", {"app": "a"}), workload("b", {"app": "b"})
    rules = policies([Flow(a, api, 80), Flow(b, api, 80), Flow(a, api, 80)])["api"]["ingress"]
    assert rules == [{"from": [{"podSelector": {"matchLabels": {"app": "a"}}},
                               {"podSelector": {"matchLabels": {"app": "b"}}}],
                      "ports": [{"port": 80, "protocol": "TCP"}]}]
