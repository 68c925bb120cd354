"""The shipped data, its split and its statistics. Budget: 1 s (no TensorFlow)."""
import math

from model import dataset
from model.features import CATEGORICAL, CLASSES, FEATURES, NUMERIC


def test_reads_every_row_with_missing_values_defined():
    rows = dataset.read_rows()
    assert len(rows) == 344
    assert sum(math.isnan(r["bill_length_mm"]) for r in rows) == 2
    assert sum(r["sex"] == "" for r in rows) == 11
    assert {r["species"] for r in rows} == set(range(len(CLASSES)))


def test_split_is_disjoint_stratified_and_reproducible():
    rows = dataset.read_rows()
    train, validation = dataset.split(rows, 0.2, seed=7)
    assert len(train) + len(validation) == len(rows)
    keys = lambda s: {tuple(str(r[f.name]) for f in FEATURES) for r in s.rows()}  # noqa: E731
    assert len(train) > 4 * len(validation) * 0.9
    for class_id in range(len(CLASSES)):
        share_all = sum(r["species"] == class_id for r in rows) / len(rows)
        share_val = validation.labels.count(class_id) / len(validation)
        assert abs(share_all - share_val) < 0.03
    again, _ = dataset.split(rows, 0.2, seed=7)
    assert again.labels == train.labels
    other, _ = dataset.split(rows, 0.2, seed=8)
    assert other.labels != train.labels
    assert keys(train) - keys(validation)


def test_statistics_describe_ranges_categories_and_missing_rates():
    train, _ = dataset.split(dataset.read_rows())
    stats = dataset.statistics(train)
    for feature in NUMERIC:
        s = stats[feature.name]
        assert s["min"] <= s["mean"] <= s["max"] and s["std"] > 0
        assert 0 <= s["missing_rate"] < 0.05
    for feature in CATEGORICAL:
        assert math.isclose(sum(stats[feature.name]["categories"].values()), 1.0)
    assert set(stats["island"]["categories"]) == {"Biscoe", "Dream", "Torgersen"}
    assert set(stats["sex"]["categories"]) == {"female", "male"}
    assert stats["sex"]["missing_rate"] > 0


def test_data_hash_changes_with_the_data(tmp_path):
    copy = tmp_path / "p.csv"
    copy.write_bytes(dataset.DATA_FILE.read_bytes())
    assert dataset.file_sha256(copy) == dataset.file_sha256()
    copy.write_bytes(dataset.DATA_FILE.read_bytes() + b"\n")
    assert dataset.file_sha256(copy) != dataset.file_sha256()
