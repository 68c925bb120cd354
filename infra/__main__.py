"""An environment stack (dev, staging, prod): wires the components together and exports the URLs."""
import pulumi

from infra import config, kube, monitoring_files, platform_contract, topology
from infra.components.api import Api, ApiArgs
from infra.components.load_test import LoadTest, LoadTestArgs
from infra.components.log_pipeline import LogPipeline, LogPipelineArgs
from infra.components.model_server import ModelServer, ModelServerArgs
from infra.components.monitoring import Monitoring, MonitoringArgs, ScrapeTarget
from infra.components.namespaces import Namespaces, NamespacesArgs
from infra.components.network import Network, NetworkArgs
from infra.components.rate_limit_store import RateLimitStore, RateLimitStoreArgs
from infra.components.reconciler import Reconciler, ReconcilerArgs
from infra.components.registry_database import RegistryDatabase, RegistryDatabaseArgs
from infra.components.secrets import Secrets, SecretsArgs

cfg = config.load_environment()
platform = pulumi.StackReference(cfg.platform_stack)
ingress_class = platform.require_output("ingressClassName")
agents_namespace = f"{cfg.namespace}-agents" if cfg.elk_enabled else None

namespaces = Namespaces("tfship", NamespacesArgs(name=cfg.namespace, agents=agents_namespace))
ns = namespaces.name
after_namespaces = pulumi.ResourceOptions(depends_on=[namespaces])
secrets = Secrets("tfship", SecretsArgs(
    namespace=ns, api_key_secret=cfg.api_key_secret, access_key_id=cfg.object_store_access_key_id,
    secret_access_key=cfg.object_store_secret_access_key, reconciler_api_key=cfg.reconciler_api_key),
    opts=after_namespaces)

model_server = ModelServer("model-server", ModelServerArgs(
    namespace=ns, model_name=cfg.model_name, image=cfg.model_server_image, sync_image=cfg.model_sync_image,
    model_source=cfg.model_source, model_store_uri=cfg.model_store_uri,
    object_store_endpoint=cfg.object_store_endpoint, object_store_secret=secrets.object_store_name,
    min_replicas=cfg.model_server_min_replicas, max_replicas=cfg.model_server_max_replicas,
    target_concurrency=cfg.model_server_target_concurrency, cpu_request=cfg.model_server_cpu_request,
    memory_request=cfg.model_server_memory_request, memory_limit=cfg.model_server_memory_limit,
    batching=cfg.model_server_batching, batch_max_size=cfg.batch_max_size,
    batch_timeout_micros=cfg.batch_timeout_micros, batch_threads=cfg.batch_threads), opts=after_namespaces)

database = None
if cfg.database_kind == "cnpg":
    database = RegistryDatabase("registry-db", RegistryDatabaseArgs(
        namespace=ns, image=cfg.postgres_image, instances=cfg.database_instances,
        storage_size=cfg.database_storage_size, password=cfg.database_password,
        backup_destination=cfg.backup_destination, backup_schedule=cfg.backup_schedule,
        backup_retention=cfg.backup_retention, object_store_endpoint=cfg.object_store_endpoint,
        object_store_secret=secrets.object_store_name, restore_from=cfg.database_restore_from),
        opts=after_namespaces)

rate_limits = RateLimitStore("rate-limits", RateLimitStoreArgs(
    namespace=ns, image=cfg.redis_image, memory=cfg.redis_memory_limit), opts=after_namespaces)

api = Api("api", ApiArgs(
    namespace=ns, images=cfg.api_images, live_colour=cfg.api_live_colour, release_phase=cfg.api_release_phase,
    expand_revision=cfg.api_expand_revision, min_replicas=cfg.api_min_replicas, max_replicas=cfg.api_max_replicas,
    target_cpu_utilization=cfg.api_target_cpu_utilization, cpu_request=cfg.api_cpu_request,
    memory_request=cfg.api_memory_request, memory_limit=cfg.api_memory_limit, host=cfg.api_host,
    tls_issuer=cfg.tls_issuer, ingress_class=ingress_class, model_server_url=model_server.rest_url,
    api_key_secret=secrets.api_key_name, database_url_secret=database.url_secret_name if database else None,
    sqlite_storage_size=cfg.database_storage_size, rate_limit_url=rate_limits.url),
    opts=pulumi.ResourceOptions(depends_on=[namespaces, *([database] if database else [])]))

