"""Read and validate the stacks' configuration: the only module that touches pulumi.Config.

Every key is declared, with its type, default and description, in the project's Pulumi.yaml
(the environment project at the repository root, the platform project in infra/platform/).
Field names here are the snake_case form of those keys; a test holds the two in step.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, fields
from typing import Any, Mapping

import pulumi

from infra.components.api import COLOURS, PHASES as RELEASE_PHASES
from monitoring import slo

IMAGE_PATTERN = re.compile(r"^[a-z0-9.\-/:_]+@sha256:[0-9a-f]{64}$")
PLACEHOLDER_DIGEST = "sha256:" + "0" * 64
QUANTITY_PATTERN = re.compile(r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti)?$")
DURATION_PATTERN = re.compile(r"^[0-9]+[smhdw]$")
HOST_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")
REVISION_PATTERN = re.compile(r"^(head|[A-Za-z0-9_]{1,32})$")
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class ConfigError(ValueError):
    """The stack's configuration is invalid; the message lists every problem by key."""


def key_of(field_name: str) -> str:
    """Return the Pulumi config key of a field: snake_case to camelCase."""
    head, *rest = field_name.split("_")
    return head + "".join(part.capitalize() for part in rest)


@dataclass(frozen=True)
class EnvironmentConfig:
    """One environment stack's settings (dev, staging, prod), validated."""

    namespace: str
    platform_stack: str
    slo_profile: str
    api_host: str
    kibana_host: str
    tls_issuer: str
    api_blue_image: str
    api_green_image: str
    api_live_colour: str
    api_release_phase: str
    api_expand_revision: str
    model_server_image: str
    model_sync_image: str
    loadtest_image: str
    redis_image: str
    curl_image: str
    postgres_image: str
    api_min_replicas: int
    api_max_replicas: int
    api_target_cpu_utilization: int
    api_cpu_request: str
    api_memory_request: str
    api_memory_limit: str
    model_name: str
    model_store_uri: str
    model_source: str
    object_store_endpoint: str
    model_server_min_replicas: int
    model_server_max_replicas: int
    model_server_target_concurrency: str
    model_server_cpu_request: str
    model_server_memory_request: str
    model_server_memory_limit: str
    model_server_batching: bool
    batch_max_size: int
    batch_timeout_micros: int
    batch_threads: int
    database_kind: str
    database_instances: int
    database_storage_size: str
    backup_destination: str
    backup_schedule: str
    backup_retention: str
    database_restore_from: str
    redis_memory_limit: str
    elk_enabled: bool
    elastic_stack_version: str
    elasticsearch_nodes: int
    elasticsearch_storage_size: str
    elasticsearch_memory: str
    kibana_memory: str
    log_retention: str
    load_test_enabled: bool
    locust_workers: int
    reconciler_unload_grace_seconds: int
    api_key_secret: Any = dataclasses.field(metadata={"secret": True})
    object_store_access_key_id: Any = dataclasses.field(metadata={"secret": True})
    object_store_secret_access_key: Any = dataclasses.field(metadata={"secret": True})
    database_password: Any = dataclasses.field(metadata={"secret": True})
    reconciler_api_key: Any = dataclasses.field(metadata={"secret": True})

    @property
    def api_images(self) -> dict[str, str]:
        """The API image of each colour."""
        return {"blue": self.api_blue_image, "green": self.api_green_image}

    @property
    def images(self) -> dict[str, str]:
        """Every image reference, keyed by its config key."""
        return {key_of(f.name): getattr(self, f.name) for f in fields(self) if f.name.endswith("_image")}


@dataclass(frozen=True)
class PlatformConfig:
    """One cluster's platform stack settings, validated."""

    prometheus_retention: str
    prometheus_storage_size: str
    alertmanager_storage_size: str
    grafana_host: str
    acme_email: str
    alert_receiver_secrets: Any = dataclasses.field(metadata={"secret": True})
    grafana_admin_password: Any = dataclasses.field(metadata={"secret": True})


def _errors_common(values: Mapping[str, Any]) -> list[str]:
    """Check the shapes every config object shares: quantities, durations, hostnames."""
    errors = []
    for key, value in values.items():
        if not isinstance(value, str):
            continue
        if key.endswith(("Request", "Limit", "Memory", "Size")) and not QUANTITY_PATTERN.match(value):
            errors.append(f"{key}: {value!r} is not a Kubernetes quantity")
        if key.endswith(("Retention",)) and not DURATION_PATTERN.match(value):
            errors.append(f"{key}: {value!r} is not a duration like 7d")
        if key.endswith("Host") and not HOST_PATTERN.match(value):
            errors.append(f"{key}: {value!r} is not a DNS hostname")
    return errors


