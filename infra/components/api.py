"""The API gateway in two colours (blue/green): migration Jobs, Deployments, Services, TLS Ingress, HPA, PDBs.

Blue/green: each colour has its own Deployment and Service (`api-blue`, `api-green`); the `api`
Service (behind the Ingress) selects the live colour only. The release phase says what runs:

- steady: the live colour only; the other is scaled to 0. The migrate Job of the live image
  (`db upgrade head`, which includes any contract migrations) runs after the other colour is
  at 0 replicas.
- release: the idle colour runs the new image, after the expand Job migrated the database to
  the expand revision (additive changes only, so the live colour keeps working). Not live yet.
- switched: the new colour is live; the old one still runs at full size, so switching back is
  a selector change.

`python -m infra.deploy release-api` walks the phases and checks each step (infra/README.md).
Migration Jobs are named after their image (and target), so an unchanged Job never runs twice,
and each stays declared for as long as a switch back may still need it unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra import kube
from infra.components.secrets import Secrets

PORT = 8080
SERVICE_PORT = 80
DATA_DIR = "/var/lib/tfship"
ENV_PREFIX = "TFSHIP_API_"
COLOURS = ("blue", "green")
COLOUR_LABEL = "tfship.io/colour"
PHASES = ("steady", "release", "switched")
PATCH_FORCE = "pulumi.com/patchForce"


def other(colour: str) -> str:
    """The colour that is not colour."""
    return COLOURS[1 - COLOURS.index(colour)]


@dataclass(frozen=True)
class ColourPlan:
    """What runs in one release phase.

    live: the colour the api Service selects; running: colours with pods; new: the colour being
    released (None when steady); established: the colour whose migrate Job is declared.
    """

    live: str
    running: tuple[str, ...]
    new: str | None
    established: str


def plan(live: str, phase: str) -> ColourPlan:
    """Return which colour runs, serves, is new and is established in phase."""
    if live not in COLOURS or phase not in PHASES:
        raise ValueError(f"unknown colour {live!r} or phase {phase!r}")
    if phase == "steady":
        return ColourPlan(live, (live,), None, live)
    new = other(live) if phase == "release" else live
    return ColourPlan(live, COLOURS, new, other(new))


@dataclass
class ApiArgs:
    """How the API runs.

    namespace: the environment's namespace.
    images: the image of each colour (built from service/Dockerfile, pinned by digest).
    live_colour, release_phase: which colour serves, and the phase of a release (see above).
    expand_revision: the Alembic revision the expand Job migrates to ("head" by default).
    min_replicas, max_replicas, target_cpu_utilization: HPA bounds and target (live colour).
    cpu_request, memory_request, memory_limit: container resources.
    host, tls_issuer, ingress_class: the public Ingress, its cert-manager ClusterIssuer and class.
    model_server_url: TF Serving's in-cluster REST URL.
    api_key_secret: Secret with the `key-secret` file keying the API-key HMAC.
    database_url_secret: Secret with a `url` file (PostgreSQL), or None for SQLite on a volume.
    sqlite_storage_size: size of the SQLite volume when database_url_secret is None.
    rate_limit_url: the shared rate-limit store (Redis) URL.
    """

    namespace: pulumi.Input[str]
    images: dict[str, str]
    live_colour: str
    release_phase: str
    expand_revision: str
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
    """The Flask gateway under gunicorn in two colours, migrated expand/contract, behind a TLS Ingress."""

    def __init__(self, name: str, args: ApiArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("tfship:api:Api", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        colours = plan(args.live_colour, args.release_phase)
        self.selector = kube.labels(name, "api")
        self.service_name = name
        self.live_colour = colours.live
        self.colour_selectors = {c: {**self.selector, COLOUR_LABEL: c} for c in COLOURS}
        self.colour_services = {c: f"{name}-{c}" for c in COLOURS}  # each colour's Deployment and Service
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
        # Migrations need the database only: no model server, no rate-limit store, no key secret.
        migrate_env = [e for e in env if e["name"] in (ENV_PREFIX + "DATA_DIR", ENV_PREFIX + "DATABASE_URL_FILE")]
        migrate_mounts = [m for m in mounts if m["name"] != "api-secret"]

        def migrate_container(image: str, revision: str) -> dict:
            return {"name": "migrate", "image": image, "imagePullPolicy": "IfNotPresent",
                    "securityContext": kube.container_security(), "args": ["db", "upgrade", revision],
                    "env": migrate_env, "volumeMounts": migrate_mounts,
                    "resources": kube.resources("100m", "128Mi", "256Mi")}

        def migrate_job(logical: str, image: str, revision: str, depends_on: list) -> k8s.batch.v1.Job:
            # Pulumi waits for a Job to complete. Its name carries image and target, so each
            # runs once; re-declaring an unchanged Job does not run it again.
            job_name = f"{logical}-{kube.checksum({'image': image, 'revision': revision})[:8]}"
            return k8s.batch.v1.Job(
                logical, metadata=kube.metadata(job_name, args.namespace, kube.labels(name, "migrations")),
                spec={"backoffLimit": 2, "activeDeadlineSeconds": 600,
                      "template": {"metadata": {"labels": kube.labels(name, "migrations")},
                                   "spec": {"restartPolicy": "Never", "securityContext": kube.pod_security(),
                                            "automountServiceAccountToken": False,
                                            "containers": [migrate_container(image, revision)],
                                            "volumes": [v for v in volumes if v["name"] != "api-secret"]}}},
                opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True, depends_on=depends_on))

        deployments: dict[str, k8s.apps.v1.Deployment] = {}

        def deployment(colour: str, depends_on: list) -> k8s.apps.v1.Deployment:
            selector = self.colour_selectors[colour]
            live = colour == colours.live
            init_containers = [] if args.database_url_secret else [
                # SQLite: the single pod owns the ReadWriteOnce volume, so it migrates first itself.
                migrate_container(args.images[colour], "head")]
            container = {
                "name": "api", "image": args.images[colour], "imagePullPolicy": "IfNotPresent",
                "securityContext": kube.container_security(),
                "args": ["api", "--host", "0.0.0.0", "--port", str(PORT)], "env": env, "volumeMounts": mounts,
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
            replicas = args.min_replicas if colour in colours.running else 0
            created = k8s.apps.v1.Deployment(
                f"{name}-{colour}",
                # The HPA (scale subresource) and `kubectl scale` own spec.replicas between
                # deploys; when a colour stops being live Pulumi takes the field back, which
                # server-side apply refuses as a conflict unless forced.
                metadata=kube.metadata(f"{name}-{colour}", args.namespace, selector,
                                       annotations={PATCH_FORCE: "true"}),
                spec={"replicas": replicas, "selector": {"matchLabels": selector},
                      "strategy": {"type": "Recreate"} if single_writer else
                      {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                      "template": {"metadata": {"labels": selector},
                                   "spec": {"securityContext": kube.pod_security(),
                                            "automountServiceAccountToken": False,
                                            "terminationGracePeriodSeconds": 40,
                                            "topologySpreadConstraints": kube.spread(selector),
                                            "initContainers": init_containers,
                                            "containers": [container], "volumes": volumes}}},
                # The live colour's size belongs to its HPA; the idle colour's to the phase.
                opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on,
                                            ignore_changes=["spec.replicas"] if live else []))
            deployments[colour] = created
            return created

        if args.database_url_secret and colours.new is None:
            # steady: the other colour is scaled to 0 first; then the live image's migrate Job
            # runs every migration left (the contract ones included), then the live colour rolls.
            idle = deployment(other(colours.live), [])
            job = migrate_job(f"{name}-migrate", args.images[colours.live], "head", [idle])
            deployment(colours.live, [job])
        elif args.database_url_secret:
            # release / switched: the established colour keeps its (completed) migrate Job; the
            # new colour starts only after the expand Job, whose changes the old colour ignores.
            job = migrate_job(f"{name}-migrate", args.images[colours.established], "head", [])
            deployment(colours.established, [job])
            expand = migrate_job(f"{name}-expand", args.images[colours.new], args.expand_revision, [job])
            deployment(colours.new, [expand])
        else:
            for colour in COLOURS:
                deployment(colour, [])

        for colour in COLOURS:
            selector = self.colour_selectors[colour]
            k8s.core.v1.Service(
                f"{name}-{colour}-service",
                metadata=kube.metadata(self.colour_services[colour], args.namespace,
                                       {**kube.labels(f"{name}-{colour}", "api"), COLOUR_LABEL: colour}),
                spec={"type": "ClusterIP", "selector": selector,
                      "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http"}]},
                opts=child)
            if colour in colours.running:
                k8s.policy.v1.PodDisruptionBudget(
                    f"{name}-{colour}-pdb", metadata=kube.metadata(f"{name}-{colour}", args.namespace, selector),
                    spec={"maxUnavailable": 1, "selector": {"matchLabels": selector}}, opts=child)
        live_selector = self.colour_selectors[colours.live]
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-hpa", metadata=kube.metadata(name, args.namespace, self.selector),
            spec={"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"{name}-{colours.live}"},
                  "minReplicas": args.min_replicas, "maxReplicas": args.max_replicas,
                  "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                      "type": "Utilization", "averageUtilization": args.target_cpu_utilization}}}]},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[deployments[colours.live]]))
        # The switch: the api Service (and so the Ingress) selects the live colour's pods.
        k8s.core.v1.Service(
            f"{name}-service", metadata=kube.metadata(self.service_name, args.namespace, self.selector),
            spec={"type": "ClusterIP", "selector": live_selector,
                  "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http"}]},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[deployments[colours.live]]))
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
        self.url = f"https://{args.host}"
        self.in_cluster_url = pulumi.Output.concat("http://", name, ".", args.namespace, ".svc.cluster.local")
        self.register_outputs({"url": self.url, "in_cluster_url": self.in_cluster_url,
                               "service_name": self.service_name, "live_colour": self.live_colour,
                               "colour_services": self.colour_services})
