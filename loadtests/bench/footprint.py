"""Footprint: API worker memory, API time to ready, local stack time to healthy."""
from loadtests.bench import procstat, servers


def worker_memory(master_pid):
    """RSS and PSS (MiB) of each gunicorn worker below the API's master process."""
    workers = []
    for pid in procstat.descendants(master_pid):
        memory = procstat.memory_kib(pid)
        workers.append({"pid": pid, "rss_mib": round(memory["rss_kib"] / 1024, 1),
                        "pss_mib": None if memory["pss_kib"] is None else round(memory["pss_kib"] / 1024, 1)})
    return workers


def api_time_to_ready(env, root, attempts=2):
    """Seconds from launching `tfship api` to its first 200 on /readyz (best of `attempts`)."""
    times = []
    for attempt in range(attempts):
        port = servers.free_port()
        api = servers.api(port, env, root / f"api-ready-{attempt}.log")
        try:
            times.append(api.wait_ready(lambda: servers.api_ready(f"http://127.0.0.1:{port}")))
        finally:
            api.stop()
    return {"seconds": [round(t, 3) for t in times], "best_s": round(min(times), 3)}
