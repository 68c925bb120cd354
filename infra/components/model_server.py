"""TensorFlow Serving: Deployment, its config, Service, HPA on request concurrency and a PDB."""
from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra import kube, tfserving_config
from infra.components.secrets import Secrets

REST_PORT = 8501
GRPC_PORT = 8500
METRICS_PATH = "/monitoring/prometheus/metrics"
CONFIG_DIR = "/etc/tfserving"
MODELS_DIR = "/models"
SYNCED_MARKER = "/tmp/models-synced"
# The custom metric Prometheus Adapter serves from TF Serving's latency histogram: by Little's
# law, rate(latency_sum) in seconds per second is the mean number of requests in flight.
CONCURRENCY_METRIC = "tfserving_request_concurrency"
# Pods with this label may open the gRPC port; nothing in tfship does (the gateway uses REST).
GRPC_CLIENT_LABEL = "tfship.io/model-server-grpc-client"


@dataclass
class ModelServerArgs:
    """How one model is served.

    namespace: the environment's namespace.
    model_name: TF Serving model name.
    image, sync_image: TF Serving and the object-store copy image, both pinned by digest.
    model_source: "volume" (an init container and a sidecar copy model_store_uri into an
        emptyDir) or "uri" (TF Serving reads model_store_uri itself).
    model_store_uri, object_store_endpoint: where the SavedModel versions live.
    object_store_secret: Secret holding an AWS-style `credentials` file.
    min_replicas, max_replicas, target_concurrency: HPA bounds and target in-flight requests per pod.
    cpu_request, memory_request, memory_limit: container resources.
    batching, batch_max_size, batch_timeout_micros, batch_threads: server-side batching.
    """

    namespace: pulumi.Input[str]
    model_name: str
    image: str
    sync_image: str
    model_source: str
    model_store_uri: str
    object_store_endpoint: str
    object_store_secret: str
    min_replicas: int
    max_replicas: int
    target_concurrency: str
    cpu_request: str
    memory_request: str
    memory_limit: str
    batching: bool
    batch_max_size: int
    batch_timeout_micros: int
    batch_threads: int


def rclone_remote(uri: str, endpoint: str) -> str:
    """Return an rclone on-the-fly remote for an s3:// or gs:// URI, credentials from env_auth."""
    scheme, path = uri.split("://", 1)
    if scheme == "gs":
        return f":gcs,env_auth=true:{path}"
    options = ",provider=Other,endpoint=" + endpoint if endpoint else ",provider=AWS"
    return f":s3,env_auth=true{options}:{path}"


