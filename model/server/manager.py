"""Load, serve and unload model versions; publish one immutable snapshot per change.

Each request reads `Manager.snapshot` once and resolves its model, version or label against
that object only, so it sees one consistent set of versions and labels while the poll threads
load, unload and relabel behind it. Version states follow TF Serving's ServableState:
START -> LOADING -> AVAILABLE -> UNLOADING -> END (END also after a failed load).
"""
import dataclasses
import gc
import logging
import os
import threading
import types

from model.server import config as config_module
from model.server.errors import (FailedPrecondition, NotFound, ServingError,
                                 servable_not_found, unknown_label)

log = logging.getLogger(__name__)

START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"


@dataclasses.dataclass(frozen=True)
class VersionStatus:
    """One version's state as the status API reports it."""

    version: int
    state: str
    error_code: str = "OK"
    error_message: str = ""


@dataclasses.dataclass(frozen=True)
class ModelView:
    """An immutable view of one model: its available servables, states and labels."""

    name: str
    servables: types.MappingProxyType
    states: types.MappingProxyType
    labels: types.MappingProxyType

    def resolve(self, version=None, label=None):
        """Return the servable a request for `version` or `label` (or neither) gets."""
        if label is not None:
            if label not in self.labels:
                raise unknown_label(label)
            version = self.labels[label]
        if version is None:
            if not self.servables:
                raise servable_not_found(f"Latest({self.name})")
            return self.servables[max(self.servables)]
        if version not in self.servables:
            raise servable_not_found(f"Specific({self.name}, {version})")
        return self.servables[version]

    def statuses(self, version=None, label=None):
        """Return the VersionStatus list the status API answers, newest first."""
        if label is not None:
            if label not in self.labels:
                raise unknown_label(label)
            version = self.labels[label]
        if version is not None:
            if version not in self.states:
                raise NotFound(f"Could not find version {version} of model {self.name}")
            return [self.states[version]]
        if not self.states:
            raise NotFound(f"Could not find any versions of model {self.name}")
        return [self.states[v] for v in sorted(self.states, reverse=True)]


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """Every model's view at one instant."""

    models: types.MappingProxyType

    def model(self, name):
        return self.models.get(name)


def _freeze(mapping):
    return types.MappingProxyType(dict(mapping))


class _Model:
    """The mutable record of one model, only touched under Manager._lock."""

    def __init__(self, model_config):
        self.config = model_config
        self.servables = {}
        self.states = {}
        self.labels = {}
        self.warned_empty = False


def scan_versions(base_path):
    """Return the integer version directories under `base_path` (others are ignored)."""
    try:
        entries = os.listdir(base_path)
    except OSError:
        return set()
    versions = set()
    for entry in entries:
        if entry.isdigit() and os.path.isdir(os.path.join(base_path, entry)):
            versions.add(int(entry))
    return versions


