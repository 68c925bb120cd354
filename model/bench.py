"""Rows/s of a SavedModel's signature called in process: the baseline the model server is held to.

`python -m model.bench --model-dir DIR --rows-file ROWS.json --batch-sizes 1,32,128 --seconds 3`
prints one JSON line: per batch size, rows/s and the median call time of the public signature
call (`signature(**tensors)`, the baseline), and under "flat_call" the same for the call the
model server makes (model/server/flat_call.py: the argument binding skipped), so a reader can
see how much of the server's figure comes from calling TensorFlow more cheaply. Same model,
same rows, same TensorFlow settings (the server's --tensorflow_session_parallelism is
passed as --tensorflow-session-parallelism). The rows file is a JSON
list of instances (TF Serving's row format, NaN allowed); each batch repeats them in order.
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


def run(model_dir, rows, batch_sizes, seconds, session_parallelism=0):
    import tensorflow as tf

    from model.server import flat_call, main as server_main

    if session_parallelism:  # as the model server's --tensorflow_session_parallelism
        server_main.set_tensorflow_threads(session_parallelism, session_parallelism)

    signature = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    specs = signature.structured_input_signature[1]
    flat = flat_call.prepare(signature, specs)
    result = {"rows_per_s": {}, "median_call_ms": {}, "calls": {},
              "tensorflow_threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                                     "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}}
    if flat is not None:
        result["flat_call"] = {"rows_per_s": {}, "median_call_ms": {}}
    for size in batch_sizes:
        inputs = {name: tf.constant(values, dtype=specs[name].dtype)
                  for name, values in columns(rows, size).items()}
        durations = measure(signature, inputs, seconds)
        result["rows_per_s"][str(size)] = round(size * len(durations) / sum(durations), 1)
        result["median_call_ms"][str(size)] = round(1000 * statistics.median(durations), 4)
        result["calls"][str(size)] = len(durations)
        if flat is not None:
            durations = measure(lambda **tensors: flat(tensors), inputs, seconds)
            result["flat_call"]["rows_per_s"][str(size)] = round(size * len(durations) / sum(durations), 1)
            result["flat_call"]["median_call_ms"][str(size)] = round(1000 * statistics.median(durations), 4)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m model.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True, help="one SavedModel version directory")
    parser.add_argument("--rows-file", required=True, help="JSON list of instances")
    parser.add_argument("--batch-sizes", default="1,32,128")
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per batch size")
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
    print(json.dumps(run(args.model_dir, rows, sizes, args.seconds, args.tensorflow_session_parallelism)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
