"""tfship's policy pack: `pulumi preview --policy-pack infra/policy` (CI runs it on every preview)."""
from pulumi_policy import EnforcementLevel, PolicyPack

from infra.policy.pack import policies

PolicyPack(name="tfship", policies=policies(), enforcement_level=EnforcementLevel.MANDATORY)
