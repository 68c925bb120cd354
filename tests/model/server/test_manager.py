"""The version manager in-process with real SavedModels: policies, states, labels, snapshots.

Time budget: ~10-25 s (real loads; 50 load/unload cycles of a tiny model for the memory bound).
"""
import gc
import os
import shutil
import weakref

import numpy as np
import pytest

from model.server import config, manager
from model.server.errors import FailedPrecondition, InvalidArgument, NotFound
from model.server.servable import Servable

from .fixture_models import MODEL_NAME, export_tiny


@pytest.fixture
def base(model_bases, tmp_path):
    """A private copy of the 'multi' versions 1 and 2, plus files a scan must ignore."""
    path = tmp_path / MODEL_NAME
    shutil.copytree(model_bases[MODEL_NAME], path)
    (path / ".tmp-export-3").mkdir()
    (path / "README").write_text("not a version")
    return str(path)


def make_manager(**kwargs):
    return manager.Manager(load_servable=lambda name, version, path: Servable(name, version, path),
                           **kwargs)


def model(base, policy=config.VersionPolicy(), labels=()):
    return config.ModelConfig(MODEL_NAME, base, policy, tuple(labels))


def states(mgr):
    return {s.version: s.state for s in mgr.snapshot.model(MODEL_NAME).statuses()}


def test_scan_ignores_non_integer_entries(base):
    assert manager.scan_versions(base) == {1, 2}
    assert manager.scan_versions(base + "-missing") == set()


def test_latest_serves_the_newest_and_resolves_requests(base):
    mgr = make_manager()
    mgr.apply_config([model(base)], initial=True)
    view = mgr.snapshot.model(MODEL_NAME)
    assert states(mgr) == {2: "AVAILABLE"}
    assert view.resolve().version == 2
    with pytest.raises(NotFound, match=r"Specific\(multi, 1\)"):
        view.resolve(version=1)
    with pytest.raises(InvalidArgument, match="Unrecognized servable version label: x"):
        view.resolve(label="x")


def test_policy_change_unloads_to_end_and_old_snapshots_stay_whole(base):
    mgr = make_manager()
    mgr.apply_config([model(base, config.VersionPolicy("all"), [("stable", 2)])], initial=True)
    before = mgr.snapshot
    mgr.apply_config([model(base, config.VersionPolicy("specific", versions=(1,)),
                            [("stable", 1)])])
    assert states(mgr) == {2: "END", 1: "AVAILABLE"}
    assert mgr.snapshot.model(MODEL_NAME).resolve(label="stable").version == 1
    # A request that read the snapshot before the change still sees its own versions,
    # and can still run the unloaded one (as a TF Serving handle keeps its servable).
    assert set(before.model(MODEL_NAME).servables) == {1, 2}
    assert before.model(MODEL_NAME).labels["stable"] == 2
    outputs = before.model(MODEL_NAME).resolve(label="stable").run(
        "scale", {"x": np.ones((1, 3), np.float32)})
    assert outputs["y"].tolist() == [[2.0, 2.0, 2.0]]


def test_label_may_not_point_at_a_version_the_same_change_loads(base):
    mgr = make_manager()
    specific = config.VersionPolicy("specific", versions=(1,))
    mgr.apply_config([model(base, specific, [("stable", 1)])], initial=True)
    both = config.VersionPolicy("specific", versions=(1, 2))
    with pytest.raises(FailedPrecondition, match="version 2 of model multi, which is not "
                                                 "currently available for inference"):
        mgr.apply_config([model(base, both, [("stable", 2)])])
    assert states(mgr) == {1: "AVAILABLE"}  # the refused config changed nothing
    mgr.apply_config([model(base, both, [("stable", 1)])])  # first load both...
    mgr.apply_config([model(base, both, [("stable", 2)])])  # ...then move the label
    assert mgr.snapshot.model(MODEL_NAME).resolve(label="stable").version == 2


def test_allow_labels_for_unavailable_models_accepts_new_labels_only(base):
    mgr = make_manager(allow_labels_for_unavailable=True)
    mgr.apply_config([model(base, labels=[("future", 9)])], initial=True)
    assert mgr.snapshot.model(MODEL_NAME).labels["future"] == 9
    with pytest.raises(NotFound):
        mgr.snapshot.model(MODEL_NAME).resolve(label="future")
    mgr.apply_config([model(base, labels=[("future", 2)])])  # moving to a loaded version
    with pytest.raises(FailedPrecondition):
        mgr.apply_config([model(base, labels=[("future", 7)])])  # moving to an unloaded one


