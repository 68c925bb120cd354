"""Dynamic batching: rows go back to the right callers, full queues answer 503 at once.

Time budget: ~8 s (concurrent calls on the session server, in-process batchers, real loads).
"""
import concurrent.futures
import os
import threading
import time

import numpy as np
import pytest

from model.server import batching
from model.server.errors import InvalidArgument, Unavailable
from model.server.servable import Servable

from .conftest import WARM_MODEL
from .fixture_models import MODEL_NAME

PREDICT = f"/v1/models/{WARM_MODEL}:predict"


def rows_for(caller, count):
    return [[caller * 100.0 + row, float(caller), float(row)] for row in range(count)]


def test_concurrent_calls_of_mixed_sizes_get_their_own_rows(server):
    callers = 12
    sizes = [1 + caller % 4 for caller in range(callers)]
    start = threading.Barrier(callers)

    def call(caller):
        x = rows_for(caller, sizes[caller])
        start.wait(timeout=30)
        response = server.post(PREDICT, json={"signature_name": "rowcount",
                                                      "instances": x})
        assert response.status_code == 200, response.text
        return x, response.json()["predictions"]

    with concurrent.futures.ThreadPoolExecutor(callers) as pool:
        results = list(pool.map(call, range(callers)))
    batched_with_others = 0
    for x, predictions in results:
        assert [p["y"] for p in predictions] == x  # factor 1: exactly this caller's rows
        batch_rows = {p["rows"] for p in predictions}
        assert len(batch_rows) == 1
        (batch,) = batch_rows
        assert len(x) <= batch <= 8
        batched_with_others += batch > len(x)
    assert batched_with_others > 0, "no call shared a batch"


def test_a_call_larger_than_max_batch_size_is_refused(server):
    response = server.post(PREDICT, json={"signature_name": "rowcount",
                                                  "inputs": {"x": rows_for(0, 9)}})
    assert response.status_code == 400
    assert response.json() == {"error": "Task size 9 is larger than maximum input batch size 8"}


@pytest.fixture(scope="module")
def servable(model_bases):
    loaded = Servable(MODEL_NAME, 1, os.path.join(model_bases[MODEL_NAME], "1"))
    yield loaded
    loaded.unload()


def test_full_queue_answers_unavailable_without_waiting(servable):
    options = batching.BatchingOptions(max_batch_size=4, batch_timeout_micros=500_000,
                                       max_enqueued_batches=1, num_batch_threads=1)
    batcher = batching.Batcher(servable, options)
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            first = pool.submit(batcher.run, "rowcount",
                                {"x": np.ones((1, 3), np.float32)})
            time.sleep(0.1)  # the first call now holds the only batch, waiting to fill
            started = time.monotonic()
            with pytest.raises(Unavailable, match="queue to which this task was submitted "
                                                  "is full") as refused:
                batcher.run("rowcount", {"x": np.ones((4, 3), np.float32)})
            assert time.monotonic() - started < 0.2
            assert refused.value.http_status == 503
            assert first.result(timeout=10)["rows"].tolist() == [1]
    finally:
        batcher.close()


def test_allowed_batch_sizes_pad_and_callers_get_unpadded_rows(servable):
    options = batching.BatchingOptions(max_batch_size=4, allowed_batch_sizes=(2, 4),
                                       num_batch_threads=1)
    batcher = batching.Batcher(servable, options)
    try:
        x = np.arange(9, dtype=np.float32).reshape(3, 3)
        outputs = batcher.run("rowcount", {"x": x})
        assert outputs["rows"].tolist() == [4, 4, 4]
        assert np.allclose(outputs["y"], x)
    finally:
        batcher.close()


def test_inputs_with_different_row_counts_are_refused(servable):
    batcher = batching.Batcher(servable, batching.BatchingOptions(num_batch_threads=1))
    try:
        with pytest.raises(InvalidArgument, match="equal 0th-dimension size"):
            batcher.run("serving_default", {"a": np.ones(2, np.float32),
                                            "b": np.ones((1, 2), np.float32),
                                            "c": np.array([b"x"], object)})
    finally:
        batcher.close()


def test_batching_parameters_file(tmp_path):
    path = tmp_path / "batching.config"
    path.write_text("max_batch_size { value: 128 } batch_timeout_micros { value: 0 } "
                    "max_enqueued_batches { value: 4 } num_batch_threads { value: 2 } "
                    "allowed_batch_sizes: 64 allowed_batch_sizes: 128")
    options = batching.BatchingOptions.read(str(path))
    assert (options.max_batch_size, options.batch_timeout_micros, options.max_enqueued_batches,
            options.num_batch_threads, options.allowed_batch_sizes) == (128, 0, 4, 2, (64, 128))
    assert batching.BatchingOptions.read("").max_batch_size == 1000
    path.write_text("max_batch_size { value: 100 } allowed_batch_sizes: 64")
    with pytest.raises(InvalidArgument, match="must match max_batch_size"):
        batching.BatchingOptions.read(str(path))


def test_a_lone_call_runs_its_batch_in_the_callers_thread(servable):
    import threading

    batcher = batching.Batcher(servable, batching.BatchingOptions(num_batch_threads=2))
    threads = []
    real_run = servable.run
    try:
        servable.run = lambda *args: (threads.append(threading.get_ident()), real_run(*args))[1]
        outputs = batcher.run("rowcount", {"x": np.ones((2, 3), np.float32)})
        assert outputs["rows"].tolist() == [2, 2]
        assert threads == [threading.get_ident()]  # no hand-off to a batch thread and back
    finally:
        del servable.run
        batcher.close()


def test_calls_arriving_while_every_batch_thread_is_busy_merge(servable):
    batcher = batching.Batcher(servable, batching.BatchingOptions(num_batch_threads=1))
    release, entered = threading.Event(), threading.Event()
    real_run = servable.run

    def held_run(key, inputs):
        if not entered.is_set():  # the first (lone) call holds the only batch thread
            entered.set()
            assert release.wait(timeout=10)
        return real_run(key, inputs)

    try:
        servable.run = held_run
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            first = pool.submit(batcher.run, "rowcount", {"x": np.ones((1, 3), np.float32)})
            assert entered.wait(timeout=10)
            later = [pool.submit(batcher.run, "rowcount", {"x": np.full((1, 3), n, np.float32)})
                     for n in range(3)]
            time.sleep(0.2)  # the three calls queue behind the busy thread
            release.set()
            assert first.result(timeout=10)["rows"].tolist() == [1]
            outputs = [call.result(timeout=10) for call in later]
        assert [o["rows"].tolist() for o in outputs] == [[3]] * 3  # one batch of three
        assert [o["y"][0, 0] for o in outputs] == [0.0, 1.0, 2.0]
    finally:
        del servable.run
        batcher.close()


def test_a_lone_call_waits_out_a_batch_timeout(servable):
    batcher = batching.Batcher(servable, batching.BatchingOptions(
        batch_timeout_micros=200_000, num_batch_threads=1))
    try:
        started = time.monotonic()
        assert batcher.run("rowcount", {"x": np.ones((1, 3), np.float32)})["rows"].tolist() == [1]
        assert time.monotonic() - started >= 0.19
    finally:
        batcher.close()
