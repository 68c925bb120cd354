"""Slow clients and oversized bodies neither exhaust the workers nor block other callers.

Against a real gunicorn (2 gthread workers x 4 threads = 8 request threads): three times as many
connections as threads trickle their headers (slowloris), as many send whole headers and then
stall their body, others announce a 100 MB body, with and without a key. Meanwhile ordinary callers
are answered promptly; the oversized uploads get 413 (or 401) without their bodies being read, and
the incomplete requests 408 after READ_TIMEOUT_S (service/gunicorn_worker.py).

Budget: ~8 s.
"""
import socket
import threading
import time

import requests

from tests.service.reliability.conftest import bearer
from tests.service.reliability.stores import registry_with_keys

SLOW_CONNECTIONS = 24
HUGE = 100 * 1024 * 1024


def open_slow(port, payload):
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(payload)
    return sock


def trickle(sockets, stop):
    """Send one more header byte on every slow connection now and then (never a line end)."""
    while not stop.wait(0.5):
        for sock in list(sockets):
            try:
                sock.sendall(b"x")
            except OSError:
                sockets.remove(sock)


def read_status(sock):
    sock.settimeout(5)
    try:
        return sock.recv(64).split(b" ")[1].decode()
    except (OSError, IndexError):
        return "closed"


def test_slow_and_oversized_uploads_do_not_block_other_callers(tmp_path, start_api):
    settings, keys = registry_with_keys(tmp_path)
    api = start_api({**settings, "READ_TIMEOUT_S": 2}, workers=2)
    reader, admin = bearer(keys["reader"]), bearer(keys["admin"])
    for _ in range(10):  # every worker has booted and served
        requests.get(f"{api.url}/api/v1/models", headers={**reader, "Connection": "close"}, timeout=10)
    admin_head = "".join(f"{k}: {v}\r\n" for k, v in admin.items())
    # Whole headers, then a body that never comes.
    stalled_bodies = [open_slow(api.port, (
        f"POST /api/v1/models HTTP/1.1\r\nHost: x\r\n{admin_head}Content-Type: application/json"
        f"\r\nContent-Length: 100\r\n\r\n{{").encode()) for _ in range(SLOW_CONNECTIONS)]
    slow = [open_slow(api.port, b"GET /api/v1/models HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            for _ in range(SLOW_CONNECTIONS)]
    uploads = []
    for headers in (admin, {}):
        for _ in range(4):
            head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            uploads.append(open_slow(api.port, (
                f"POST /api/v1/models HTTP/1.1\r\nHost: x\r\n{head}Content-Type: application/json"
                f"\r\nContent-Length: {HUGE}\r\n\r\n{{\"name\": \"").encode()))
    stop = threading.Event()
    trickler = threading.Thread(target=trickle, args=(list(slow), stop), daemon=True)
    trickler.start()
    try:
        time.sleep(0.5)
        timings = []
        for _ in range(20):
            started = time.monotonic()
            answer = requests.get(f"{api.url}/api/v1/models", headers=reader, timeout=10)
            timings.append(time.monotonic() - started)
            assert answer.status_code == 200
        assert max(timings) < 1.0, timings
        statuses = sorted(read_status(sock) for sock in uploads)
        assert statuses == ["401"] * 4 + ["413"] * 4, statuses
        time.sleep(2)  # past READ_TIMEOUT_S: the incomplete requests are answered 408
        assert {read_status(sock) for sock in stalled_bodies + slow} == {"408"}
    finally:
        stop.set()
        trickler.join(timeout=5)
        for sock in slow + uploads + stalled_bodies:
            sock.close()
    assert requests.get(f"{api.url}/healthz", timeout=5).status_code == 200
