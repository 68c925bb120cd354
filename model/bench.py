"""Rows/s of a SavedModel's signature called in process: the baseline the model server is held to.

`python -m model.bench --model-dir DIR --rows-file ROWS.json --batch-sizes 1,32,128 --seconds 3`
prints one JSON line: per batch size, rows/s and the median call time of the public signature
call (`signature(**tensors)`, the baseline), and under "flat_call" the same for the call the
model server makes (model/server/flat_call.py: the argument binding skipped), so a reader can
see how much of the server's figure comes from calling TensorFlow more cheaply. Same model,
same rows, same TensorFlow settings (the server's --tensorflow_session_parallelism is
passed as --tensorflow-session-parallelism). The rows file is a JSON
list of instances (TF Serving's row format, NaN allowed); each batch repeats them in order.
With --serve it loads the model once and measures on request, one JSON line in and out, so a
benchmark can pair each in-process measurement with its HTTP one seconds apart.
"""
import argparse
import json
import statistics
import sys
import time


def columns(rows, batch_size):
    """The first `batch_size` rows (cycling) as one list per input name."""
    chosen = [rows[i % len(rows)] for i in range(batch_size)]
    return {name: [row[name] for row in chosen] for name in chosen[0]}


def measure(signature, inputs, seconds, min_calls=5):
    """Call signature(**inputs) repeatedly for `seconds`; return the call durations in seconds."""
    signature(**inputs)  # the first call traces and allocates
    durations = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(durations) < min_calls:
        started = time.perf_counter()
        signature(**inputs)
        durations.append(time.perf_counter() - started)
    return durations


class Baseline:
    """The version's signature loaded once in this process, measured at any batch size on request."""

    def __init__(self, model_dir, rows, session_parallelism=0):
        import tensorflow as tf

        from model.server import flat_call, main as server_main

        if session_parallelism:  # as the model server's --tensorflow_session_parallelism
            server_main.set_tensorflow_threads(session_parallelism, session_parallelism)
        self._tf, self.rows = tf, rows
        self.signature = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
        self.specs = self.signature.structured_input_signature[1]
        self.flat = flat_call.prepare(self.signature, self.specs)
        self.tensorflow_threads = {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                                   "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}

    def measure(self, size, seconds):
        """rows/s, the median call (ms) and the calls made of the public call at `size` rows,
        and under "flat_call" the same for the model server's call (None without one)."""
        tf = self._tf
        inputs = {name: tf.constant(values, dtype=self.specs[name].dtype)
                  for name, values in columns(self.rows, size).items()}
        found = _figures(size, measure(self.signature, inputs, seconds))
        flat = self.flat
        if flat is not None:
            found["flat_call"] = _figures(size, measure(lambda **tensors: flat(tensors), inputs, seconds))
        return found


def _figures(size, durations):
    return {"rows_per_s": round(size * len(durations) / sum(durations), 1),
            "median_call_ms": round(1000 * statistics.median(durations), 4), "calls": len(durations)}


def run(model_dir, rows, batch_sizes, seconds, session_parallelism=0):
    """Measure each batch size once; one result keyed by figure, then batch size."""
    baseline = Baseline(model_dir, rows, session_parallelism)
    result = {"rows_per_s": {}, "median_call_ms": {}, "calls": {},
              "tensorflow_threads": baseline.tensorflow_threads}
    if baseline.flat is not None:
        result["flat_call"] = {"rows_per_s": {}, "median_call_ms": {}}
    for size in batch_sizes:
        found = baseline.measure(size, seconds)
        for key in ("rows_per_s", "median_call_ms", "calls"):
            result[key][str(size)] = found[key]
        for key in result.get("flat_call", {}):
            result["flat_call"][key][str(size)] = found["flat_call"][key]
    return result


def serve(baseline, requests, out):
    """--serve: one JSON line in ({"batch_size": N, "seconds": S}), one JSON line of
    Baseline.measure out, until the input ends. A caller alternating with other measurements
    keeps TensorFlow loaded between them (its import takes seconds of CPU)."""
    out.write(json.dumps({"ready": True, "tensorflow_threads": baseline.tensorflow_threads}) + "\n")
    out.flush()
    for line in requests:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            size, seconds = int(request["batch_size"]), float(request["seconds"])
            if size < 1 or seconds < 0:
                raise ValueError("batch_size must be positive and seconds not negative")
        except (ValueError, KeyError, TypeError) as error:
            out.write(json.dumps({"error": f"bad request {line.strip()[:200]!r}: {error}"}) + "\n")
        else:
            out.write(json.dumps(dict(baseline.measure(size, seconds), batch_size=size)) + "\n")
        out.flush()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m model.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True, help="one SavedModel version directory")
    parser.add_argument("--rows-file", required=True, help="JSON list of instances")
    parser.add_argument("--batch-sizes", default="1,32,128")
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per batch size")
    parser.add_argument("--serve", action="store_true",
                        help="load once, then measure what each line of standard input asks "
                             '({"batch_size": N, "seconds": S}), one JSON line each')
    parser.add_argument("--tensorflow-session-parallelism", type=int, default=0,
                        help="TensorFlow's intra- and inter-op threads, as the model server's flag "
                             "of that name (0: TensorFlow's default)")
    args = parser.parse_args(argv)
    with open(args.rows_file) as handle:
        rows = json.load(handle)
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        parser.error("--rows-file must hold a non-empty JSON list of objects")
    sizes = [int(s) for s in args.batch_sizes.split(",") if s.strip().isdigit()]
    if not sizes or len(sizes) != len(args.batch_sizes.split(",")) or min(sizes) < 1:
        parser.error("--batch-sizes must be positive integers")
    if args.tensorflow_session_parallelism < 0:
        parser.error("--tensorflow-session-parallelism must be 0 or more")
    if args.serve:
        serve(Baseline(args.model_dir, rows, args.tensorflow_session_parallelism), sys.stdin, sys.stdout)
        return 0
    print(json.dumps(run(args.model_dir, rows, sizes, args.seconds, args.tensorflow_session_parallelism)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
