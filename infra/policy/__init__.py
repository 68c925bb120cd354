"""The organisation's rules, enforced on every `pulumi preview` and `pulumi up` as a policy pack."""
