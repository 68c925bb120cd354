"""Who may talk to whom in an environment: the flows its NetworkPolicies allow, in one list."""
from __future__ import annotations

from dataclasses import dataclass

from infra.components import api, log_pipeline, load_test, model_server, rate_limit_store, registry_database
from infra.components.network import Flow, Peer, namespace, workload

# Object storage is outside the cluster: any public address on 443, no private ranges.
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
OBJECT_STORE = Peer("object-store", cidr="0.0.0.0/0", except_cidrs=PRIVATE_RANGES)
# The Kubernetes API server's address differs per cluster; CloudNativePG instances and the
# rollout reconciler (it updates the model config ConfigMap) need it.
KUBE_API = Peer("kube-api", cidr="0.0.0.0/0")
ACME_SOLVER = {"acme.cert-manager.io/http01-solver": "true"}


@dataclass
class PlatformNamespaces:
    """Namespaces of the platform's operators (platform stack outputs)."""

    ingress: str
    monitoring: str
    cnpg: str
    eck: str
    cert_manager: str


@dataclass
class Workloads:
    """The environment's workloads, by their pod selector labels (None when switched off)."""

    api: dict
    migrations: dict
    model_server: dict
    rate_limit_store: dict
    reconciler: dict
    database: dict | None
    elasticsearch: dict | None
    kibana: dict | None
    logging_setup: dict | None
    agents_namespace: str | None
    locust_master: dict | None
    locust_worker: dict | None


def environment_flows(w: Workloads, p: PlatformNamespaces) -> list[Flow]:
    """Return every flow the environment needs; the NetworkPolicies allow these and nothing else."""
    api_pods, migrations = workload("api", w.api), workload("migrations", w.migrations)
    tfserving = workload("model-server", w.model_server)
    redis = workload("rate-limit-store", w.rate_limit_store)
    ingress = namespace("ingress", p.ingress)
    prometheus = namespace("prometheus", p.monitoring)
    flows = [
        Flow(ingress, api_pods, api.PORT),
        Flow(prometheus, api_pods, api.PORT),
        Flow(api_pods, tfserving, model_server.REST_PORT),
        # gRPC: nothing in tfship needs it; only pods of this namespace carrying the label may.
        Flow(workload("grpc-clients", {model_server.GRPC_CLIENT_LABEL: "true"}), tfserving, model_server.GRPC_PORT),
        Flow(prometheus, tfserving, model_server.REST_PORT),
        Flow(tfserving, OBJECT_STORE, 443),
        Flow(api_pods, redis, rate_limit_store.PORT),
        Flow(ingress, workload("acme-solver", ACME_SOLVER), 8089),
    ]
    reconciler = workload("reconciler", w.reconciler)
    flows += [Flow(reconciler, api_pods, api.PORT),  # the registry's rollout state
              Flow(reconciler, tfserving, model_server.REST_PORT),  # what each replica has loaded
              Flow(reconciler, KUBE_API, 443),  # the model config ConfigMap
              Flow(reconciler, KUBE_API, 6443)]
    if w.database:
        database = workload("database", w.database)
        operator = namespace("cnpg-operator", p.cnpg)
        flows += [Flow(api_pods, database, registry_database.PORT),
                  Flow(migrations, database, registry_database.PORT),
                  Flow(database, database, registry_database.PORT),
                  Flow(operator, database, registry_database.PORT),
                  Flow(operator, database, registry_database.STATUS_PORT),
                  Flow(prometheus, database, registry_database.METRICS_PORT),
                  Flow(database, OBJECT_STORE, 443),
                  Flow(database, KUBE_API, 443),
                  Flow(database, KUBE_API, 6443)]
    if w.elasticsearch:
        es, kibana = workload("elasticsearch", w.elasticsearch), workload("kibana", w.kibana)
        setup, operator = workload("logging-setup", w.logging_setup), namespace("eck-operator", p.eck)
        flows += [Flow(namespace("filebeat", w.agents_namespace), es, log_pipeline.ES_HTTP_PORT),
                  Flow(kibana, es, log_pipeline.ES_HTTP_PORT),
                  Flow(setup, es, log_pipeline.ES_HTTP_PORT),
                  Flow(operator, es, log_pipeline.ES_HTTP_PORT),
                  Flow(es, es, log_pipeline.ES_TRANSPORT_PORT),
                  Flow(ingress, kibana, log_pipeline.KIBANA_PORT),
                  Flow(setup, kibana, log_pipeline.KIBANA_PORT),
                  Flow(operator, kibana, log_pipeline.KIBANA_PORT)]
    if w.locust_master:
        master, worker = workload("locust-master", w.locust_master), workload("locust-worker", w.locust_worker)
        flows += [Flow(worker, master, load_test.MASTER_PORT),
                  Flow(ingress, master, load_test.WEB_PORT),
                  Flow(worker, api_pods, api.PORT),
                  # The master holds the target host it hands to workers (LOCUST_HOST).
                  Flow(master, api_pods, api.PORT)]
    return flows
