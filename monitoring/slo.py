"""Read the OpenSLO file for one profile into typed objects (pyyaml only: loadtests/ and infra/ import it)."""
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from monitoring.metrics import API_BUCKETS

SLO_FILE = Path(__file__).with_name("slo.yaml")
PROFILE_LABEL = "tfship.io/profile"
ANNOTATION = "tfship.io/"
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


class SLOFileError(ValueError):
    """The SLO file is malformed, or lacks the asked profile or a required field."""


@dataclass(frozen=True)
class Objective:
    """One SLO of one profile: a ratio indicator over raw counters, a target and a window."""

    name: str
    kind: str  # "availability" or "latency"
    description: str
    target: float
    window_seconds: int
    min_samples: int
    total_selector: str
    bad_selector: str | None = None  # availability: the errors
    good_selector: str | None = None  # latency: requests within the threshold
    latency_threshold_seconds: float | None = None

    @property
    def error_budget(self):
        """The share of requests allowed to be bad: 1 - target."""
        return round(1 - self.target, 12)


@dataclass(frozen=True)
class Gate:
    """What the post-deploy load test must meet; it reads nothing else."""

    p95_seconds: float
    p99_seconds: float
    max_error_ratio: float
    min_throughput_rps: float
    min_samples: int


@dataclass(frozen=True)
class Profile:
    """Every objective of one environment profile, and its gate."""

    name: str
    availability: Objective
    latency: Objective
    gate: Gate

    @property
    def objectives(self):
        return (self.availability, self.latency)

    @property
    def window_seconds(self):
        return self.availability.window_seconds


def parse_duration(text):
    """Seconds in an OpenSLO/Prometheus duration such as 30d, 1h30m or 10s."""
    parts = re.fullmatch(r"((\d+)[wdhms])+", str(text)) and re.findall(r"(\d+)([wdhms])", str(text))
    if not parts:
        raise SLOFileError(f"not a duration: {text!r}")
    return sum(int(n) * _UNIT_SECONDS[unit] for n, unit in parts)


def format_duration(seconds):
    """The shortest Prometheus duration for a whole number of seconds, e.g. 3600 -> 1h, 90 -> 1m30s."""
    if seconds <= 0 or seconds != int(seconds):
        raise SLOFileError(f"a window must be a positive whole number of seconds, not {seconds}")
    seconds, text = int(seconds), ""
    for unit in "dhms":
        count, seconds = divmod(seconds, _UNIT_SECONDS[unit])
        if count:
            text += f"{count}{unit}"
    return text


def profiles(path=SLO_FILE):
    """The profile names the file defines, in file order."""
    names = []
    for doc in _documents(path):
        name = doc["metadata"].get("labels", {}).get(PROFILE_LABEL) if doc["kind"] == "SLO" else None
        if name and name not in names:
            names.append(name)
    return tuple(names)


def load(profile, path=SLO_FILE):
    """The profile's availability and latency objectives and its gate thresholds."""
    docs = _documents(path)
    indicators = {d["metadata"]["name"]: d for d in docs if d["kind"] == "SLI"}
    slos = [d for d in docs if d["kind"] == "SLO" and d["metadata"].get("labels", {}).get(PROFILE_LABEL) == profile]
    if not slos:
        raise SLOFileError(f"no SLO in {path} has profile {profile!r}; known: {', '.join(profiles(path))}")
    objectives = {}
    for slo in slos:
        objective = _objective(slo, indicators)
        if objective.kind in objectives:
            raise SLOFileError(f"profile {profile!r} has two {objective.kind} SLOs")
        objectives[objective.kind] = (objective, slo["metadata"].get("annotations", {}))
    if set(objectives) != {"availability", "latency"}:
        raise SLOFileError(f"profile {profile!r} needs one availability and one latency SLO")
    (availability, avail_notes), (latency, latency_notes) = objectives["availability"], objectives["latency"]
    if availability.window_seconds != latency.window_seconds:
        raise SLOFileError(f"profile {profile!r}: its SLOs have different compliance windows")
    gate = Gate(
        p95_seconds=_number(latency_notes, "gate-p95-seconds", latency.name),
        p99_seconds=_number(latency_notes, "gate-p99-seconds", latency.name),
        max_error_ratio=_number(avail_notes, "gate-max-error-ratio", availability.name),
        min_throughput_rps=_number(avail_notes, "gate-min-throughput-rps", availability.name),
        min_samples=int(_number(avail_notes, "gate-min-samples", availability.name)),
    )
    return Profile(name=profile, availability=availability, latency=latency, gate=gate)


