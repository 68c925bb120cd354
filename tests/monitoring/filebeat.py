"""Filebeat's `ndjson` parser, applied as its documentation defines it, with monitoring/elk/filebeat.yml's settings.

Filebeat cannot be installed here. Decode JSON; expand_keys de-dots keys into objects, merging, refusing
conflicts; target "" puts the document at the event's root; overwrite_keys lets it replace Filebeat's own keys.
"""
import json
from pathlib import Path

import yaml

ELK = Path(__file__).parents[2] / "monitoring" / "elk"


def filebeat_config():
    """monitoring/elk/filebeat.yml as a dict."""
    return yaml.safe_load((ELK / "filebeat.yml").read_text())


def ndjson_settings():
    """The ndjson parser's settings of the API's input."""
    (api_input,) = filebeat_config()["filebeat.inputs"]
    (settings,) = [parser["ndjson"] for parser in api_input["parsers"] if "ndjson" in parser]
    return settings


def _expand(document):
    """Filebeat's expand_keys: {"a.b": 1, "a": {"c": 2}} -> {"a": {"b": 1, "c": 2}}; conflicts are errors."""
    out = {}
    for key, value in document.items():
        value = _expand(value) if isinstance(value, dict) else value
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"cannot expand {key}: {part} is not an object")
        if isinstance(node.get(leaf), dict) and isinstance(value, dict):
            node[leaf] = _expand({**node[leaf], **value})
        elif leaf in node:
            raise ValueError(f"cannot expand {key}: {leaf} is set twice")
        else:
            node[leaf] = value
    return out


def decode(line, settings, event=None):
    """One log line through Filebeat's ndjson parser, as configured."""
    event = dict(event or {"message": line, "@timestamp": "filebeat-read-time"})
    document = json.loads(line)
    if settings.get("expand_keys"):
        document = _expand(document)
    target = settings.get("target", "json")
    if target:
        event[target] = document
        return event
    for key, value in document.items():
        if settings.get("overwrite_keys") or key not in event:
            event[key] = value
    return event