class ModelServer(pulumi.ComponentResource):
    """TF Serving for one model, autoscaled on request concurrency."""

    def __init__(self, name: str, args: ModelServerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("tfship:model_server:ModelServer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.selector = kube.labels(name, "model-server")
        self.service_name = name
        self.replicas_service_name = f"{name}-replicas"
        self.model_config_name = f"{name}-model-config"
        base_path = f"{MODELS_DIR}/{args.model_name}" if args.model_source == "volume" else args.model_store_uri

        model_config = k8s.core.v1.ConfigMap(
            f"{name}-model-config",
            metadata=kube.metadata(self.model_config_name, args.namespace, self.selector),
            data={"models.config": tfserving_config.initial_model_config(args.model_name, base_path)},
            # The live model config belongs to the rollout reconciler: never overwrite it.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["data"]))
        serving_data = {"monitoring.config": tfserving_config.monitoring_config(METRICS_PATH),
                        "batching.config": tfserving_config.batching_parameters(
                            args.batch_max_size, args.batch_timeout_micros, args.batch_threads)}
        k8s.core.v1.ConfigMap(
            f"{name}-serving-config",
            metadata=kube.metadata(f"{name}-serving-config", args.namespace, self.selector),
            data=serving_data, opts=child)

        flags = [f"--port={GRPC_PORT}", f"--rest_api_port={REST_PORT}",
                 f"--model_config_file={CONFIG_DIR}/models/models.config",
                 "--model_config_file_poll_wait_seconds=10",
                 "--file_system_poll_wait_seconds=30",
                 f"--monitoring_config_file={CONFIG_DIR}/serving/monitoring.config",
                 "--enable_model_warmup=true",
                 # TensorFlow's pools sized to the CPU the pod requests, not the node's cores.
                 f"--tensorflow_session_parallelism={tfserving_config.session_parallelism(args.cpu_request)}"]
        if args.batching:
            flags += ["--enable_batching=true", f"--batching_parameters_file={CONFIG_DIR}/serving/batching.config"]
        credentials_env = [{"name": "AWS_SHARED_CREDENTIALS_FILE",
                            "value": f"{kube.SECRETS_DIR}/object-store/{Secrets.CREDENTIALS_FILE}"}]
        if args.object_store_endpoint:
            credentials_env.append({"name": "S3_ENDPOINT", "value": args.object_store_endpoint})
        mounts = [{"name": "model-config", "mountPath": f"{CONFIG_DIR}/models", "readOnly": True},
                  {"name": "serving-config", "mountPath": f"{CONFIG_DIR}/serving", "readOnly": True},
                  {"name": "object-store", "mountPath": f"{kube.SECRETS_DIR}/object-store", "readOnly": True},
                  {"name": "tmp", "mountPath": "/tmp"}]
        volumes = [{"name": "model-config", "configMap": {"name": f"{name}-model-config"}},
                   {"name": "serving-config", "configMap": {"name": f"{name}-serving-config"}},
                   {"name": "object-store", "secret": {"secretName": args.object_store_secret}},
                   kube.tmp_volume()]
        status_path = f"/v1/models/{args.model_name}"
        server = {
            "name": "tfserving",
            "image": args.image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["tensorflow_model_server"],
            "args": flags,
            "env": credentials_env,
            "ports": [{"name": "rest", "containerPort": REST_PORT},
                      {"name": "grpc", "containerPort": GRPC_PORT}],
            # Load plus warmup may take minutes; readiness and liveness wait for it.
            "startupProbe": kube.http_probe(status_path, "rest", period=5, failures=60),
            "readinessProbe": kube.http_probe(status_path, "rest", period=5, failures=2),
            "livenessProbe": kube.http_probe(status_path, "rest", period=10, failures=3, timeout=5),
            "resources": kube.resources(args.cpu_request, args.memory_request, args.memory_limit),
            "securityContext": kube.container_security(),
            "volumeMounts": mounts,
        }
        init_containers, sidecars = [], []
        if args.model_source == "volume":
            mounts.append({"name": "models", "mountPath": MODELS_DIR, "readOnly": True})
            volumes.append({"name": "models", "emptyDir": {}})
            target = f"{MODELS_DIR}/{args.model_name}"
            sync = (f"rclone sync --checksum '{rclone_remote(args.model_store_uri, args.object_store_endpoint)}' "
                    f"'{target}' && touch {SYNCED_MARKER}")
            sync_mounts = [{"name": "models", "mountPath": MODELS_DIR},
                           {"name": "object-store", "mountPath": f"{kube.SECRETS_DIR}/object-store", "readOnly": True},
                           {"name": "tmp", "mountPath": "/tmp"}]
            sync_container = {
                "image": args.sync_image, "imagePullPolicy": "IfNotPresent",
                "env": credentials_env + [{"name": "RCLONE_CONFIG", "value": "/tmp/rclone.conf"},
                                         {"name": "RCLONE_CACHE_DIR", "value": "/tmp/rclone-cache"}],
                "resources": kube.resources("50m", "64Mi", "256Mi"),
                "securityContext": kube.container_security(), "volumeMounts": sync_mounts}
            init_containers.append({"name": "fetch-models", "command": ["/bin/sh", "-c", sync], **sync_container})
            # New versions (canaries) arrive while the pod runs: keep the volume in step. A sync
            # that keeps failing for 10 minutes restarts the sidecar (TF Serving keeps serving).
            sidecars.append({
                "name": "sync-models",
                "command": ["/bin/sh", "-c", f'while true; do sleep 60; {sync} || echo "model sync failed"; done'],
                "readinessProbe": {"exec": {"command": ["test", "-d", target]}, "periodSeconds": 30},
                "livenessProbe": {"exec": {"command": ["/bin/sh", "-c", f"test -n \"$(find {SYNCED_MARKER} -mmin -10)\""]},
                                  "periodSeconds": 60, "failureThreshold": 2},
                **sync_container})

        pod = {
            "metadata": {"labels": self.selector,
                         "annotations": {"tfship.io/serving-config": kube.checksum(serving_data)}},
            "spec": {
                "securityContext": kube.pod_security(),
                "automountServiceAccountToken": False,
                "terminationGracePeriodSeconds": 30,
                "topologySpreadConstraints": kube.spread(self.selector),
                "initContainers": init_containers,
                "containers": [server, *sidecars],
                "volumes": volumes,
            },
        }
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=kube.metadata(name, args.namespace, self.selector),
            spec={"replicas": args.min_replicas, "selector": {"matchLabels": self.selector},
                  "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                  "template": pod},
            # The HPA owns the replica count after the first deploy.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[model_config], ignore_changes=["spec.replicas"]))
        k8s.core.v1.Service(
            f"{name}-service",
            metadata=kube.metadata(self.service_name, args.namespace, self.selector),
            spec={"type": "ClusterIP", "selector": self.selector,
                  "ports": [{"name": "rest", "port": REST_PORT, "targetPort": "rest"},
                            {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc"}]},
            opts=child)
        # Headless: its DNS name resolves to every ready replica's address, which is how the
        # rollout reconciler finds each replica to ask what it has loaded.
        k8s.core.v1.Service(
            f"{name}-replicas-service",
            metadata=kube.metadata(self.replicas_service_name, args.namespace, self.selector),
            spec={"clusterIP": "None", "selector": self.selector,
                  "ports": [{"name": "rest", "port": REST_PORT, "targetPort": "rest"}]},
            opts=child)
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-hpa",
            metadata=kube.metadata(name, args.namespace, self.selector),
            spec={"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                  "minReplicas": args.min_replicas, "maxReplicas": args.max_replicas,
                  "metrics": [
                      {"type": "Pods", "pods": {"metric": {"name": CONCURRENCY_METRIC},
                                                "target": {"type": "AverageValue",
                                                           "averageValue": args.target_concurrency}}},
                      {"type": "Resource", "resource": {"name": "cpu", "target": {
                          "type": "Utilization", "averageUtilization": 80}}}],
                  "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[deployment]))
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=kube.metadata(name, args.namespace, self.selector),
            spec={"maxUnavailable": 1, "selector": {"matchLabels": self.selector}}, opts=child)
        self.rest_url = pulumi.Output.concat("http://", name, ".", args.namespace, ".svc.cluster.local:", str(REST_PORT))
        self.replicas_url = pulumi.Output.concat("http://", self.replicas_service_name, ".", args.namespace,
                                                 ".svc.cluster.local:", str(REST_PORT))
        self.register_outputs({"rest_url": self.rest_url, "replicas_url": self.replicas_url,
                               "service_name": self.service_name, "model_config_name": self.model_config_name})