def test_labels_refused_when_the_server_disallows_them(base):
    with pytest.raises(FailedPrecondition, match="labels are not currently allowed"):
        make_manager(allow_labels=False).apply_config([model(base, labels=[("stable", 2)])],
                                                      initial=True)


def test_initial_label_on_missing_version_is_refused(base):
    with pytest.raises(FailedPrecondition, match="version 5 of model multi"):
        make_manager().apply_config([model(base, labels=[("stable", 5)])], initial=True)


def test_a_broken_version_ends_with_its_error_and_others_serve(base):
    os.makedirs(os.path.join(base, "3"))
    with open(os.path.join(base, "3", "saved_model.pb"), "wb") as handle:
        handle.write(b"not a protobuf")
    mgr = make_manager()
    mgr.apply_config([model(base, config.VersionPolicy("all"))], initial=True)
    status = {s.version: s for s in mgr.snapshot.model(MODEL_NAME).statuses()}
    assert status[3].state == "END" and status[3].error_code != "OK"
    assert status[3].error_message
    assert mgr.snapshot.model(MODEL_NAME).resolve().version == 2


def test_model_removed_from_config_is_unloaded(base):
    mgr = make_manager()
    mgr.apply_config([model(base)], initial=True)
    mgr.apply_config([])
    assert mgr.snapshot.model(MODEL_NAME) is None


def test_memory_does_not_grow_across_load_unload_cycles(tmp_path):
    """50 load/unload cycles of one version: RSS after the 50th stays near RSS after the 10th.

    The bound is 30 MiB over 40 cycles; measured here: flat within ~1 MiB.
    """
    def rss_mib():
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    base = str(tmp_path / "tiny")
    export_tiny(os.path.join(base, "1"))
    mgr = make_manager()
    loaded = config.ModelConfig("tiny", base, config.VersionPolicy("specific", versions=(1,)))
    unloaded = config.ModelConfig("tiny", base, config.VersionPolicy("specific", versions=(9,)))
    readings = {}
    for cycle in range(1, 51):
        mgr.apply_config([loaded])
        assert mgr.snapshot.model("tiny").resolve().run("serving_default", {
            "x": np.ones(2, np.float32)})["y"].tolist() == [2.0, 2.0]
        mgr.apply_config([unloaded])
        assert mgr.snapshot.model("tiny").servables == {}
        if cycle in (10, 50):
            readings[cycle] = rss_mib()
    growth = readings[50] - readings[10]
    assert growth < 30, f"RSS grew {growth:.1f} MiB from cycle 10 to 50 ({readings})"


class _Cycle:
    """An object in a reference cycle: only the cyclic collector frees it."""

    def __init__(self):
        self.me = self


def test_a_loaded_version_is_frozen_out_of_collections_and_freed_at_unload(tmp_path):
    """After a load the heap is frozen (gc.freeze: full collections skip the ~280k objects of a
    loaded model); an unload unfreezes it, so a cycle made during the version's load is freed."""
    base = str(tmp_path / "tiny")
    export_tiny(os.path.join(base, "1"))
    cycles = []

    def load(name, version, path):
        servable = Servable(name, version, path)
        servable.cycle = _Cycle()
        cycles.append(weakref.ref(servable.cycle))
        return servable

    mgr = manager.Manager(load_servable=load)
    gc.unfreeze()
    mgr.apply_config([config.ModelConfig("tiny", base, config.VersionPolicy("specific", versions=(1,)))])
    try:
        assert gc.get_freeze_count() > 0 and cycles[0]() is not None
        gc.collect()
        assert cycles[0]() is not None  # frozen, yet still referenced: nothing freed too early
        mgr.apply_config([config.ModelConfig("tiny", base, config.VersionPolicy("specific", versions=(9,)))])
        assert mgr.snapshot.model("tiny").servables == {}
        assert cycles[0]() is None, "the unloaded version's cycle stayed frozen"
    finally:
        gc.unfreeze()  # later tests of this process see the collector as they expect
