"""Decide whether a candidate version's input schema is compatible with the serving one's.

Callers built against version N must keep working on N+1: the same inputs, each with the same
dtype, shape and kind, and no category of N missing from N+1 (new categories are fine).
"""


def breaking_changes(current, candidate):
    """Return the reasons candidate's input schema breaks callers of current (empty: compatible)."""
    old, new = current.get("inputs") or {}, candidate.get("inputs") or {}
    problems = [f"input {name!r} was removed" for name in sorted(set(old) - set(new))]
    problems += [f"input {name!r} was added (callers do not send it)"
                 for name in sorted(set(new) - set(old))]
    for name in sorted(set(old) & set(new)):
        for key in ("dtype", "shape", "kind"):
            if old[name].get(key) != new[name].get(key):
                problems.append(f"input {name!r}: {key} changed from {old[name].get(key)!r} "
                                f"to {new[name].get(key)!r}")
        removed = set(old[name].get("categories") or ()) - set(new[name].get("categories") or ())
        if removed:
            problems.append(f"input {name!r}: categories removed: {sorted(removed)}")
    if current.get("signature_name", "serving_default") != candidate.get(
            "signature_name", "serving_default"):
        problems.append("the signature name changed")
    return problems
