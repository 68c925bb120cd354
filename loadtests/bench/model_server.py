"""Model server efficiency (HTTP against the in-process signature) and server-side batching."""
import json
import select
import statistics
import subprocess
import sys
import time

from loadtests import payloads
from loadtests.bench import arithmetic, measure, servers

BATCH_SIZES = (1, 32, 128)
ROUNDS = 3  # the two sides of a figure alternate, as the gateway's do
# The efficiency section pairs each in-process measurement with its HTTP run seconds apart, in
# more and shorter rounds: the machine's speed drifts within a run (see measure_efficiency).
EFFICIENCY_ROUNDS = 5
IN_PROCESS_SECONDS = 0.4
# Batch-1 requests at c=32 are what batching is for: up to 32 rows per signature call; a zero
# timeout closes a batch with whatever queued while the previous one ran (no added latency).
# Two batch threads. One measured 1.36x on/off in a helper's run but 0.85x in the quiet bench
# (2 threads: 1.13x): batches hold only ~2.2 rows at c=32 (see optimisations.yaml).
BATCHING_PARAMETERS = ("max_batch_size { value: 32 }\nbatch_timeout_micros { value: 0 }\n"
                       "max_enqueued_batches { value: 64 }\nnum_batch_threads { value: 2 }\n")


class InProcess:
    """`python -m model.bench --serve`: the SavedModel's signature loaded once in a process of its
    own, with the model server's TensorFlow threads (--tensorflow_session_parallelism), measured
    on request: measure(batch size, seconds) -> rows/s, median call, calls (and flat_call)."""

    def __init__(self, version_dir, rows_file, log_path, tf_threads=0, timeout_s=300):
        self.log_path, self.timeout_s = log_path, timeout_s
        with open(log_path, "ab") as log:  # TensorFlow's lines: a file, never a pipe nobody reads
            self.process = subprocess.Popen(
                [sys.executable, "-m", "model.bench", "--serve", "--model-dir", str(version_dir),
                 "--rows-file", str(rows_file), "--tensorflow-session-parallelism", str(tf_threads)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
        self.tensorflow_threads = self._answer()["tensorflow_threads"]

    def measure(self, batch_size, seconds):
        self.process.stdin.write(json.dumps({"batch_size": batch_size, "seconds": seconds}) + "\n")
        self.process.stdin.flush()
        return self._answer()

    def _answer(self):
        # One line per request, written whole: nothing is left buffered between answers.
        if not select.select([self.process.stdout], [], [], self.timeout_s)[0]:
            self.process.kill()
            self.close()
            raise RuntimeError(f"model.bench --serve did not answer in {self.timeout_s} s; see {self.log_path}")
        line = self.process.stdout.readline()
        found = json.loads(line) if line.strip() else None
        if not found or "error" in found:
            self.close()
            detail = found["error"] if found else f"it exited; see {self.log_path}"
            raise RuntimeError(f"model.bench --serve failed: {detail}")
        return found

    def close(self):
        try:
            self.process.stdin.close()  # its loop ends with its input
        except BrokenPipeError:  # it had exited
            pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def measure_efficiency(predict_url, pid, version_dir, rows, seconds, scratch, batch_sizes=BATCH_SIZES,
                       rounds=EFFICIENCY_ROUNDS, tf_threads=0):
    """The efficiency section: rows/s over HTTP (wrk, c=1) at each batch size against the same
    rows in process; returns (baseline, runs, ratios).

    In each of `rounds` rounds every batch size is measured in process (one process keeps the
    model loaded) and right after over HTTP, and that pair gives the round's ratio; a batch
    size's ratio is the median of its rounds'. Measured once each, one side after the other, a
    change of the machine's speed within the run decided the figure: in one quiet run the
    in-process side ran at 458k rows/s and, half a minute later, the HTTP side at 120k while a
    pure-CPU JSON timing took 1.7x longer (0.26x, against 0.38-0.39x in the runs around it).
    """
    rows_file = scratch / "rows.json"
    rows_file.write_text(json.dumps(rows))
    bodies = {size: payloads.request_body([rows[i % len(rows)] for i in range(size)]) for size in batch_sizes}
    http_seconds = max(1.0, seconds / rounds)
    idle = measure.idle_rates({"model_server": pid}, 0.5)
    answers = {size: servers.post_json(predict_url, body) for size, body in bodies.items()}
    pairs = {size: [] for size in batch_sizes}
    with InProcess(version_dir, rows_file, scratch / "model-bench.log", tf_threads) as baseline:
        for _ in range(rounds):
            for size, body in bodies.items():
                in_process = baseline.measure(size, IN_PROCESS_SECONDS)
                run = measure.run(predict_url, seconds=http_seconds, pids={"model_server": pid}, rows=size,
                                  method="POST", body=body, idle=idle)
                pairs[size].append((in_process, run))
        threads = baseline.tensorflow_threads
    runs, ratios = {}, {}
    for size, found in pairs.items():
        runs[f"batch_{size}"] = run = measure.merge([http for _, http in found])
        run["stdlib_json_ms"] = stdlib_json_ms(bodies[size], answers[size])
        ratios[str(size)] = round(statistics.median(
            arithmetic.ratio(http["rows_per_s"], in_process["rows_per_s"]) for in_process, http in found), 3)
    return merge_baselines(pairs, threads), runs, ratios


def merge_baselines(pairs, tensorflow_threads):
    """One in-process baseline from the rounds' measurements ({size: [(in-process, http)]}): the
    median of each figure per batch size, calls added up."""
    def medians(key, source=lambda found: found):
        return {str(size): statistics.median(source(in_process)[key] for in_process, _ in found)
                for size, found in pairs.items()}

    first = next(iter(pairs.values()))
    merged = {"rows_per_s": medians("rows_per_s"), "median_call_ms": medians("median_call_ms"),
              "calls": {str(size): sum(in_process["calls"] for in_process, _ in found)
                        for size, found in pairs.items()},
              "rounds": len(first), "tensorflow_threads": tensorflow_threads}
    if "flat_call" in first[0][0]:
        merged["flat_call"] = {key: medians(key, lambda found: found["flat_call"])
                               for key in ("rows_per_s", "median_call_ms")}
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
