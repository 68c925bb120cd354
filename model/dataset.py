"""Load the shipped Palmer penguins data, split it reproducibly and describe it."""
import csv
import hashlib
import math
import random
from dataclasses import dataclass
from pathlib import Path

from model.features import CATEGORICAL, CLASSES, FEATURES, LABEL, MISSING_TOKEN, NUMERIC

DATA_FILE = Path(__file__).parent / "data" / "penguins.csv"


@dataclass
class Split:
    """Columns of raw feature values (floats with NaN, strings with "") and integer labels."""

    columns: dict
    labels: list

    def __len__(self):
        return len(self.labels)

    def rows(self):
        """The split as a list of per-row dicts (the row format clients send)."""
        return [{name: values[i] for name, values in self.columns.items()} for i in range(len(self))]


def read_rows(path=DATA_FILE):
    """Read the CSV into dicts of raw values: NaN for a missing number, "" for a missing category."""
    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        for record in csv.DictReader(handle):
            if record[LABEL] not in CLASSES:
                raise ValueError(f"{path}: unknown {LABEL} {record[LABEL]!r}")
            row = {LABEL: CLASSES.index(record[LABEL])}
            for feature in NUMERIC:
                raw = record[feature.name]
                row[feature.name] = math.nan if raw == MISSING_TOKEN else float(raw)
            for feature in CATEGORICAL:
                raw = record[feature.name]
                row[feature.name] = "" if raw == MISSING_TOKEN else raw
            rows.append(row)
    return rows


def file_sha256(path=DATA_FILE):
    """Hash the training data so a version records exactly what it learned from."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def split(rows, validation_fraction=0.2, seed=0):
    """Split stratified by class, so both sides see every species in proportion."""
    rng = random.Random(seed)
    train, validation = [], []
    for class_id in range(len(CLASSES)):
        members = [row for row in rows if row[LABEL] == class_id]
        rng.shuffle(members)
        cut = round(len(members) * validation_fraction)
        validation.extend(members[:cut])
        train.extend(members[cut:])
    rng.shuffle(train)
    rng.shuffle(validation)
    return _as_split(train), _as_split(validation)


def _as_split(rows):
    columns = {feature.name: [row[feature.name] for row in rows] for feature in FEATURES}
    return Split(columns=columns, labels=[row[LABEL] for row in rows])


def statistics(data):
    """Per-feature statistics of a split: ranges and moments, category shares, missing rates."""
    stats = {}
    for feature in NUMERIC:
        values = data.columns[feature.name]
        present = [v for v in values if not math.isnan(v)]
        mean = sum(present) / len(present)
        variance = sum((v - mean) ** 2 for v in present) / len(present)
        stats[feature.name] = {
            "min": min(present), "max": max(present), "mean": mean,
            "std": math.sqrt(variance) or 1.0,
            "missing_rate": (len(values) - len(present)) / len(values),
        }
    for feature in CATEGORICAL:
        values = data.columns[feature.name]
        present = [v for v in values if v != ""]
        counts = {}
        for value in present:
            counts[value] = counts.get(value, 0) + 1
        stats[feature.name] = {
            "categories": {k: counts[k] / len(present) for k in sorted(counts)},
            "missing_rate": (len(values) - len(present)) / len(values),
        }
    return stats
