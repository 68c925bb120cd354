"""The registry's PostgreSQL: a CloudNativePG cluster with scheduled backups to object storage."""
from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra import kube

PORT = 5432
METRICS_PORT = 9187
STATUS_PORT = 8000
DATABASE = "tfship"
OWNER = "tfship"
CNPG_API = "postgresql.cnpg.io/v1"


@dataclass
class RegistryDatabaseArgs:
    """The registry database.

    namespace: the environment's namespace.
    image: PostgreSQL operand image pinned by digest.
    instances, storage_size: cluster size (one primary, the rest streaming replicas).
    password: the application user's password (a Pulumi secret).
    backup_destination, backup_schedule, backup_retention: Barman object-store backups.
    object_store_endpoint: S3-compatible endpoint ("" for AWS).
    object_store_secret: Secret with ACCESS_KEY_ID and ACCESS_SECRET_KEY.
    restore_from: when set, bootstrap by recovery from this server's backups (the restore
        procedure, see infra/README.md); otherwise initialise an empty database.
    """

    namespace: pulumi.Input[str]
    image: str
    instances: int
    storage_size: str
    password: pulumi.Input[str]
    backup_destination: str
    backup_schedule: str
    backup_retention: str
    object_store_endpoint: str
    object_store_secret: str
    restore_from: str


class RegistryDatabase(pulumi.ComponentResource):
    """A CloudNativePG Cluster, its ScheduledBackup and the API's connection URL as a Secret."""

    def __init__(self, name: str, args: RegistryDatabaseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("tfship:registry_database:RegistryDatabase", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        object_labels = kube.labels(name, "database")
        self.cluster_name = name
        self.pod_selector = {"cnpg.io/cluster": name}
        credentials = k8s.core.v1.Secret(
            f"{name}-app-credentials",
            metadata=kube.metadata(f"{name}-app-credentials", args.namespace, object_labels),
            type="kubernetes.io/basic-auth", string_data={"username": OWNER, "password": args.password},
            opts=child)
        self.url_secret_name = f"{name}-url"
        url = pulumi.Output.secret(pulumi.Output.all(args.password, args.namespace).apply(
            lambda values: f"postgresql+psycopg://{OWNER}:{values[0]}@{name}-rw.{values[1]}.svc:{PORT}/{DATABASE}"))
        k8s.core.v1.Secret(
            f"{name}-url", metadata=kube.metadata(self.url_secret_name, args.namespace, object_labels),
            type="Opaque", string_data={"url": url}, opts=child)

        object_store = {
            "destinationPath": args.backup_destination,
            "s3Credentials": {
                "accessKeyId": {"name": args.object_store_secret, "key": "ACCESS_KEY_ID"},
                "secretAccessKey": {"name": args.object_store_secret, "key": "ACCESS_SECRET_KEY"}},
            "wal": {"compression": "gzip"},
            "data": {"compression": "gzip"},
        }
        if args.object_store_endpoint:
            object_store["endpointURL"] = args.object_store_endpoint
        if args.restore_from:
            bootstrap = {"recovery": {"source": args.restore_from, "database": DATABASE, "owner": OWNER,
                                      "secret": {"name": f"{name}-app-credentials"}}}
            external = [{"name": args.restore_from,
                         "barmanObjectStore": {**object_store, "serverName": args.restore_from}}]
        else:
            bootstrap = {"initdb": {"database": DATABASE, "owner": OWNER,
                                    "secret": {"name": f"{name}-app-credentials"}}}
            external = []
        spec = {
            "instances": args.instances,
            "imageName": args.image,
            "primaryUpdateStrategy": "unsupervised",
            "enableSuperuserAccess": False,
            "storage": {"size": args.storage_size},
            "bootstrap": bootstrap,
            "backup": {"barmanObjectStore": object_store, "retentionPolicy": args.backup_retention},
            "monitoring": {"enablePodMonitor": False},
            "resources": kube.resources("250m", "512Mi", "1Gi"),
            "inheritedMetadata": {"labels": object_labels},
        }
        if external:
            spec["externalClusters"] = external
        cluster = k8s.apiextensions.CustomResource(
            f"{name}-cluster", api_version=CNPG_API, kind="Cluster",
            metadata=kube.metadata(name, args.namespace, object_labels), spec=spec,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[credentials]))
        k8s.apiextensions.CustomResource(
            f"{name}-scheduled-backup", api_version=CNPG_API, kind="ScheduledBackup",
            metadata=kube.metadata(f"{name}-daily", args.namespace, object_labels),
            spec={"schedule": args.backup_schedule, "cluster": {"name": name},
                  "backupOwnerReference": "self", "method": "barmanObjectStore", "immediate": True},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[cluster]))
        self.register_outputs({"cluster_name": self.cluster_name, "url_secret_name": self.url_secret_name})
