"""Run a stack's program under Pulumi's unit-test mocks and record every resource it declares.

There is no cluster and no Pulumi CLI where tfship is tested, so the programs run against
`pulumi.runtime.set_mocks`: the config is what `pulumi` would pass (the project's Pulumi.yaml
defaults overlaid with Pulumi.<stack>.yaml), secrets are placeholders, and each resource's
outputs echo its inputs. The recorded inputs are exactly what the Kubernetes provider would
receive, so they are what the renderer writes and the tests check.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pulumi
import yaml
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockCallArgs, MockResourceArgs, Mocks
from pulumi.runtime.settings import SETTINGS
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from infra.policy.rules import manifest_from_inputs

REPO = Path(__file__).resolve().parent.parent
ENVIRONMENT_PROJECT = REPO / "Pulumi.yaml"
PLATFORM_PROJECT = REPO / "infra" / "platform" / "Pulumi.yaml"
PLACEHOLDER_SECRET = "mocked-secret-value-0123456789abcdef0123456789abcdef"


@dataclass
class Declared:
    """One resource the program declared: its type token, logical name and inputs."""

    type: str
    name: str
    inputs: dict
    options: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Name the resource the way failures should: its type and logical name."""
        return f"{self.type}::{self.name}"


@dataclass
class Run:
    """Everything one mocked run of a program produced."""

    project: str
    stack: str
    resources: list[Declared]
    exports: dict

    def of_type(self, *types: str) -> list[Declared]:
        """Resources whose type token is one of types."""
        return [r for r in self.resources if r.type in types]

    def kubernetes_objects(self) -> list[tuple[Declared, dict]]:
        """Every Kubernetes object as a manifest dict (Helm releases and components excluded)."""
        objects = []
        for resource in self.resources:
            manifest = manifest_from_inputs(resource.type, resource.inputs)
            if manifest is not None:
                objects.append((resource, manifest))
        return objects


class RecordingMocks(Mocks):
    """Mocks that echo inputs as outputs, name objects like the provider would, and record them."""

    def __init__(self, stack_outputs: dict[str, dict]):
        self.resources: list[Declared] = []
        self.stack_outputs = stack_outputs

    def new_resource(self, args: MockResourceArgs):
        outputs = dict(args.inputs)
        if args.typ == "pulumi:pulumi:StackReference":
            outputs["outputs"] = self.stack_outputs[args.inputs.get("name", args.name)]
            return f"{args.name}-id", outputs
        if args.typ.startswith("kubernetes:") and not args.typ.startswith("kubernetes:helm"):
            metadata = dict(outputs.get("metadata") or {})
            metadata.setdefault("name", args.name)
            outputs["metadata"] = metadata
        self.resources.append(Declared(args.typ, args.name, _plain(outputs)))
        return f"{args.name}-id", outputs

    def call(self, args: MockCallArgs):
        return {}, None


def _plain(value: Any) -> Any:
    """Return inputs as the provider would apply them.

    The mock monitor sends numbers as floats (whole ones become ints again) and secret values
    wrapped in Pulumi's secret signature (unwrapped here; the renderer redacts Secrets).
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_secret_sig:
        return _plain(value.get("value"))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def project_config(project_file: Path, stack: str) -> tuple[dict[str, str], list[str]]:
    """Return the config `pulumi` would give the program: defaults overlaid with the stack file.

    Values are strings (objects as JSON), keyed `<project>:<key>`, like the CLI passes them.
    Declared secrets get a placeholder value and are marked secret.
    """
    project = yaml.safe_load(project_file.read_text())
    name = project["name"]
    stack_file = project_file.parent / f"Pulumi.{stack}.yaml"
    overrides = (yaml.safe_load(stack_file.read_text()) or {}).get("config", {}) if stack_file.exists() else {}
    config, secret_keys = {}, []
    for key, spec in project["config"].items():
        full = f"{name}:{key}"
        if spec.get("secret"):
            config[full] = PLACEHOLDER_SECRET
            secret_keys.append(full)
            continue
        value = overrides.get(full, spec["default"])
        config[full] = value if isinstance(value, str) else json.dumps(value)
    unknown = set(overrides) - set(config)
    if unknown:
        raise ValueError(f"{stack_file}: keys not declared in {project_file}: {sorted(unknown)}")
    return config, secret_keys


def run(program: Callable[[], None], project_file: Path, stack: str,
        stack_outputs: dict[str, dict] | None = None, extra_config: dict[str, str] | None = None) -> Run:
    """Run program as stack of the project in project_file under mocks; return what it declared."""
    project = yaml.safe_load(project_file.read_text())["name"]
    mocks = RecordingMocks(stack_outputs or {})
    options: dict[str, dict] = {}

    def record_options(args: pulumi.ResourceTransformationArgs):
        options[f"{args.type_}::{args.name}"] = {
            "ignore_changes": list(args.opts.ignore_changes or []),
            "depends_on": [getattr(d, "_name", None) for d in (args.opts.depends_on or [])]
            if isinstance(args.opts.depends_on, list) else [],
        }
        return None

    def program_with_recorder():
        pulumi.runtime.register_stack_transformation(record_options)
        program()

    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=True)
    config, secret_keys = project_config(project_file, stack)
    config.update(extra_config or {})
    pulumi.runtime.set_all_config(config, secret_keys)
    SETTINGS.rpc_manager.clear()
    SETTINGS.outputs.clear()
    exports: dict = {}
    original_export = pulumi.export

    def capture(name, value):
        exports[name] = value
        original_export(name, value)

    pulumi.export = capture
    try:
        _sync_await(run_pulumi_func(program_with_recorder))
        resolved = {name: _sync_await(pulumi.Output.from_input(value).future()) for name, value in exports.items()}
    finally:
        pulumi.export = original_export
    for resource in mocks.resources:
        resource.options = options.get(resource.label, {})
    return Run(project, stack, mocks.resources, resolved)