reconciler = Reconciler("reconciler", ReconcilerArgs(
    namespace=ns, image=cfg.api_images[cfg.api_live_colour], registry_url=api.in_cluster_url,
    key_secret=secrets.reconciler_key_name, model_config_map=model_server.model_config_name,
    replicas_url=model_server.replicas_url, unload_grace_s=cfg.reconciler_unload_grace_seconds),
    opts=after_namespaces)

logs = None
if cfg.elk_enabled:
    logs = LogPipeline("logs", LogPipelineArgs(
        namespace=ns, agents_namespace=namespaces.agents, version=cfg.elastic_stack_version,
        es_nodes=cfg.elasticsearch_nodes, es_storage_size=cfg.elasticsearch_storage_size,
        es_memory=cfg.elasticsearch_memory, kibana_memory=cfg.kibana_memory, kibana_host=cfg.kibana_host,
        tls_issuer=cfg.tls_issuer, ingress_class=ingress_class, log_retention=cfg.log_retention,
        curl_image=cfg.curl_image, elk_files=monitoring_files.elk_files()), opts=after_namespaces)

locust = None
if cfg.load_test_enabled:
    locust = LoadTest("locust", LoadTestArgs(
        namespace=ns, image=cfg.loadtest_image, workers=cfg.locust_workers,
        target_url=pulumi.Output.concat("http://", api.service_name, ".", ns, ".svc")), opts=after_namespaces)

targets = [ScrapeTarget("api", api.selector, "http", "/metrics"),
           ScrapeTarget("model-server", model_server.selector, "rest", "/monitoring/prometheus/metrics")]
if database:
    targets.append(ScrapeTarget("registry-db", database.pod_selector, "metrics", "/metrics", pods=True))
Monitoring("monitoring", MonitoringArgs(
    namespace=ns, slo_profile=cfg.slo_profile, selector_labels=platform.require_output("monitoringSelectorLabels"),
    dashboard_labels=platform.require_output("dashboardLabels"), targets=targets), opts=after_namespaces)

Network("network", NetworkArgs(namespace=ns, flows=topology.environment_flows(
    topology.Workloads(
        api=api.selector, migrations=kube.labels("api", "migrations"), model_server=model_server.selector,
        rate_limit_store=rate_limits.selector, reconciler=reconciler.selector, database=database.pod_selector if database else None,
        elasticsearch=logs.es_selector if logs else None, kibana=logs.kibana_selector if logs else None,
        logging_setup=logs.setup_selector if logs else None, agents_namespace=agents_namespace,
        locust_master=locust.master_selector if locust else None,
        locust_worker=locust.worker_selector if locust else None),
    topology.PlatformNamespaces(**platform_contract.NAMESPACES))),
    opts=after_namespaces)

pulumi.export("apiUrl", api.url)
# The registry is the API: `tfship rollout ...` talks to it (TFSHIP_REGISTRY_URL=registryUrl).
pulumi.export("registryUrl", api.url)
pulumi.export("registryInClusterUrl", api.in_cluster_url)
pulumi.export("apiRelease", {"namespace": ns, "liveColour": cfg.api_live_colour, "phase": cfg.api_release_phase,
                             "services": api.colour_services, "selectors": api.colour_selectors, "liveService": api.service_name,
                             "singleWriter": database is None})
pulumi.export("grafanaUrl", platform.require_output("grafanaUrl"))
pulumi.export("kibanaUrl", logs.kibana_url if logs else None)
pulumi.export("modelServerUrl", model_server.rest_url)
pulumi.export("sloProfile", cfg.slo_profile)
pulumi.export("images", cfg.images)
