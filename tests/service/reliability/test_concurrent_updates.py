"""Fifty concurrent conflicting If-Match updates of one model, through a real gunicorn (2 workers
x 4 threads) on SQLite and on PostgreSQL: exactly one wins, the other 49 get 412, and the row
holds exactly the winner's contents.

Budget: ~6 s (two gunicorn starts; PostgreSQL is the session's).
"""
import concurrent.futures
import threading

import pytest
import requests

from tests.service.reliability.conftest import bearer
from tests.service.reliability.stores import registry_with_keys

WRITERS = 50


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_exactly_one_of_fifty_conflicting_updates_wins(database, request, tmp_path, start_api):
    url = request.getfixturevalue("postgres_url") if database == "postgres" else None
    settings, keys = registry_with_keys(tmp_path, url=url)
    api = start_api(settings, workers=2)
    admin = bearer(keys["admin"])
    name = f"contended-{database}"
    created = requests.post(f"{api.url}/api/v1/models", json={"name": name, "owner": "start"},
                            headers=admin, timeout=10)
    assert created.status_code == 201, created.text
    etag = created.headers["ETag"]
    barrier = threading.Barrier(WRITERS)

    def update(index):
        with requests.Session() as session:
            session.get(f"{api.url}/healthz", timeout=10)  # connect before the race
            barrier.wait(timeout=30)
            return index, session.patch(
                f"{api.url}/api/v1/models/{name}", headers={**admin, "If-Match": etag},
                json={"description": f"writer {index}", "owner": f"owner-{index}"}, timeout=30)

    try:
        with concurrent.futures.ThreadPoolExecutor(WRITERS) as pool:
            answers = list(pool.map(update, range(WRITERS)))
        statuses = sorted(answer.status_code for _, answer in answers)
        assert statuses == [200] + [412] * (WRITERS - 1), statuses
        winner = next(index for index, answer in answers if answer.status_code == 200)
        for _, answer in answers:
            if answer.status_code == 412:
                assert answer.json()["error"]["field"] == "If-Match"
        stored = requests.get(f"{api.url}/api/v1/models/{name}", headers=admin, timeout=10)
        body = stored.json()
        assert body["description"] == f"writer {winner}" and body["owner"] == f"owner-{winner}"
        assert stored.headers["ETag"] not in (etag,)
    finally:
        requests.delete(f"{api.url}/api/v1/models/{name}", headers=admin, timeout=10)
