"""Render every Kubernetes object of a stack as YAML, for review and for GitOps users.

    python -m infra.render --stack dev --out build/render/dev
    python -m infra.render --stack platform/nonprod --out build/render/platform-nonprod

The stack's program runs under Pulumi's mocks (infra/mocked.py) with its real config; an
environment stack sees the exports of a mocked run of the platform stack it references.
Secret values are Pulumi placeholders under mocks and are redacted in the output anyway.
Helm releases are not Kubernetes objects: their chart, version and values go to helm/.
"""
from __future__ import annotations

import argparse
import functools
import json
import re
import runpy
import sys
from pathlib import Path

import yaml

from infra import mocked, monitoring_files
from infra.components.cluster_operators import ALERT_SECRETS_DIR

ENVIRONMENT_STACKS = ("dev", "staging", "prod")
PLATFORM_STACKS = ("nonprod", "prod")
ALL_STACKS = ENVIRONMENT_STACKS + tuple(f"platform/{s}" for s in PLATFORM_STACKS)
ENVIRONMENT_PROGRAM = mocked.REPO / "infra" / "__main__.py"
PLATFORM_PROGRAM = mocked.REPO / "infra" / "platform" / "__main__.py"
REDACTED = "REDACTED-BY-RENDER"
MARKER = ".tfship-render"


class RenderError(RuntimeError):
    """The output folder cannot be rendered into."""


def alert_secret_files() -> list[str]:
    """The receiver secret files the generated Alertmanager config reads."""
    text = json.dumps(monitoring_files.alertmanager_config() or {})
    return sorted(set(re.findall(re.escape(ALERT_SECRETS_DIR) + r"/([A-Za-z0-9._-]+)", text)))


@functools.lru_cache(maxsize=None)
def run_stack(stack: str) -> mocked.Run:
    """Run a stack's program under mocks (cached: a program's run does not change in a session)."""
    if stack.startswith("platform/"):
        name = stack.split("/", 1)[1]
        receivers = json.dumps({f: mocked.PLACEHOLDER_SECRET for f in alert_secret_files()})
        return mocked.run(lambda: runpy.run_path(str(PLATFORM_PROGRAM)), mocked.PLATFORM_PROJECT, name,
                          extra_config={"tfship-platform:alertReceiverSecrets": receivers})
    config, _ = mocked.project_config(mocked.ENVIRONMENT_PROJECT, stack)
    reference = config["tfship:platformStack"]
    platform = run_stack("platform/" + reference.rsplit("/", 1)[1])
    return mocked.run(lambda: runpy.run_path(str(ENVIRONMENT_PROGRAM)), mocked.ENVIRONMENT_PROJECT, stack,
                      stack_outputs={reference: platform.exports})


def manifests(run: mocked.Run) -> list[dict]:
    """Every Kubernetes object of a run, Secret values redacted."""
    objects = []
    for _, manifest in run.kubernetes_objects():
        if manifest["kind"] == "Secret":
            for field in ("data", "stringData"):
                if field in manifest:
                    manifest[field] = {key: REDACTED for key in manifest[field]}
        objects.append(manifest)
    return objects


def file_name(manifest: dict) -> str:
    """Return a stable, unique file name for an object."""
    namespace = manifest["metadata"].get("namespace", "_cluster")
    return f"{namespace}.{manifest['kind'].lower()}.{manifest['metadata']['name']}.yaml"


def render(stack: str, out: Path) -> list[Path]:
    """Write every object of a stack under out (replacing what a previous render left there)."""
    out.mkdir(parents=True, exist_ok=True)
    marker = out / MARKER
    if any(out.iterdir()) and not marker.exists():
        raise RenderError(f"{out} holds files the renderer did not write; give an empty or rendered folder")
    for old in list(out.glob("*.yaml")) + list((out / "helm").glob("*.yaml")):
        old.unlink()
    marker.write_text(f"rendered from stack {stack}; files here are replaced by the next render\n")
    run = run_stack(stack)
    written = []
    for manifest in manifests(run):
        path = out / file_name(manifest)
        path.write_text(yaml.safe_dump(manifest, sort_keys=False))
        written.append(path)
    releases = run.of_type("kubernetes:helm.sh/v3:Release")
    if releases:
        (out / "helm").mkdir(exist_ok=True)
    for release in releases:
        inputs = release.inputs
        path = out / "helm" / f"{inputs['name']}.yaml"
        header = (f"# Helm release {inputs['name']} in namespace {inputs['namespace']}: chart "
                  f"{inputs['chart']} {inputs['version']} from {inputs['repositoryOpts']['repo']}\n")
        path.write_text(header + yaml.safe_dump(inputs.get("values", {}), sort_keys=False))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Render one stack, or all of them with --all under --out/<stack>."""
    parser = argparse.ArgumentParser(prog="python -m infra.render", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", choices=ALL_STACKS, help="the stack to render")
    parser.add_argument("--all", action="store_true", help="render every stack into OUT/<stack>")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    args = parser.parse_args(argv)
    if not args.all and not args.stack:
        parser.error("give --stack or --all")
    stacks = ALL_STACKS if args.all else (args.stack,)
    for stack in stacks:
        out = args.out / stack.replace("/", "-") if args.all else args.out
        try:
            written = render(stack, out)
        except RenderError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(f"{stack}: {len(written)} files in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
