"""Pulumi policies built from infra/policy/rules.py and infra/invariants.py.

Per-resource rules become resource validation policies; the cross-object checks (selectors,
NetworkPolicy coverage, monitors) become one stack validation policy. All are mandatory.
"""
from __future__ import annotations

from pulumi_policy import (EnforcementLevel, ResourceValidationArgs, ResourceValidationPolicy,
                           StackValidationArgs, StackValidationPolicy)

from infra import invariants
from infra.policy import rules


def resource_policy(name: str) -> ResourceValidationPolicy:
    """Wrap one rule of rules.RULES as a mandatory resource validation policy."""
    rule = rules.RULES[name]

    def validate(args: ResourceValidationArgs, report_violation) -> None:
        manifest = rules.manifest_from_inputs(args.resource_type, dict(args.props))
        if manifest is not None:
            for message in rule(manifest):
                report_violation(message, None)

    return ResourceValidationPolicy(name=name, description=(rule.__doc__ or name).strip(),
                                    validate=validate, enforcement_level=EnforcementLevel.MANDATORY)


def validate_stack(args: StackValidationArgs, report_violation) -> None:
    """Run the cross-object checks over every Kubernetes resource of the stack."""
    manifests = [m for r in args.resources if (m := rules.manifest_from_inputs(r.resource_type, dict(r.props))) is not None]
    for message in invariants.violations(manifests):
        report_violation(message, None)


def policies() -> list:
    """Every policy of the pack."""
    return [*(resource_policy(name) for name in rules.RULES),
            StackValidationPolicy(name="objects-fit-together", description=validate_stack.__doc__,
                                  validate=validate_stack, enforcement_level=EnforcementLevel.MANDATORY)]
