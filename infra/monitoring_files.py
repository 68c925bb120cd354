"""Find what monitoring/ generated for an environment: rule files, dashboards, Alertmanager config.

infra/ deploys these files as they are; it never writes rules or dashboards of its own.
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from monitoring import slo

MONITORING = Path(__file__).resolve().parent.parent / "monitoring"
GENERATED = MONITORING / "generated"
ELK = MONITORING / "elk"


def rule_files(profile: str, root: Path = GENERATED) -> list[Path]:
    """Prometheus rule files for a profile.

    A file named for a profile (`slo-<profile>.rules.yml`, `<rules>-<profile>.rules.yml`) is
    that profile's variant of its rules and replaces the unnamed file of the same rules
    (`<rules>.rules.yml`), which otherwise applies to every profile.
    """
    known = set(slo.profiles())
    if profile not in known:
        raise ValueError(f"unknown SLO profile {profile!r}; monitoring/slo.yaml has {sorted(known)}")
    chosen: dict[str, Path] = {}
    for path in sorted((root / "prometheus").glob("*.rules.yml")):
        stem = path.name.removesuffix(".rules.yml")
        owner = next((p for p in known if stem.endswith(f"-{p}")), None)
        base = stem.removesuffix(f"-{owner}") if owner else stem
        if owner == profile or (owner is None and base not in chosen):
            chosen[base] = path
    return sorted(chosen.values())


def rule_groups(path: Path) -> list[dict]:
    """The rule groups of a Prometheus rule file (the PrometheusRule spec takes them as they are)."""
    return (yaml.safe_load(path.read_text()) or {}).get("groups", [])


def dashboards(root: Path = GENERATED) -> dict[str, str]:
    """Grafana dashboards by file name, as compact JSON text."""
    return {path.name: json.dumps(json.loads(path.read_text()), separators=(",", ":"))
            for path in sorted((root / "grafana").glob("*.json"))}


def alertmanager_config(root: Path = GENERATED) -> dict | None:
    """The generated Alertmanager configuration, or None until monitoring/ has generated it."""
    path = root / "alertmanager" / "alertmanager.yml"
    return yaml.safe_load(path.read_text()) if path.exists() else None


def elk_files(root: Path = ELK) -> dict[str, Path]:
    """Every ELK config file under monitoring/elk/, keyed by its path relative to it."""
    return {str(p.relative_to(root)): p for p in sorted(root.rglob("*")) if p.is_file()} if root.exists() else {}
