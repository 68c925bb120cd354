"""Read and write TF Serving's ModelServerConfig text file (the subset the reconciler manages).

The reconciler owns the file: it keeps each model's name, base_path and platform, and sets its
version policy (``specific``) and labels. Reading accepts any policy (``tfship up`` and Pulumi
write ``all {}`` or ``latest``). The text format is parsed here rather than with protobuf, so the
reconciler needs neither TensorFlow nor TF Serving's generated protos.
"""
import os
import re
import tempfile
from dataclasses import dataclass, field

_TOKEN = re.compile(r'(?:\s|#[^\n]*)*(?:("(?:[^"\\]|\\.)*")|([A-Za-z0-9_.+-]+)|([{}:<>]))')


class ConfigFileError(ValueError):
    """The model config file cannot be read as a ModelServerConfig."""


@dataclass
class ModelEntry:
    """One `config { ... }` entry: model, versions to serve (None: not specific) and labels."""

    name: str
    base_path: str
    platform: str = "tensorflow"
    versions: tuple | None = None
    policy_text: str = "all {}"
    labels: dict = field(default_factory=dict)


def _tokens(text):
    position, text = 0, re.sub(r"(?:\s|#[^\n]*)*$", "", text)
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise ConfigFileError(f"unexpected text at offset {position}: "
                                  f"{text[position:position + 20]!r}")
        position = match.end()
        string, word, punct = match.groups()
        if string is not None:
            yield "str", bytes(string[1:-1], "utf-8").decode("unicode_escape")
        elif word is not None:
            yield "word", word
        else:
            yield "punct", punct


def _parse_message(tokens, closing=None):
    """Return [(name, value)] where value is a scalar or a nested list, until closing."""
    fields = []
    for kind, value in tokens:
        if kind == "punct" and value == closing:
            return fields
        if kind != "word":
            raise ConfigFileError(f"expected a field name, got {value!r}")
        name = value
        kind, value = next(tokens, (None, None))
        if kind == "punct" and value == ":":
            kind, value = next(tokens, (None, None))
        if kind == "punct" and value in ("{", "<"):
            fields.append((name, _parse_message(tokens, "}" if value == "{" else ">")))
        elif kind in ("str", "word"):
            fields.append((name, value))
        else:
            raise ConfigFileError(f"field {name!r} has no value")
    if closing is not None:
        raise ConfigFileError("unbalanced braces")
    return fields


def _get(fields, name, default=None):
    return next((value for key, value in fields if key == name), default)


def _policy(fields):
    """Return (specific versions or None, the policy's text when not specific)."""
    policy = _get(fields, "model_version_policy")
    if not policy:
        return None, "latest { num_versions: 1 }"
    kind, body = policy[0]
    if kind == "specific":
        return tuple(sorted(int(v) for key, v in body if key == "versions")), ""
    if kind == "latest":
        return None, f"latest {{ num_versions: {int(_get(body, 'num_versions', 1))} }}"
    return None, "all {}"


def parse(text):
    """Return the ModelEntry list of ModelServerConfig text."""
    try:
        root = _parse_message(_tokens(text))
        entries = []
        for key, body in (_get(root, "model_config_list") or []):
            if key != "config":
                continue
            versions, policy_text = _policy(body)
            labels = {str(_get(value, "key")): int(_get(value, "value"))
                      for field_name, value in body if field_name == "version_labels"}
            entries.append(ModelEntry(name=str(_get(body, "name")),
                                      base_path=str(_get(body, "base_path")),
                                      platform=str(_get(body, "model_platform", "tensorflow")),
                                      versions=versions, policy_text=policy_text, labels=labels))
    except (TypeError, ValueError, StopIteration) as error:
        raise ConfigFileError(f"not a ModelServerConfig: {error}") from None
    return entries


def read(path):
    """Return the ModelEntry list of the config file at path."""
    with open(path, encoding="utf-8") as handle:
        return parse(handle.read())


def _quoted(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(entries):
    """Return ModelServerConfig text for entries (specific versions where given)."""
    lines = ["model_config_list {"]
    for entry in entries:
        lines += ["  config {", f"    name: {_quoted(entry.name)}",
                  f"    base_path: {_quoted(entry.base_path)}",
                  f"    model_platform: {_quoted(entry.platform)}"]
        if entry.versions is not None:
            versions = " ".join(f"versions: {v}" for v in sorted(entry.versions))
            lines.append(f"    model_version_policy {{ specific {{ {versions} }} }}")
        else:
            lines.append(f"    model_version_policy {{ {entry.policy_text} }}")
        for label, version in sorted(entry.labels.items()):
            lines.append(f"    version_labels {{ key: {_quoted(label)} value: {version} }}")
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write(path, entries):
    """Replace the file at path with entries atomically (a poller never reads half a file)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix=".models.config.", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(render(entries))
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