class Manager:
    """Owns the loaded versions of every configured model and the snapshot requests read."""

    def __init__(self, load_servable, allow_labels_for_unavailable=False, on_loaded=(),
                 allow_labels=True):
        self._load_servable = load_servable  # (name, version, path) -> servable
        self._allow_unavailable = allow_labels_for_unavailable
        self._allow_labels = allow_labels
        self._on_loaded = list(on_loaded)  # hooks run before AVAILABLE (e.g. warmup)
        self._lock = threading.RLock()
        self._models = {}
        self.snapshot = Snapshot(_freeze({}))

    def add_load_hook(self, hook):
        """Run `hook(servable)` after each load, before the version becomes AVAILABLE."""
        self._on_loaded.append(hook)

    def _publish(self):
        self.snapshot = Snapshot(_freeze({
            name: ModelView(name, _freeze(model.servables), _freeze(model.states),
                            _freeze(model.labels))
            for name, model in self._models.items()}))

    def _set_state(self, model, version, state, error_code="OK", error_message=""):
        model.states[version] = VersionStatus(version, state, error_code, error_message)
        self._publish()

    def apply_config(self, model_configs, initial=False):
        """Serve exactly `model_configs`: load/unload versions and set their labels.

        As in TF Serving, a label may only point at a version that is AVAILABLE when the
        config is applied (unless labels for unavailable models are allowed): a change that
        both loads a version and labels it is refused whole with FailedPrecondition, and
        the previous config stays. The first config loads its versions before its labels
        are checked, as ServerCore waits for the initial models.
        """
        with self._lock:
            wanted = {config.name: config for config in model_configs}
            if not self._allow_labels and any(config.labels for config in model_configs):
                raise FailedPrecondition(
                    "Model version labels are not currently allowed by the server.")
            if not initial:
                for name, model_config in wanted.items():
                    self._checked_labels(self._models.get(name), model_config)
            for name in list(self._models):
                if name not in wanted:
                    log.info("Model %s is no longer in the config: unloading it", name)
                    model = self._models[name]
                    for version in sorted(model.servables):
                        self._unload(model, version)
                    del self._models[name]
                    self._publish()
            for name, model_config in wanted.items():
                model = self._models.setdefault(name, _Model(model_config))
                model.config = model_config
                self._reconcile(model)
            if initial:
                for name, model_config in wanted.items():
                    self._checked_labels(self._models[name], model_config)
            for name, model_config in wanted.items():
                self._models[name].labels = model_config.label_map
            self._publish()

    def _checked_labels(self, model, model_config):
        """Raise FailedPrecondition where a label of `model_config` may not be applied."""
        states = model.states if model else {}
        current = model.labels if model else {}
        for label, version in model_config.label_map.items():
            state = states.get(version)
            available = state is not None and state.state == AVAILABLE
            unchanged = current.get(label, version) == version
            if available or (self._allow_unavailable and unchanged):
                continue
            raise FailedPrecondition(
                f"Request to assign label to version {version} of model {model_config.name}, "
                "which is not currently available for inference")

    def poll_filesystem(self):
        """Load new versions and unload removed ones for every model, per its policy."""
        with self._lock:
            for model in list(self._models.values()):
                self._reconcile(model)

    def _reconcile(self, model):
        found = scan_versions(model.config.base_path)
        aspired = model.config.policy.select(found)
        if not found and not model.warned_empty:
            log.warning("No versions of servable %s found under base path %s",
                        model.config.name, model.config.base_path)
        model.warned_empty = not found
        failed = {v for v, s in model.states.items() if s.state == END and s.error_code != "OK"}
        for version in sorted(aspired - set(model.servables) - failed):
            self._load(model, version)
        for version in sorted(set(model.servables) - aspired):
            self._unload(model, version)
        for version in failed - found:
            del model.states[version]  # removed from disk: a later copy may load again
        self._publish()

    def _load(self, model, version):
        name = model.config.name
        path = os.path.join(model.config.base_path, str(version))
        self._set_state(model, version, START)
        self._set_state(model, version, LOADING)
        log.info("Loading servable: {name: %s version: %d}", name, version)
        try:
            servable = self._load_servable(name, version, path)
            for hook in self._on_loaded:
                hook(servable)
        except Exception as error:  # a bad version must not stop the others
            message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            log.error("Loading servable: {name: %s version: %d} failed: %s", name, version,
                      message)
            code = error.code if isinstance(error, ServingError) else "UNKNOWN"
            self._set_state(model, version, END, code, message)
            return
        model.servables[version] = servable
        freeze_heap()
        self._set_state(model, version, AVAILABLE)
        log.info("Successfully loaded servable version {name: %s version: %d}", name, version)

    def _unload(self, model, version):
        name = model.config.name
        self._set_state(model, version, UNLOADING)
        servable = model.servables.pop(version)
        self._publish()
        servable.unload()
        del servable
        gc.unfreeze()  # its objects were frozen after its load: collect them with the rest
        freeze_heap()
        self._set_state(model, version, END)
        log.info("Done unloading servable version {name: %s version: %d}", name, version)


def freeze_heap():
    """Collect, then move every object alive to the collector's permanent generation (gc.freeze).

    A loaded TensorFlow model is ~280k Python objects, and a full collection that walks them
    holds the GIL for ~140 ms: a pause every request in flight would wait out. Frozen, they are
    never walked again; objects of the requests stay in the young generations. An unload
    unfreezes everything for its own collection, so an unloaded version's cycles are freed.
    """
    gc.collect()
    gc.freeze()


class Poller:
    """Re-run `action` every `seconds` on a daemon thread until stopped."""

    def __init__(self, name, seconds, action):
        self._seconds = seconds
        self._action = action
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self):
        if self._seconds > 0:
            self._thread.start()
        return self

    def _loop(self):
        while not self._stop.wait(self._seconds):
            try:
                self._action()
            except Exception:  # keep polling: the next change may fix it
                log.exception("%s failed", self._thread.name)

    def stop(self):
        self._stop.set()


class ConfigReloader:
    """Re-read --model_config_file and apply it when its content changed or last failed."""

    def __init__(self, manager, path):
        self._manager = manager
        self._path = path
        self._applied = None

    def _read(self):
        with open(self._path, encoding="utf-8") as handle:
            return handle.read()

    def load_initial(self):
        """Apply the config at start; a config the server cannot apply stops the start."""
        try:
            text = self._read()
        except OSError as error:
            raise config_module.ConfigError(
                f"Cannot read model config file {self._path}: {error.strerror}") from None
        self._manager.apply_config(config_module.parse(text), initial=True)
        self._applied = text

    def reload(self):
        """Apply the config file again if it changed (or its last apply failed)."""
        try:
            text = self._read()
        except OSError as error:
            log.error("Cannot read model config file %s: %s", self._path, error.strerror)
            return
        if text == self._applied:
            return
        try:
            configs = config_module.parse(text)
            self._manager.apply_config(configs)
        except (config_module.ConfigError, FailedPrecondition) as error:
            log.error("HandleReloadConfigRequest failed: %s; keeping the previous config "
                      "and retrying at the next poll", error)
            return
        self._applied = text
        log.info("Applied model config from %s", self._path)
