"""The API gateway: migrations Job, Deployment, Service, TLS Ingress, HPA and PDB."""
from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra import kube
from infra.components.secrets import Secrets

PORT = 8080
DATA_DIR = "/var/lib/tfship"
ENV_PREFIX = "TFSHIP_API_"


@dataclass
class ApiArgs:
    """How the API runs.

    namespace: the environment's namespace.
    image: the image built from service/Dockerfile, pinned by digest.
    min_replicas, max_replicas, target_cpu_utilization: HPA bounds and target.
    cpu_request, memory_request, memory_limit: container resources.
    host, tls_issuer, ingress_class: the public Ingress, its cert-manager ClusterIssuer and class.
    model_server_url: TF Serving's in-cluster REST URL.
    api_key_secret: Secret with the `key-secret` file keying the API-key HMAC.
    database_url_secret: Secret with a `url` file (PostgreSQL), or None for SQLite on a volume.
    sqlite_storage_size: size of the SQLite volume when database_url_secret is None.
    rate_limit_url: the shared rate-limit store (Redis) URL.
    """

    namespace: pulumi.Input[str]
    image: str
    min_replicas: int
    max_replicas: int
    target_cpu_utilization: int
    cpu_request: str
    memory_request: str
    memory_limit: str
    host: str
    tls_issuer: str
    ingress_class: pulumi.Input[str]
    model_server_url: pulumi.Input[str]
    api_key_secret: str
    database_url_secret: str | None
    sqlite_storage_size: str
    rate_limit_url: pulumi.Input[str]


