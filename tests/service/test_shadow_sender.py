"""Shadow mode's sender (service/shadow_sender.py) on its own: the job framing between a worker
and its sender process, the settings passed on, reading predicted classes, agreement, and
counts kept across a failed flush. Through the gateway: tests/service/test_shadow.py.
Budget: ~2 s.
"""
import pytest

from service import shadow_sender


@pytest.mark.parametrize("body", [b'{"instances": [1]}', b'{"a": "line\\n"}\n', b""])
def test_a_job_survives_its_framing(body):
    job = shadow_sender.Job("pen\nguins", 2, 3, body, b'{"predictions": []}', 0.0015, dropped=4)
    assert shadow_sender.decode(shadow_sender.encode(job)) == job
    with pytest.raises(ValueError, match="malformed shadow job header"):
        shadow_sender.decode(b"not json\n{}")


def test_only_the_sender_settings_are_passed_on():
    passed = shadow_sender.sender_settings({
        "MODEL_SERVER_URL": "http://x", "SHADOW_TIMEOUT_S": 1, "DATABASE_URL": "sqlite://",
        "SECRET_KEY": "never", "API_KEY_PEPPER": "never"})
    assert passed == {"MODEL_SERVER_URL": "http://x", "SHADOW_TIMEOUT_S": 1,
                      "DATABASE_URL": "sqlite://"}


@pytest.mark.parametrize("answer, classes", [
    ({"predictions": [{"class_name": "a"}, {"class_id": 2}, "junk"]}, ["a", 2, None]),
    ({"outputs": {"class_name": ["a", "b"], "class_id": [0, 1]}}, ["a", "b"]),
    ({"outputs": {"class_id": [0, 1]}}, [0, 1]),
    ({"outputs": {"probabilities": [[1.0]]}}, []),
    ("not json", []),
])
def test_row_classes_read_rows_and_columns(answer, classes):
    assert shadow_sender.row_classes(answer) == classes


def test_agreement_counts_stable_rows_and_missing_shadow_rows_disagree():
    assert shadow_sender.agreement(["a", "b", "c"], ["a", "x", "c"]) == (3, 2)
    assert shadow_sender.agreement(["a", "b"], ["a"]) == (2, 1)
    assert shadow_sender.agreement([None, "b"], [None, "b"]) == (2, 1)  # unreadable never agrees


def test_counts_survive_a_failed_flush(app_factory, data_dir):
    from service import db
    app = app_factory("postgresql+psycopg://nobody@127.0.0.1:9/none", DATABASE_TIMEOUT_S=0.5)
    comparer = shadow_sender.Comparer(app.config, lambda: db.engine(app))
    try:
        comparer._tallies[("penguins", 1, 2)] = shadow_sender.Tally(requests=3, rows=3, agreed=2)
        assert comparer.flush() == 0
        assert comparer._tallies[("penguins", 1, 2)].agreed == 2  # kept for the next flush
    finally:
        comparer.close(timeout=1)
