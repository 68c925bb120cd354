"""API workers killed (SIGKILL) in the middle of writes: every write is one transaction, so the
registry holds no partial rows (a model without all its tags or with a cut description), no acknowledged write is lost, and gunicorn's replacement workers carry on.

Budget: ~6 s (one gunicorn with 2 workers on SQLite, 8 writers writing until the third of three
kills 0.4 s apart, at most 2000 writes).
"""
import concurrent.futures
import os
import signal
import sqlite3
import threading
import time

import requests

from tests.service.reliability.conftest import bearer
from tests.service.reliability.stores import registry_with_keys

TAGS = [f"tag-{i}" for i in range(8)]
WRITERS, MAX_WRITES = 8, 2000


def test_no_partial_rows_after_workers_die_mid_write(tmp_path, start_api):
    settings, keys = registry_with_keys(tmp_path)
    api = start_api(settings, workers=2)
    admin = bearer(keys["admin"])
    acknowledged, lost_connections = [], []

    def write(index):
        name = f"w-{index}"
        try:
            answer = requests.post(f"{api.url}/api/v1/models", headers=admin, timeout=15,
                                   json={"name": name, "tags": TAGS, "description": "x" * 2000})
            if answer.status_code == 201:
                acknowledged.append(name)
            else:
                assert answer.status_code in (503,), answer.text
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
            lost_connections.append(name)  # its worker died: the write may or may not exist

    killed = threading.Event()

    def kill_workers():
        for _ in range(3):
            time.sleep(0.4)
            victim = api.worker_pids()[0]
            os.kill(victim, signal.SIGKILL)
        killed.set()

    def writer(first):
        # Writes go on until the last kill (a fixed count once all finished before the first kill
        # when the API got faster), bounded by MAX_WRITES.
        for index in range(first, MAX_WRITES, WRITERS):
            if killed.is_set():
                return
            write(index)

    killer = threading.Thread(target=kill_workers)
    with concurrent.futures.ThreadPoolExecutor(WRITERS) as pool:
        killer.start()
        futures = [pool.submit(writer, first) for first in range(WRITERS)]
        killer.join(timeout=30)
        for future in futures:
            future.result(timeout=60)
    assert lost_connections, "no write was cut off: the kills came too late to test anything"
    database = settings["DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(database, timeout=10) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = dict(connection.execute(
            "SELECT m.name, COUNT(t.tag) FROM models m LEFT JOIN model_tags t "
            "ON t.model_id = m.id WHERE m.name LIKE 'w-%' GROUP BY m.name").fetchall())
        descriptions = {len(d) for (d,) in connection.execute(
            "SELECT description FROM models WHERE name LIKE 'w-%'")}
    assert set(acknowledged) <= set(rows), "an acknowledged write was lost"
    assert set(rows.values()) == {len(TAGS)}, "a model was stored without all its tags"
    assert descriptions == {2000}
    # The replacement workers serve, and reads see every stored model.
    listing = requests.get(f"{api.url}/api/v1/models?name=w-&per_page=1", headers=admin, timeout=10)
    assert listing.status_code == 200 and listing.json()["total"] == len(rows)
