"""The reconciler's plan: load first, label only what is AVAILABLE everywhere, retire after a
grace period. Pure decisions, no processes (the end-to-end run is in test_rollout_e2e.py).
Budget: <1 s."""
from service.delivery.model_config import ModelEntry
from service.delivery.reconciler import plan_model

GRACE = 5.0


def entry(versions=None, **labels):
    return ModelEntry(name="m", base_path="/m", versions=versions, labels=labels)


def state(stable=None, canary=None, previous=None, weight=0.0):
    return {"stable": stable, "canary": canary, "previous": previous, "canary_weight": weight}


def test_a_new_canary_is_loaded_before_any_label_points_at_it():
    retiring = {}
    plan = plan_model(entry((1,), stable=1), state(1, 2), available={1}, failed=set(),
                      retiring=retiring, now=0, grace=GRACE)
    assert plan.entry.versions == (1, 2) and plan.entry.labels == {"stable": 1}
    assert not plan.converged and plan.waiting_for == {2}
    # Loaded on some replicas only: still no label on it.
    plan = plan_model(plan.entry, state(1, 2), available={1}, failed=set(), retiring=retiring,
                      now=1, grace=GRACE)
    assert plan.entry is None and not plan.converged
    plan = plan_model(entry((1, 2), stable=1), state(1, 2), available={1, 2}, failed=set(),
                      retiring=retiring, now=2, grace=GRACE)
    assert plan.entry.labels == {"stable": 1, "canary": 2}
    again = plan_model(plan.entry, state(1, 2), available={1, 2}, failed=set(),
                       retiring=retiring, now=3, grace=GRACE)
    assert again.entry is None and again.converged


def test_promotion_moves_labels_and_keeps_previous_loaded():
    retiring = {}
    plan = plan_model(entry((1, 2), stable=1, canary=2), state(2, None, 1), available={1, 2},
                      failed=set(), retiring=retiring, now=0, grace=GRACE)
    assert plan.entry.versions == (1, 2)
    # The canary label stays for the grace period: cached gateways still send canary traffic.
    assert plan.entry.labels == {"stable": 2, "previous": 1, "canary": 2}
    plan = plan_model(plan.entry, state(2, None, 1), available={1, 2}, failed=set(),
                      retiring=retiring, now=GRACE, grace=GRACE)
    assert plan.entry.versions == (1, 2)
    assert plan.entry.labels == {"stable": 2, "previous": 1}


def test_an_aborted_canary_keeps_label_and_version_for_the_grace_period():
    retiring = {}
    current = entry((1, 2), stable=1, canary=2)
    plan = plan_model(current, state(1), available={1, 2}, failed=set(), retiring=retiring,
                      now=10, grace=GRACE)
    assert plan.entry is None and not plan.converged  # gateways may still route to the canary
    plan = plan_model(current, state(1), available={1, 2}, failed=set(), retiring=retiring,
                      now=14.9, grace=GRACE)
    assert plan.entry is None
    plan = plan_model(current, state(1), available={1, 2}, failed=set(), retiring=retiring,
                      now=15, grace=GRACE)
    assert plan.entry.versions == (1,) and plan.entry.labels == {"stable": 1}
    assert retiring == {}


def test_a_version_that_failed_to_load_never_gets_a_label():
    plan = plan_model(entry((1, 3), stable=1), state(1, 3, weight=0.5), available={1},
                      failed={3}, retiring={}, now=0, grace=GRACE)
    assert plan.entry is None or "canary" not in plan.entry.labels
    assert not plan.converged


def test_a_policy_all_config_becomes_specific_and_unnamed_versions_retire():
    retiring = {}
    plan = plan_model(entry(None, stable=2), state(2), available={1, 2}, failed=set(),
                      retiring=retiring, now=0, grace=GRACE)
    assert plan.entry.versions == (1, 2) and plan.entry.labels == {"stable": 2}
    plan = plan_model(plan.entry, state(2), available={1, 2}, failed=set(), retiring=retiring,
                      now=GRACE, grace=GRACE)
    assert plan.entry.versions == (2,)


def test_rollback_moves_stable_back_at_once():
    plan = plan_model(entry((1, 2), stable=2, previous=1), state(1, None, 2), available={1, 2},
                      failed=set(), retiring={}, now=0, grace=GRACE)
    assert plan.entry.versions == (1, 2) and plan.entry.labels == {"stable": 1, "previous": 2}


def test_the_policy_is_never_emptied():
    plan = plan_model(entry((1,), stable=1), state(None), available={1}, failed=set(),
                      retiring={}, now=100, grace=0)
    assert plan.entry is None or plan.entry.versions == (1,)


def test_the_command_reports_an_unreadable_config_file(tmp_path, capsys):
    from service.delivery import reconciler
    key = tmp_path / "key"
    key.write_text("k\n")
    code = reconciler.run("reconcile", [
        "--registry", "http://127.0.0.1:9", "--key-file", str(key),
        "--model-config-file", str(tmp_path / "missing.config"),
        "--model-server", "http://127.0.0.1:9", "--once", "--timeout", "1"])
    assert code == 1 and "missing.config" in capsys.readouterr().err


def test_a_new_canary_that_is_not_loaded_takes_the_label_from_the_old_one_at_once():
    """Else the old canary answers canary traffic in the new one's name and passes its analysis."""
    retiring = {}
    current = entry((1, 2), stable=2, canary=1, previous=1)
    plan = plan_model(current, state(2, 3, 1, weight=0.5), available={1, 2}, failed=set(),
                      retiring=retiring, now=0, grace=GRACE)
    assert plan.entry.versions == (1, 2, 3) and plan.entry.labels == {"stable": 2, "previous": 1}
    plan = plan_model(plan.entry, state(2, 3, 1, weight=0.5), available={1, 2}, failed=set(),
                      retiring=retiring, now=1, grace=GRACE)
    assert plan.entry is None and not plan.converged  # no canary label until 3 is loaded
    plan = plan_model(entry((1, 2, 3), stable=2, previous=1), state(2, 3, 1, weight=0.5),
                      available={1, 2, 3}, failed=set(), retiring=retiring, now=2, grace=GRACE)
    assert plan.entry.labels == {"stable": 2, "previous": 1, "canary": 3}
    failed = plan_model(current, state(2, 3, 1, weight=0.5), available={1, 2}, failed={3},
                        retiring={}, now=2, grace=GRACE)
    assert "canary" not in failed.entry.labels


def test_stable_keeps_its_old_version_while_the_new_one_loads():
    plan = plan_model(entry((1, 2), stable=1), state(2), available={1}, failed=set(),
                      retiring={}, now=0, grace=GRACE)
    assert plan.entry is None or plan.entry.labels == {"stable": 1}
