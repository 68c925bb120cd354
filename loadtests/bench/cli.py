"""`python -m loadtests.bench` (`make bench`, `tfship bench`): run the benchmarks, write the reports."""
import argparse
import sys
from pathlib import Path

from loadtests.bench import report, runner, wrk

DEFAULT_OUT = Path("build/bench")


def parse_args(argv, prog="python -m loadtests.bench"):
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time of each wrk run")
    parser.add_argument("--models-dir", type=Path, default=DEFAULT_OUT / "models",
                        help="exported models (penguins/N); one is trained here when there is none")
    parser.add_argument("--registry-models", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder of results.json")
    parser.add_argument("--markdown", type=Path, default=Path("BENCHMARKS.md"))
    parser.add_argument("--repeat", type=int, default=1,
                        help="whole runs; each target's verdict is then the median of the runs' figures")
    parser.add_argument("--only", default=",".join(runner.SECTIONS),
                        help=f"comma-separated sections: {','.join(runner.SECTIONS)}")
    args = parser.parse_args(argv)
    args.sections = tuple(s for s in args.only.split(",") if s)
    unknown = set(args.sections) - set(runner.SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    if args.seconds < 1 or args.registry_models < 3000:
        parser.error("--seconds must be at least 1 and --registry-models at least 3000")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv=None, prog="python -m loadtests.bench"):
    args = parse_args(sys.argv[1:] if argv is None else argv, prog)
    try:
        wrk.binary()
    except wrk.WrkError as error:
        print(f"[bench] {error}", file=sys.stderr)
        return 2
    repeats = []
    for number in range(1, args.repeat + 1):
        if args.repeat > 1:
            print(f"[bench] run {number} of {args.repeat}", file=sys.stderr, flush=True)
        repeats.append(runner.run(args.models_dir.absolute(), args.seconds, args.registry_models, args.sections))
    results = repeats[0] if len(repeats) == 1 else runner.combine(repeats)
    report.write_json(results, args.out / "results.json")
    args.markdown.write_text(report.markdown(results))
    print(report.table(results))
    print(f"\n[bench] {results['duration_s']} s; wrote {args.out / 'results.json'} and {args.markdown}")
    return 0


def run(command, argv):
    """`tfship bench ...`."""
    return main(argv, prog=f"tfship {command}")
