"""Validate rendered objects: core kinds against Kubernetes' schemas, custom resources against CRDs.

    python -m infra.validate build/render/dev [more folders or files]

Core objects pass kubernetes-validate in strict mode (unknown and missing fields fail) for the
oldest Kubernetes tfship supports and the newest the library carries. Custom resources pass
their operator's schema from infra/crd-schemas/.
"""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

OLDEST_KUBERNETES = "1.30.0"
NEWEST_KUBERNETES = kubernetes_validate.latest_version()
KUBERNETES_VERSIONS = (OLDEST_KUBERNETES, NEWEST_KUBERNETES)
CRD_SCHEMAS = Path(__file__).resolve().parent / "crd-schemas"
# API groups whose kinds are custom resources (schemas in CRD_SCHEMAS, not in Kubernetes).
CUSTOM_GROUPS = tuple(p.name for p in CRD_SCHEMAS.iterdir() if p.is_dir())


def is_custom(manifest: dict) -> bool:
    """Whether an object is a custom resource."""
    return manifest["apiVersion"].split("/")[0] in CUSTOM_GROUPS


@functools.lru_cache(maxsize=None)
def crd_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator | None:
    """Return a validator for a custom resource kind, or None when no schema is committed."""
    group, version = api_version.split("/")
    path = CRD_SCHEMAS / group / f"{kind.lower()}_{version}.json"
    if not path.exists():
        return None
    return jsonschema.Draft7Validator(json.loads(path.read_text()))


def object_errors(manifest: dict) -> list[str]:
    """Return every schema problem of one object, each naming the object and the field."""
    name = f"{manifest.get('kind')}/{manifest.get('metadata', {}).get('name')}"
    if is_custom(manifest):
        validator = crd_validator(manifest["apiVersion"], manifest["kind"])
        if validator is None:
            return [f"{name}: no schema for {manifest['apiVersion']} {manifest['kind']} in {CRD_SCHEMAS}"]
        return [f"{name}: {'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                for e in sorted(validator.iter_errors(manifest), key=lambda e: list(map(str, e.path)))]
    errors = []
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{name}: Kubernetes {version}: {'.'.join(map(str, error.path))}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{name}: Kubernetes {version} has no {manifest['apiVersion']} {manifest['kind']}")
    return errors


def load(paths: list[Path]) -> list[tuple[Path, dict]]:
    """Load every object of the given files and folders (their *.yaml files, not helm/)."""
    files = []
    for path in paths:
        files.extend(sorted(path.glob("*.yaml")) if path.is_dir() else [path])
    return [(f, doc) for f in files for doc in yaml.safe_load_all(f.read_text()) if doc]


def main(argv: list[str] | None = None) -> int:
    """Validate rendered folders; print each problem; exit 1 if there is any."""
    paths = [Path(p) for p in (sys.argv[1:] if argv is None else argv)]
    if not paths:
        print("usage: python -m infra.validate FOLDER_OR_FILE...", file=sys.stderr)
        return 2
    objects = load(paths)
    problems = [f"{path}: {error}" for path, manifest in objects for error in object_errors(manifest)]
    print("\n".join(problems) if problems else f"{len(objects)} objects valid "
          f"(Kubernetes {', '.join(KUBERNETES_VERSIONS)}; custom resources against {CRD_SCHEMAS.name}/)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
