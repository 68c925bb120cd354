"""The policy pack passes the real stacks and rejects broken resources, naming them.

The policies get the same resource inputs the Pulumi engine would hand them (taken from the
mocked runs). Budget: under 5 s.
"""
import copy

import pytest

pytest.importorskip("pulumi_policy", reason="Pulumi programs are tested in .venv-infra")

from pulumi_policy import (PolicyCustomTimeouts, PolicyResource, PolicyResourceOptions,  # noqa: E402
                           ResourceValidationArgs, ResourceValidationPolicy, StackValidationArgs,
                           StackValidationPolicy)

from infra.policy import pack, rules  # noqa: E402

OPTIONS = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def resource_violations(resource_type, props):
    found = []
    for policy in pack.policies():
        if isinstance(policy, ResourceValidationPolicy):
            args = ResourceValidationArgs(resource_type, props, f"urn:{resource_type}", "r", OPTIONS, None)
            policy.validate(args, lambda message, urn=None, name=policy.name: found.append((name, message)))
    return found


def stack_violations(resources):
    found = []
    policy = next(p for p in pack.policies() if isinstance(p, StackValidationPolicy))
    args = StackValidationArgs([PolicyResource(r.type, r.inputs, f"urn:{r.type}", r.name, OPTIONS, None, None, [], {})
                                for r in resources])
    policy.validate(args, lambda message, urn=None: found.append(message))
    return found


def test_every_rule_is_a_mandatory_policy():
    names = [p.name for p in pack.policies()]
    assert names == [*rules.RULES, "objects-fit-together"]
    assert all(p.enforcement_level.value == "mandatory" for p in pack.policies())


@pytest.mark.parametrize("stack", ["dev", "staging", "prod", "platform/prod"])
def test_real_stacks_pass(runs, stack):
    resources = runs[stack].resources
    assert [v for r in resources for v in resource_violations(r.type, r.inputs)] == []
    assert stack_violations(resources) == []


def test_unpinned_image_and_missing_limit_are_rejected(runs):
    deployment = copy.deepcopy(next(r for r in runs["prod"].resources if r.name == "api-blue"))
    container = deployment.inputs["spec"]["template"]["spec"]["containers"][0]
    container["image"] = "ghcr.io/example/tfship-api:latest"
    del container["resources"]["limits"]
    found = resource_violations(deployment.type, deployment.inputs)
    assert ("images-pinned-by-digest", "Deployment/tfship-prod/api-blue: container api image "
            "'ghcr.io/example/tfship-api:latest' is not pinned by digest") in found
    assert ("resources-set", "Deployment/tfship-prod/api-blue: container api lacks limits.memory") in found


def test_wrong_selector_is_rejected_by_the_stack_policy(runs):
    resources = copy.deepcopy(runs["prod"].resources)
    service = next(r for r in resources if r.name == "api-service")
    service.inputs["spec"]["selector"] = {"app": "api"}
    assert any(m.startswith("Service/tfship-prod/api: selector {'app': 'api'} selects no pods") for m in stack_violations(resources))


def test_other_providers_are_ignored():
    assert resource_violations("aws:s3/bucket:Bucket", {"bucket": "x"}) == []
    assert rules.manifest_from_inputs("kubernetes:helm.sh/v3:Release", {}) is None
    assert rules.manifest_from_inputs("kubernetes:core/v1:Service", {"spec": {}})["apiVersion"] == "v1"
    assert rules.manifest_from_inputs("kubernetes:postgresql.cnpg.io/v1:Cluster", {})["apiVersion"] == "postgresql.cnpg.io/v1"
