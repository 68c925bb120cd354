"""Run every benchmark once, side by side on this machine, and gather the results."""
import copy
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loadtests import payloads
from loadtests.bench import (footprint, gateway, machine, model_server, postgres, registry_scale,
                             servers, targets)
from loadtests.bench.stack import MODEL, LocalStack

SECTIONS = ("gateway", "gateway_settings", "efficiency", "batching", "footprint", "registry", "load_generator")


_STARTED = time.monotonic()


def log(message):
    print(f"[bench {time.monotonic() - _STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


def ensure_model(models_dir, seed=1):
    """The newest exported version directory, training one (`tfship train`) when there is none."""
    model_dir = models_dir / MODEL
    versions = sorted(int(p.name) for p in model_dir.iterdir() if p.name.isdigit()) if model_dir.is_dir() else []
    if not versions:
        log(f"no exported model under {models_dir}: training one (seed {seed}) ...")
        servers.tfship("train", "--models-dir", str(models_dir), "--seed", str(seed), env=dict(os.environ),
                       timeout=600)
        versions = sorted(int(p.name) for p in model_dir.iterdir() if p.name.isdigit())
    return model_dir / str(versions[-1])


def rows_for(version_dir, count, seed=11):
    """Deterministic rows drawn from the export's schema and training statistics."""
    metadata = json.loads((version_dir / "assets.extra" / "tfship_metadata.json").read_text())
    return payloads.draw_rows(metadata["input_schema"], metadata["feature_statistics"], count,
                              random.Random(seed))


def run(models_dir, seconds, registry_models, sections=SECTIONS, out=log):
    """Run the chosen sections; return the results dict (figures, runs, verdicts, machine)."""
    results = new_results(seconds, registry_models)
    figures, runs = results["figures"], results["runs"]
    version_dir = ensure_model(models_dir)
    rows = rows_for(version_dir, max(model_server.BATCH_SIZES))
    bodies = {size: payloads.request_body(rows[:size]) for size in model_server.BATCH_SIZES}
    with tempfile.TemporaryDirectory(prefix="tfship-bench-") as scratch:
        root = Path(scratch)
        needs_stack = set(sections) & {"gateway", "gateway_settings", "efficiency", "batching", "footprint",
                                       "load_generator"}
        stack = LocalStack(root / "stack", models_dir) if needs_stack else None
        try:
            if stack:
                out("starting the local stack (tfship up) ...")
                stack.start()
                figures["stack_time_to_healthy_s"] = round(stack.seconds_to_healthy, 2)
            if "gateway" in sections:
                out("gateway: direct vs through the API at c=1 and c=8 ...")
                runs["gateway"] = gateway.run(stack, bodies[1], seconds)
                figures.update(gateway.figures(runs["gateway"]))
            if "gateway_settings" in sections and "gateway" in runs:
                out("gateway: other API worker settings at c=8 ...")
                runs["gateway_settings"] = gateway.variants(stack, bodies[1], seconds, root,
                                                            runs["gateway"]["direct_c8"]["rps"])
            if "footprint" in sections:
                out("footprint: API worker memory and time to ready ...")
                workers = footprint.worker_memory(stack.pid("api"))
                ready = footprint.api_time_to_ready(stack.api_env(), root)
                results["footprint"] = {"api_workers": workers, "api_time_to_ready": ready,
                                        "stack_time_to_healthy_s": figures["stack_time_to_healthy_s"]}
                figures["api_worker_rss_mib"] = max(w["rss_mib"] for w in workers)
                figures["api_time_to_ready_s"] = ready["best_s"]
            if "efficiency" in sections:
                out("model server efficiency: HTTP vs in-process at batch 1/32/128 ...")
                predict = f"{stack.model_server_url}/v1/models/{MODEL}/versions/{version_dir.name}:predict"
                baseline, runs["efficiency"], ratios = model_server.measure_efficiency(
                    predict, stack.pid("model-server"), version_dir, rows, seconds, root,
                    tf_threads=stack.settings.model_server_tf_threads)
                results["in_process"] = baseline
                results["efficiency_ratios"] = ratios
                figures["model_server_efficiency_b128"] = ratios.get("128")
            if "batching" in sections:
                out("server-side batching: on vs off ...")
                monitoring = stack.state / "monitoring.config"
                server, on_url = model_server.start_batching_server(
                    models_dir, MODEL, [f"--monitoring_config_file={monitoring}",
                                        f"--tensorflow_session_parallelism={stack.settings.model_server_tf_threads}"],
                    root)
                try:
                    path = f"/v1/models/{MODEL}/versions/{version_dir.name}:predict"
                    runs["batching"] = model_server.batching(
                        stack.model_server_url + path, stack.pid("model-server"), on_url + path, server.pid,
                        bodies[1], seconds)
                finally:
                    server.stop()
                figures.update(model_server.batching_figures(runs["batching"]))
            if "load_generator" in sections:
                out("load generator: Locust's saturation point ...")
                results["load_generator"] = locust_saturation(stack.api_url, seconds)
                figures["locust_saturation_rps"] = results["load_generator"]["saturation_rps"]
        finally:
            if stack and getattr(stack, "processes", None):
                stack.stop()
        if "registry" in sections:
            runs["registry"] = registry(root, registry_models, seconds, out)
            for name, run_ in runs["registry"].items():
                figures[f"registry_{name}_p99_ms"] = run_.get("p99_ms")
    return finish(results)


def new_results(seconds, registry_models):
    """An empty results dict: the machine, the settings, no figures yet."""
    return {"machine": machine.describe(), "started": time.monotonic(),
            "settings": {"seconds_per_run": seconds, "registry_models": registry_models},
            "figures": {}, "runs": {}}


def verdict_rows(figures):
    """Each target's row in the results: its key, figure, target text, value and verdict."""
    return [{"key": t.key, "figure": t.figure, "target": t.text, "value": value, "verdict": verdict}
            for t, value, verdict in targets.verdicts(figures)]


def finish(results):
    """Add the verdicts of every target, the run time and the closing load average."""
    results["verdicts"] = verdict_rows(results["figures"])
    results["duration_s"] = round(time.monotonic() - results.pop("started"), 1)
    results["load_average_at_end"] = machine.load_average()
    results["cpu_probe_at_end"] = machine.cpu_probe()
    return results


def combine(repeats):
    """One result from several whole runs: each target's figure is the median of the runs' own
    (a run that did not measure it left out) and its verdict follows that median. The figures and
    tables of the sections are the last run's, so each section's text stays one run's arithmetic;
    each run's target figures stay under "repeats"."""
    combined = copy.deepcopy(repeats[-1])
    medians = {}
    for target in targets.TARGETS:
        values = [r["figures"][target.key] for r in repeats
                  if isinstance(r["figures"].get(target.key), (int, float))]
        medians[target.key] = round(statistics.median(values), 3) if values else None
    combined["verdicts"] = verdict_rows(medians)
    combined["repeats"] = [{"figures": {v["key"]: v["value"] for v in r["verdicts"]},
                            "cpu_probe": [r["machine"].get("cpu_probe_at_start"), r.get("cpu_probe_at_end")],
                            "date": r["machine"]["date"], "duration_s": r["duration_s"]} for r in repeats]
    combined["duration_s"] = round(sum(r["duration_s"] for r in repeats), 1)
    return combined


def registry(root, models, seconds, out):
    found = {}
    out(f"registry: {models:,} models on SQLite ...")
    folder = root / "registry-sqlite"
    folder.mkdir()
    found["sqlite"] = registry_scale.measure_list(f"sqlite:///{folder / 'registry.sqlite3'}", folder, models,
                                                  seconds)
    if not postgres.installed():
        found["postgres"] = {"skipped": "PostgreSQL 15 is not installed (apt-get install postgresql-15)"}
        return found
    out(f"registry: {models:,} models on PostgreSQL ...")
    folder = root / "registry-postgres"
    folder.mkdir()
    database = postgres.TempPostgres()
    try:
        url = database.start()
        found["postgres"] = registry_scale.measure_list(url, folder, models, seconds, database_pid=database.pid)
    finally:
        database.stop()
    return found


def locust_saturation(host, seconds):
    done = subprocess.run([sys.executable, "-m", "loadtests.bench.locust_probe", "--host", host,
                           "--path", "/healthz", "--users", "16", "--seconds", str(seconds)],
                          capture_output=True, text=True, timeout=seconds + 120)
    if done.returncode != 0:
        raise RuntimeError(f"the Locust probe failed: {done.stderr.strip()[-1500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
