"""The API's blue/green objects in each release phase, and the registry URL the stack exports.

The staging program runs under mocks once per phase (release: green idle with the new image;
switched: green live, blue still up); steady is the session's normal staging run. Every phase's
objects must pass the rules, the invariants and Kubernetes' schemas. Budget: under 10 s.
"""
import runpy

import pytest

pytest.importorskip("pulumi", reason="Pulumi programs are tested in .venv-infra")

from infra import invariants, mocked, render, validate  # noqa: E402
from infra.components import api  # noqa: E402
from infra.policy import rules  # noqa: E402

NEW = "ghcr.io/example/tfship-api:0.2.0@sha256:" + "b" * 64


def run_phase(phase: str, live: str) -> mocked.Run:
    config, _ = mocked.project_config(mocked.ENVIRONMENT_PROJECT, "staging")
    reference = config["tfship:platformStack"]
    platform = render.run_stack("platform/" + reference.rsplit("/", 1)[1])
    return mocked.run(lambda: runpy.run_path(str(render.ENVIRONMENT_PROGRAM)), mocked.ENVIRONMENT_PROJECT, "staging",
                      stack_outputs={reference: platform.exports},
                      extra_config={"tfship:apiGreenImage": NEW, "tfship:apiReleasePhase": phase,
                                    "tfship:apiLiveColour": live, "tfship:apiExpandRevision": "0004"})


@pytest.fixture(scope="module")
def phases(runs):
    """Mocked staging runs by phase: steady (blue live), release (green idle), switched (green live)."""
    return {"steady": runs["staging"], "release": run_phase("release", "blue"), "switched": run_phase("switched", "green")}


def resource(run, name):
    return next(r for r in run.resources if r.name == name)


def manifest(run, kind, name):
    return next(o for o in render.manifests(run) if o["kind"] == kind and o["metadata"]["name"] == name)


def image_of(run, name):
    return resource(run, name).inputs["spec"]["template"]["spec"]["containers"][0]["image"]


@pytest.mark.parametrize("live, phase, expected", [
    ("blue", "steady", api.ColourPlan("blue", ("blue",), None, "blue")),
    ("blue", "release", api.ColourPlan("blue", ("blue", "green"), "green", "blue")),
    ("green", "switched", api.ColourPlan("green", ("blue", "green"), "green", "blue")),
    ("green", "release", api.ColourPlan("green", ("blue", "green"), "blue", "green")),
])
def test_plan(live, phase, expected):
    assert api.plan(live, phase) == expected


def test_plan_refuses_unknown_values():
    with pytest.raises(ValueError):
        api.plan("red", "steady")


def test_steady_runs_the_live_colour_only_and_migrates_after_the_other_is_at_zero(phases):
    run = phases["steady"]
    assert manifest(run, "Service", "api")["spec"]["selector"][api.COLOUR_LABEL] == "blue"
    blue, green = resource(run, "api-blue"), resource(run, "api-green")
    assert green.inputs["spec"]["replicas"] == 0 and blue.inputs["spec"]["replicas"] >= 1
    assert blue.options["ignore_changes"] == ["spec.replicas"], "the live colour's size is its HPA's"
    assert green.options["ignore_changes"] == []
    assert resource(run, "api-migrate").options["depends_on"] == ["api-green"], "contract after retirement"
    assert "api-migrate" in blue.options["depends_on"]
    assert not [r for r in run.resources if r.name == "api-expand"]
    assert manifest(run, "HorizontalPodAutoscaler", "api")["spec"]["scaleTargetRef"]["name"] == "api-blue"
    assert {o["metadata"]["name"] for o in render.manifests(run) if o["kind"] == "PodDisruptionBudget"
            and o["metadata"]["name"].startswith("api")} == {"api-blue"}


def test_release_starts_the_idle_colour_after_the_expand_migration(phases):
    steady, run = phases["steady"], phases["release"]
    assert manifest(run, "Service", "api")["spec"]["selector"][api.COLOUR_LABEL] == "blue", "not live yet"
    green = resource(run, "api-green")
    assert green.inputs["spec"]["replicas"] >= 1 and image_of(run, "api-green") == NEW
    assert green.options["depends_on"] == ["api-expand"]
    expand = resource(run, "api-expand").inputs
    container = expand["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == NEW and container["args"] == ["db", "upgrade", "0004"]
    migrate = resource(run, "api-migrate").inputs
    assert migrate["metadata"]["name"] == resource(steady, "api-migrate").inputs["metadata"]["name"], \
        "the live colour's migrate Job is unchanged, so it does not run again"
    assert manifest(run, "Service", "api-green")["spec"]["selector"][api.COLOUR_LABEL] == "green"


def test_switched_serves_the_new_colour_and_keeps_the_old_one_up(phases):
    release, run = phases["release"], phases["switched"]
    assert manifest(run, "Service", "api")["spec"]["selector"][api.COLOUR_LABEL] == "green"
    blue = resource(run, "api-blue")
    assert blue.inputs["spec"]["replicas"] >= 1 and blue.options["ignore_changes"] == []
    assert manifest(run, "HorizontalPodAutoscaler", "api")["spec"]["scaleTargetRef"]["name"] == "api-green"
    for job in ("api-expand", "api-migrate"):
        assert resource(run, job).inputs["metadata"]["name"] == resource(release, job).inputs["metadata"]["name"], \
            f"{job} unchanged: a switch back runs no migration"
    assert image_of(run, "reconciler-deployment") == NEW, "the reconciler follows the live image"


@pytest.mark.parametrize("phase", ["release", "switched"])
def test_every_phase_passes_the_rules_invariants_and_schemas(phases, phase):
    objects = render.manifests(phases[phase])
    assert [m for o in objects for rule in rules.RULES.values() for m in rule(o)] == []
    assert invariants.violations(objects) == []
    changed = [o for o in objects if o["metadata"]["name"].startswith(("api", "reconciler"))]
    assert len(changed) >= 10, "the phase's API objects are validated"
    assert [e for o in changed for e in validate.object_errors(o)] == [], "Kubernetes' own schemas"


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_stack_exports_the_registry_url_for_the_rollout_commands(runs, objects, stack):
    exports = runs[stack].exports
    assert exports["registryUrl"] == exports["apiUrl"] and exports["registryUrl"].startswith("https://")
    namespace = exports["apiRelease"]["namespace"]
    assert exports["registryInClusterUrl"] == f"http://api.{namespace}.svc.cluster.local"
    assert exports["apiRelease"]["services"] == {"blue": "api-blue", "green": "api-green"}
    for colour, selector in exports["apiRelease"]["selectors"].items():
        pods = next(o for o in objects[stack] if o["kind"] == "Deployment" and o["metadata"]["name"] == f"api-{colour}")
        assert pods["spec"]["selector"]["matchLabels"] == selector, "release-api waits on exactly these pods"
    assert exports["apiRelease"]["singleWriter"] is (stack == "dev")


def test_colour_deployments_force_back_the_replicas_the_hpa_owned(phases):
    for colour in api.COLOURS:
        metadata = manifest(phases["switched"], "Deployment", f"api-{colour}")["metadata"]
        assert metadata["annotations"] == {api.PATCH_FORCE: "true"}