class Api(pulumi.ComponentResource):
    """The Flask gateway under gunicorn, migrated before each rollout, behind a TLS Ingress."""

    def __init__(self, name: str, args: ApiArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("tfship:api:Api", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.selector = kube.labels(name, "api")
        self.service_name = name
        env = [{"name": ENV_PREFIX + "DATA_DIR", "value": DATA_DIR},
               {"name": ENV_PREFIX + "KEY_SECRET_FILE", "value": f"{kube.SECRETS_DIR}/api/{Secrets.API_KEY_FILE}"},
               {"name": ENV_PREFIX + "KEY_SECRET_CREATE", "value": "false"},
               {"name": ENV_PREFIX + "MODEL_SERVER_URL", "value": args.model_server_url},
               {"name": ENV_PREFIX + "RATELIMIT_STORAGE_URI", "value": args.rate_limit_url}]
        mounts = [{"name": "api-secret", "mountPath": f"{kube.SECRETS_DIR}/api", "readOnly": True},
                  {"name": "data", "mountPath": DATA_DIR}, {"name": "tmp", "mountPath": "/tmp"}]
        volumes = [{"name": "api-secret", "secret": {"secretName": args.api_key_secret, "defaultMode": 0o440}},
                   kube.tmp_volume()]
        if args.database_url_secret:
            env.append({"name": ENV_PREFIX + "DATABASE_URL_FILE", "value": f"{kube.SECRETS_DIR}/database/url"})
            mounts.append({"name": "database", "mountPath": f"{kube.SECRETS_DIR}/database", "readOnly": True})
            volumes.append({"name": "database", "secret": {"secretName": args.database_url_secret,
                                                           "defaultMode": 0o440}})
            volumes.append({"name": "data", "emptyDir": {"sizeLimit": "64Mi"}})
        else:
            k8s.core.v1.PersistentVolumeClaim(
                f"{name}-data", metadata=kube.metadata(f"{name}-data", args.namespace, self.selector),
                spec={"accessModes": ["ReadWriteOnce"],
                      "resources": {"requests": {"storage": args.sqlite_storage_size}}},
                opts=child)
            volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": f"{name}-data"}})
        container_base = {"image": args.image, "imagePullPolicy": "IfNotPresent",
                          "securityContext": kube.container_security()}
        # Migrations need the database only: no model server, no rate-limit store, no key secret.
        migrate_env = [e for e in env if e["name"] in (ENV_PREFIX + "DATA_DIR", ENV_PREFIX + "DATABASE_URL_FILE")]
        migrate_mounts = [m for m in mounts if m["name"] != "api-secret"]
        migrate_container = {"name": "migrate", "args": ["db", "upgrade"], **container_base, "env": migrate_env,
                             "volumeMounts": migrate_mounts, "resources": kube.resources("100m", "128Mi", "256Mi")}
        init_containers, depends_on = [], []
        if args.database_url_secret:
            # Migrations run to completion before the Deployment changes: Pulumi waits for a
            # Job. Its name carries the image, so each new image migrates once; migrations are
            # expand/contract, so the old pods keep working against the migrated schema.
            migrate_name = f"{name}-migrate-{kube.checksum({'image': args.image})[:8]}"
            depends_on.append(k8s.batch.v1.Job(
                f"{name}-migrate",
                metadata=kube.metadata(migrate_name, args.namespace, kube.labels(name, "migrations")),
                spec={"backoffLimit": 2, "activeDeadlineSeconds": 600,
                      "template": {"metadata": {"labels": kube.labels(name, "migrations")},
                                   "spec": {"restartPolicy": "Never", "securityContext": kube.pod_security(),
                                            "automountServiceAccountToken": False,
                                            "containers": [migrate_container],
                                            "volumes": [v for v in volumes if v["name"] != "api-secret"]}}},
                opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True)))
        else:
            # SQLite: the single pod owns the ReadWriteOnce volume, so it migrates first itself.
            init_containers.append(migrate_container)

        container = {
            "name": "api", "args": ["api", "--host", "0.0.0.0", "--port", str(PORT)], **container_base, "env": env, "volumeMounts": mounts,
            "ports": [{"name": "http", "containerPort": PORT}],
            "startupProbe": kube.http_probe("/healthz", "http", period=2, failures=30),
            "readinessProbe": kube.http_probe("/readyz", "http", period=5, failures=2),
            "livenessProbe": kube.http_probe("/healthz", "http", period=10, failures=3),
            # Drain: stay in the endpoints while the Ingress and kube-proxy stop routing here,
            # then gunicorn finishes in-flight requests on SIGTERM.
            "lifecycle": {"preStop": {"exec": {"command": ["sleep", "10"]}}},
            "resources": kube.resources(args.cpu_request, args.memory_request, args.memory_limit),
        }
        single_writer = args.database_url_secret is None
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=kube.metadata(name, args.namespace, self.selector),
            spec={"replicas": args.min_replicas, "selector": {"matchLabels": self.selector},
                  "strategy": {"type": "Recreate"} if single_writer else
                  {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                  "template": {"metadata": {"labels": self.selector},
                               "spec": {"securityContext": kube.pod_security(),
                                        "automountServiceAccountToken": False,
                                        "terminationGracePeriodSeconds": 40,
                                        "topologySpreadConstraints": kube.spread(self.selector),
                                        "initContainers": init_containers,
                                        "containers": [container], "volumes": volumes}}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on, ignore_changes=["spec.replicas"]))
        k8s.core.v1.Service(
            f"{name}-service", metadata=kube.metadata(self.service_name, args.namespace, self.selector),
            spec={"type": "ClusterIP", "selector": self.selector,
                  "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
            opts=child)
        k8s.networking.v1.Ingress(
            f"{name}-ingress",
            metadata=kube.metadata(name, args.namespace, self.selector,
                                   annotations={"cert-manager.io/cluster-issuer": args.tls_issuer}),
            spec={"ingressClassName": args.ingress_class,
                  "tls": [{"hosts": [args.host], "secretName": f"{name}-tls"}],
                  "rules": [{"host": args.host, "http": {"paths": [{
                      "path": "/", "pathType": "Prefix",
                      "backend": {"service": {"name": self.service_name, "port": {"name": "http"}}}}]}}]},
            opts=child)
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-hpa", metadata=kube.metadata(name, args.namespace, self.selector),
            spec={"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                  "minReplicas": args.min_replicas, "maxReplicas": args.max_replicas,
                  "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                      "type": "Utilization", "averageUtilization": args.target_cpu_utilization}}}]},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[deployment]))
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb", metadata=kube.metadata(name, args.namespace, self.selector),
            spec={"maxUnavailable": 1, "selector": {"matchLabels": self.selector}}, opts=child)
        self.url = f"https://{args.host}"
        self.register_outputs({"url": self.url, "service_name": self.service_name})
