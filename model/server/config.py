"""Read which models to serve: from --model_name/--model_base_path or a ModelServerConfig file.

The file is TF Serving's own text format, parsed with protobuf's text_format into its own
`ModelServerConfig` message, so anything the real server reads is read here the same way.
"""
import dataclasses
import os

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2


class ConfigError(ValueError):
    """A config that tensorflow_model_server would refuse to apply."""


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
    """Which of the versions found on disk to serve: latest N, all, or specific ones."""

    kind: str = "latest"
    num_versions: int = 1
    versions: tuple = ()

    def select(self, found):
        """Return the versions to serve among `found` (ints on disk)."""
        found = sorted(set(found))
        if self.kind == "all":
            return set(found)
        if self.kind == "specific":
            return set(found) & set(self.versions)
        return set(found[-self.num_versions:]) if found else set()


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """One model: its name, where its versions live, which to serve and its labels."""

    name: str
    base_path: str
    policy: VersionPolicy = VersionPolicy()
    labels: tuple = ()  # ((label, version), ...), kept hashable and ordered.

    @property
    def label_map(self):
        return dict(self.labels)


def from_flags(model_name, model_base_path):
    """Return the single-model config that --model_name/--model_base_path describe."""
    return (ModelConfig(name=model_name, base_path=_absolute(model_base_path)),)


def read(path):
    """Return the model configs in the ModelServerConfig text file at `path`."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as error:
        raise ConfigError(f"Cannot read model config file {path}: {error.strerror}") from None
    return parse(text)


def parse(text):
    """Return the model configs in ModelServerConfig text `text`."""
    message = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as error:
        raise ConfigError(f"Invalid ModelServerConfig: {error}") from None
    if message.WhichOneof("config") == "custom_model_config":
        raise ConfigError("custom_model_config is not supported; use model_config_list")
    configs = tuple(_model(entry) for entry in message.model_config_list.config)
    names = [config.name for config in configs]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"Illegal to list model {name} multiple times in config list")
    return configs


def _model(entry):
    """Return the ModelConfig of one `config { ... }` entry."""
    if not entry.name:
        raise ConfigError("Every model config needs a name")
    if not entry.base_path:
        raise ConfigError(f"Model {entry.name} has no base_path")
    if entry.model_platform not in ("", "tensorflow"):
        raise ConfigError(f"Model {entry.name}: unsupported model_platform "
                          f"'{entry.model_platform}' (only 'tensorflow')")
    return ModelConfig(
        name=entry.name,
        base_path=_absolute(entry.base_path),
        policy=_policy(entry.model_version_policy),
        labels=tuple(sorted(entry.version_labels.items())),
    )


def _policy(policy):
    """Return the VersionPolicy of a FileSystemStoragePathSourceConfig.ServableVersionPolicy."""
    which = policy.WhichOneof("policy_choice")
    if which == "all":
        return VersionPolicy(kind="all")
    if which == "specific":
        if not policy.specific.versions:
            raise ConfigError("model_version_policy specific {} lists no versions")
        return VersionPolicy(kind="specific", versions=tuple(sorted(policy.specific.versions)))
    num_versions = policy.latest.num_versions if which == "latest" else 1
    return VersionPolicy(kind="latest", num_versions=max(num_versions, 1))


def _absolute(path):
    """Return `path` made absolute against the working directory, as the real server does."""
    return os.path.abspath(os.path.expanduser(path))