def _documents(path):
    try:
        docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]
    except (OSError, yaml.YAMLError) as error:
        raise SLOFileError(f"cannot read {path}: {error}") from error
    for doc in docs:
        if doc.get("apiVersion") != "openslo/v1" or "kind" not in doc or "name" not in doc.get("metadata", {}):
            raise SLOFileError(f"{path}: every document must be openslo/v1 with a kind and metadata.name")
    return docs


def _objective(slo, indicators):
    name, spec = slo["metadata"]["name"], slo["spec"]
    indicator = indicators.get(spec.get("indicatorRef"))
    if indicator is None:
        raise SLOFileError(f"SLO {name}: indicatorRef {spec.get('indicatorRef')!r} names no SLI")
    ratio = indicator["spec"].get("ratioMetric")
    if not ratio or not ratio.get("counter"):
        raise SLOFileError(f"SLI {indicator['metadata']['name']}: only ratioMetric over counters is supported")
    objectives, windows = spec.get("objectives") or [], spec.get("timeWindow") or []
    if len(objectives) != 1 or len(windows) != 1 or spec.get("budgetingMethod") != "Occurrences":
        raise SLOFileError(f"SLO {name}: needs one objective, one timeWindow and budgetingMethod Occurrences")
    target = float(objectives[0]["target"])
    if not 0 < target < 1:
        raise SLOFileError(f"SLO {name}: target {target} is not between 0 and 1")
    common = dict(
        name=name.removesuffix("-" + slo["metadata"]["labels"][PROFILE_LABEL]),
        description=spec.get("description", ""),
        target=target,
        window_seconds=parse_duration(windows[0]["duration"]),
        min_samples=int(_number(slo["metadata"].get("annotations", {}), "min-samples", name)),
        total_selector=_query(ratio, "total", name),
    )
    if "bad" in ratio:
        return Objective(kind="availability", bad_selector=_query(ratio, "bad", name), **common)
    threshold = _number(indicator["metadata"].get("annotations", {}), "latency-threshold-seconds", name)
    good = _query(ratio, "good", name)
    if threshold not in API_BUCKETS or threshold == int(threshold):
        # Whole numbers print as "1" in Prometheus 2 and "1.0" in 3: matching le by text would break.
        raise SLOFileError(f"SLO {name}: latency threshold {threshold} must be a fractional histogram bucket "
                           f"boundary, one of {[b for b in API_BUCKETS if b != int(b)]}")
    if f'le="{threshold:g}"' not in good:
        raise SLOFileError(f'SLO {name}: the good selector must match le="{threshold:g}"')
    return Objective(kind="latency", good_selector=good, latency_threshold_seconds=threshold, **common)


def _query(ratio, part, name):
    try:
        source = ratio[part]["metricSource"]
        if source["type"] != "Prometheus":
            raise SLOFileError(f"SLO {name}: the {part} metric source must be Prometheus")
        return source["spec"]["query"].strip()
    except (KeyError, TypeError) as error:
        raise SLOFileError(f"SLO {name}: missing {part}.metricSource.spec.query") from error


def _number(annotations, key, name):
    try:
        return float(annotations[ANNOTATION + key])
    except KeyError:
        raise SLOFileError(f"{name}: missing annotation {ANNOTATION}{key}") from None
    except ValueError:
        raise SLOFileError(f"{name}: annotation {ANNOTATION}{key} is not a number") from None
