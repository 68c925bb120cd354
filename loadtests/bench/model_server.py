"""Model server efficiency (HTTP against the in-process signature) and server-side batching."""
import json
import statistics
import subprocess
import sys
import time

from loadtests import payloads
from loadtests.bench import arithmetic, measure, servers

BATCH_SIZES = (1, 32, 128)
ROUNDS = 3  # the two sides of a figure alternate, as the gateway's do
IN_PROCESS_SECONDS = 2.0
# Batch-1 requests at c=32 are what batching is for: up to 32 rows per signature call; a zero
# timeout closes a batch with whatever queued while the previous one ran (no added latency).
# Two batch threads. One measured 1.36x on/off in a helper's run but 0.85x in the quiet bench
# (2 threads: 1.13x): batches hold only ~2.2 rows at c=32 (see optimisations.yaml).
BATCHING_PARAMETERS = ("max_batch_size { value: 32 }\nbatch_timeout_micros { value: 0 }\n"
                       "max_enqueued_batches { value: 64 }\nnum_batch_threads { value: 2 }\n")


def in_process(version_dir, rows_file, batch_sizes, seconds, tf_threads=0, timeout=300):
    """rows/s of the SavedModel's signature called in one process (python -m model.bench), with
    the model server's TensorFlow threads (--tensorflow_session_parallelism)."""
    done = subprocess.run([sys.executable, "-m", "model.bench", "--model-dir", str(version_dir),
                           "--rows-file", str(rows_file),
                           "--batch-sizes", ",".join(map(str, batch_sizes)),
                           "--seconds", str(seconds), "--tensorflow-session-parallelism", str(tf_threads)],
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"model.bench failed: {done.stderr.strip()[-1500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def efficiency(predict_url, pid, bodies, baseline, seconds):
    """rows/s over HTTP (c=1) at each batch size, and its ratio to the in-process rows/s."""
    runs, ratios = {}, {}
    idle = measure.idle_rates({"model_server": pid}, 0.5)
    for size, body in bodies.items():
        answer = servers.post_json(predict_url, body)
        runs[f"batch_{size}"] = run = measure.run(predict_url, seconds=seconds, pids={"model_server": pid},
                                                  rows=size, method="POST", body=body, idle=idle)
        run["stdlib_json_ms"] = stdlib_json_ms(body, answer)
        in_process_rows = baseline["rows_per_s"][str(size)]
        ratios[str(size)] = round(arithmetic.ratio(run["rows_per_s"], in_process_rows), 3)
    return runs, ratios


def measure_efficiency(predict_url, pid, version_dir, rows, seconds, scratch, batch_sizes=BATCH_SIZES,
                       rounds=ROUNDS, tf_threads=0):
    """The efficiency section: the in-process baseline, then HTTP, in alternating rounds; returns
    (baseline, runs, ratios).

    Each round measures both sides; a batch size's ratio is the median of its rounds' ratios.
    Measured once each, one side after the other, a change of the machine's speed within the
    run decided the figure: in one quiet run the in-process side ran at 458k rows/s and, half a
    minute later, the HTTP side at 120k while a pure-CPU JSON timing took 1.7x longer (0.26x,
    against 0.38-0.39x in the runs around it).
    """
    rows_file = scratch / "rows.json"
    rows_file.write_text(json.dumps(rows))
    bodies = {size: payloads.request_body([rows[i % len(rows)] for i in range(size)]) for size in batch_sizes}
    # The in-process call is steady after a second or two; a longer run only costs time.
    in_process_seconds = max(0.5, min(seconds, IN_PROCESS_SECONDS) / rounds)
    found = []
    for _ in range(rounds):
        baseline = in_process(version_dir, rows_file, batch_sizes, in_process_seconds, tf_threads)
        found.append((baseline, *efficiency(predict_url, pid, bodies, baseline, max(1.0, seconds / rounds))))
    runs = {}
    for name in found[0][1]:
        runs[name] = measure.merge([round_runs[name] for _, round_runs, _ in found])
        runs[name]["stdlib_json_ms"] = statistics.median(r[name]["stdlib_json_ms"] for _, r, _ in found)
    ratios = {size: round(statistics.median(r[size] for _, _, r in found), 3) for size in found[0][2]}
    return merge_baselines([b for b, _, _ in found]), runs, ratios


def merge_baselines(baselines):
    """One in-process baseline from several rounds: the median of each figure, calls added up."""
    def medians(key, source=lambda b: b):
        return {size: statistics.median(source(b)[key][size] for b in baselines)
                for size in source(baselines[0])[key]}

    merged = {"rows_per_s": medians("rows_per_s"), "median_call_ms": medians("median_call_ms"),
              "calls": {size: sum(b["calls"][size] for b in baselines) for size in baselines[0]["calls"]},
              "rounds": len(baselines), "tensorflow_threads": baselines[0].get("tensorflow_threads")}
    if "flat_call" in baselines[0]:
        merged["flat_call"] = {key: medians(key, lambda b: b["flat_call"]) for key in ("rows_per_s", "median_call_ms")}
    return merged


def stdlib_json_ms(body, answer, calls=50):
    """ms to parse the request and write the answer with the standard library's json: the floor
    of any Python server's JSON codec cost for this request, before its conversion to tensors."""
    started = time.perf_counter()
    for _ in range(calls):
        json.loads(body)
        json.dumps(answer)
    return round(1000 * (time.perf_counter() - started) / calls, 4)


def start_batching_server(models_dir, model, flags_extra, root):
    """A second model server on the same model with --enable_batching; (server, url)."""
    parameters = root / "batching.config"
    parameters.write_text(BATCHING_PARAMETERS)
    port = servers.free_port()
    flags = [f"--rest_api_port={port}", f"--port={servers.free_port()}", f"--model_name={model}",
             f"--model_base_path={models_dir / model}", "--enable_batching=true",
             f"--batching_parameters_file={parameters}", *flags_extra]
    server = servers.model_server(flags, None, root / "model-server-batching.log")
    url = f"http://127.0.0.1:{port}"
    server.wait_ready(lambda: servers.versions_available(url, model))
    return server, url


def batching(off_url, off_pid, on_url, on_pid, body, seconds, rounds=ROUNDS):
    """Batch-1 requests at c=32 and at c=1, batching off and on, in alternating rounds merged by
    measure.merge (a burst of outside work in one round hits both sides alike and does not decide
    a percentile; one 5 s run per side read the c=1 p50 ratio 1.03 and 1.10 in two quiet runs)."""
    for url in (off_url, on_url):
        measure.run(url, seconds=1, pids={}, connections=32, method="POST", body=body)
    sides = {}
    for side, url, pid in (("off", off_url, off_pid), ("on", on_url, on_pid)):
        pids = {"model_server": pid}
        sides[side] = {"url": url, "pids": pids, "idle": measure.idle_rates(pids, 0.5)}
    return measure.alternate(sides, concurrencies=(32, 1), rounds=rounds, seconds=seconds, method="POST", body=body)


def batching_figures(runs):
    on32, off32 = runs["on_c32"], runs["off_c32"]
    return {
        "batching_throughput_ratio_c32": round(arithmetic.ratio(on32["rps"], off32["rps"]), 3),
        "batching_p50_ratio_c1": round(arithmetic.ratio(runs["on_c1"]["p50_ms"], runs["off_c1"]["p50_ms"]), 3),
        "batching_model_server_cpu_ms_per_row_c32": {
            "off": off32["cpu_ms_per_request"]["model_server"],
            "on": on32["cpu_ms_per_request"]["model_server"]},
    }
