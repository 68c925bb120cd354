"""checkov finds nothing in the rendered stacks, and does find a deliberately broken object.

checkov is slow to import: it runs once per session over every rendered stack and the broken
object together, with the committed config (infra/checkov.yaml). Budget: under 40 s.
"""
import copy
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("pulumi", reason="Pulumi programs are tested in .venv-infra")

import yaml  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CHECKOV = REPO / ".venv-scan" / "bin" / "checkov"
CONFIG = REPO / "infra" / "checkov.yaml"


@pytest.fixture(scope="session")
def checkov_results(rendered, objects, tmp_path_factory):
    """Failed and skipped checks of one checkov run, by the folder of the scanned file."""
    if not CHECKOV.exists():
        message = "checkov's virtualenv is missing: make setup creates .venv-scan"
        if os.environ.get("TFSHIP_REQUIRE_SYSTEM_TOOLS"):
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("checkov")
    shutil.copytree(rendered, root / "stacks")
    broken = copy.deepcopy(next(o for o in objects["prod"] if o["kind"] == "Deployment" and o["metadata"]["name"] == "api-blue"))
    container = broken["spec"]["template"]["spec"]["containers"][0]
    del container["resources"]["limits"]
    container["image"] = "ghcr.io/example/tfship-api:latest"
    container["securityContext"]["allowPrivilegeEscalation"] = True
    (root / "broken").mkdir()
    (root / "broken" / "api.yaml").write_text(yaml.safe_dump(broken))
    done = subprocess.run([str(CHECKOV), "--config-file", str(CONFIG), "-d", str(root), "-o", "json"],
                          capture_output=True, text=True, timeout=300)
    reports = json.loads(done.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    results = {"failed": {}, "skipped": {}, "passed": 0}
    for report in reports:
        for kind in ("failed", "skipped"):
            for check in report["results"].get(f"{kind}_checks", []):
                folder = Path(check["file_path"].lstrip("/")).parts[0]
                results[kind].setdefault(folder, []).append((check["check_id"], check["resource"]))
        results["passed"] += report["summary"]["passed"]
    return results


def test_rendered_stacks_have_no_failed_checks(checkov_results):
    assert checkov_results["passed"] > 1000, "checkov scanned the rendered stacks"
    assert checkov_results["failed"].get("stacks", []) == []


def test_skips_are_only_the_justified_ones(checkov_results):
    skipped = {check for check, _ in checkov_results["skipped"].get("stacks", [])}
    assert skipped <= {"CKV_K8S_8", "CKV_K8S_9"}, "only the Locust worker's probe skips, each annotated"
    config = CONFIG.read_text()
    assert config.count("- CKV_") == 1 and "CPU limits are left off on purpose" in config


def test_broken_object_fails(checkov_results):
    failed = {check for check, _ in checkov_results["failed"].get("broken", [])}
    assert {"CKV_K8S_13", "CKV_K8S_43", "CKV_K8S_20"} <= failed