def validate_environment(values: Mapping[str, Any], *, deploying: bool) -> list[str]:
    """Return every problem of an environment's raw values (by config key); empty when valid.

    deploying is True for `pulumi up`: placeholder image digests are refused then, and only
    then, so that previews, renders and tests work before CI has pushed an image.
    """
    errors = _errors_common(values)
    for key in ("namespace", "modelName"):
        if not DNS_LABEL.match(values[key]):
            errors.append(f"{key}: {values[key]!r} is not a DNS label")
    for key, image in values.items():
        if not key.endswith("Image"):
            continue
        if not IMAGE_PATTERN.match(image):
            errors.append(f"{key}: {image!r} must be pinned by digest (name@sha256:<64 hex>)")
        elif deploying and image.endswith(PLACEHOLDER_DIGEST):
            errors.append(f"{key}: {image!r} carries the placeholder digest; set the real one "
                          f"with `pulumi config set {key} <name>@sha256:...`")
    if values["sloProfile"] not in slo.profiles():
        errors.append(f"sloProfile: {values['sloProfile']!r} is not a profile of monitoring/slo.yaml "
                      f"({', '.join(slo.profiles())})")
    for low, high in (("apiMinReplicas", "apiMaxReplicas"),
                      ("modelServerMinReplicas", "modelServerMaxReplicas")):
        if not 1 <= values[low] <= values[high]:
            errors.append(f"{low}/{high}: need 1 <= {values[low]} <= {values[high]}")
    if values["modelSource"] not in ("volume", "uri"):
        errors.append(f"modelSource: {values['modelSource']!r} is not one of volume, uri")
    if values["databaseKind"] not in ("cnpg", "sqlite"):
        errors.append(f"databaseKind: {values['databaseKind']!r} is not one of cnpg, sqlite")
    if values["databaseKind"] == "sqlite" and values["apiMaxReplicas"] != 1:
        errors.append("databaseKind: sqlite holds one writer; set apiMinReplicas = apiMaxReplicas = 1")
    if values["databaseKind"] == "cnpg" and values["databaseInstances"] < 1:
        errors.append("databaseInstances: at least 1")
    if not 0 <= values["batchTimeoutMicros"] <= 100_000:
        errors.append("batchTimeoutMicros: keep between 0 and 100000 for online serving")
    if values["batchMaxSize"] < 1 or values["batchThreads"] < 1:
        errors.append("batchMaxSize/batchThreads: at least 1")
    if not 1 <= values["apiTargetCpuUtilization"] <= 100:
        errors.append("apiTargetCpuUtilization: a percentage between 1 and 100")
    if len(values["backupSchedule"].split()) != 6:
        errors.append("backupSchedule: CloudNativePG takes six cron fields, seconds first")
    for key in ("modelStoreUri", "backupDestination"):
        if not re.match(r"^(s3|gs)://[a-z0-9.\-]+(/.*)?$", values[key]):
            errors.append(f"{key}: {values[key]!r} is not an s3:// or gs:// URI")
    if values["apiLiveColour"] not in COLOURS:
        errors.append(f"apiLiveColour: {values['apiLiveColour']!r} is not one of {', '.join(COLOURS)}")
    if values["apiReleasePhase"] not in RELEASE_PHASES:
        errors.append(f"apiReleasePhase: {values['apiReleasePhase']!r} is not one of {', '.join(RELEASE_PHASES)}")
    elif values["databaseKind"] == "sqlite" and values["apiReleasePhase"] != "steady":
        errors.append("apiReleasePhase: sqlite holds one writer, so only one colour runs: keep steady")
    if not REVISION_PATTERN.match(values["apiExpandRevision"]):
        errors.append(f"apiExpandRevision: {values['apiExpandRevision']!r} is not an Alembic revision or head")
    if values["reconcilerUnloadGraceSeconds"] < 30:
        errors.append("reconcilerUnloadGraceSeconds: at least 30 (gateway cache TTL + ConfigMap propagation + poll)")
    if values["elasticsearchNodes"] < 1 or values["locustWorkers"] < 1:
        errors.append("elasticsearchNodes/locustWorkers: at least 1")
    return errors


def validate_platform(values: Mapping[str, Any]) -> list[str]:
    """Return every problem of a platform stack's raw values; empty when valid."""
    errors = _errors_common(values)
    if "@" not in values["acmeEmail"]:
        errors.append(f"acmeEmail: {values['acmeEmail']!r} is not an email address")
    return errors


def build(cls, values: Mapping[str, Any], errors: list[str]):
    """Build a config object from raw values keyed by config key, or raise every error at once."""
    if errors:
        raise ConfigError("invalid stack configuration:\n  " + "\n  ".join(errors))
    return cls(**{f.name: values[key_of(f.name)] for f in fields(cls)})


def _read(cls, config: pulumi.Config) -> dict[str, Any]:
    """Read every field of cls from Pulumi config, typed by the field's annotation."""
    readers = {"str": config.require, "int": config.require_int, "bool": config.require_bool}
    values = {}
    for f in fields(cls):
        key = key_of(f.name)
        if f.metadata.get("secret"):
            values[key] = config.require_secret(key)
        else:
            values[key] = readers[f.type](key)
    return values


def load_environment() -> EnvironmentConfig:
    """Read the current environment stack's configuration."""
    values = _read(EnvironmentConfig, pulumi.Config())
    return build(EnvironmentConfig, values,
                 validate_environment(values, deploying=not pulumi.runtime.is_dry_run()))


def load_platform() -> PlatformConfig:
    """Read the current platform stack's configuration."""
    values = _read(PlatformConfig, pulumi.Config())
    return build(PlatformConfig, values, validate_platform(values))
