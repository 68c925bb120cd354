"""`tfship verify`: run the SLO gate (Locust, headless) against an environment and print its verdict.

The gate's thresholds come from monitoring/slo.yaml (the profile named like the environment).
Target URL: local is the local stack's API (its keys, from `tfship up`, are used unless others
are given); dev, staging and prod need the stack's exported URL, read from
infra/outputs/<env>.json ("api_url") when that file exists, else given with --url (there is
no Pulumi CLI to ask). Exit codes: 0 PASS, 1 FAIL, 3 INCONCLUSIVE, 4 FAIL because the load
generator saturated, 2 usage errors.
"""
import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

from infra.local.settings import LocalSettings
from loadtests import load_plan, report
from loadtests.protocol import ENVIRONMENTS, SHAPES
from loadtests.verdict import EXIT_CODES, INCONCLUSIVE

LOADTESTS = Path(__file__).resolve().parent
STACK_OUTPUTS = LOADTESTS.parent / "infra" / "outputs"
EXIT_USAGE = 2
GRACE_SECONDS = 60  # Locust's start, the users' stop and the reports, beyond the shape's duration


class UsageError(Exception):
    """The command line cannot be run as given."""


def parser():
    p = argparse.ArgumentParser(prog="tfship verify", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", choices=ENVIRONMENTS, required=True, help="environment under test")
    p.add_argument("--url", help="the API's base URL (default: see above)")
    p.add_argument("--shape", choices=SHAPES, default="smoke", help="load shape (default: smoke)")
    p.add_argument("--api-key-file", help="API key of the registry personas (default: $TFSHIP_API_KEY)")
    p.add_argument("--predict-api-key-file",
                   help="the predictor's API key (default: $TFSHIP_PREDICT_API_KEY, else the registry key)")
    p.add_argument("--out", type=Path, help="report folder (default: .tfship/verify/<env>-<time>)")
    p.add_argument("--model", default=LocalSettings.from_env().model_name, help="model to predict with")
    p.add_argument("--profile", help="SLO profile to judge against (default: the environment's; "
                                     "'test' is the compressed one the tests use)")
    p.add_argument("--hold-seconds", type=float, default=0.0,
                   help="seconds at full load (default: sized from the profile's minimum samples)")
    p.add_argument("--prediction-rps", type=int, default=0,
                   help="steady prediction rate (default: the environment's, in loadtests/load_plan.py)")
    p.add_argument("--warmup-seconds", type=float, default=load_plan.WARMUP_SECONDS,
                   help="seconds at the start that the gate does not judge (spawning, cold caches)")
    p.add_argument("--max-generator-cpu", type=float, default=0.9,
                   help="share of a core the load generator may use before the run is untrustworthy")
    p.add_argument("--canary-max-error-delta", type=float, default=0.01)
    p.add_argument("--canary-max-latency-ratio", type=float, default=1.5)
    p.add_argument("--canary-min-samples", type=int, default=50)
    return p


def target_url(env, url=None, outputs=STACK_OUTPUTS):
    """The API's base URL for an environment (see the module docstring)."""
    if url:
        return url.rstrip("/")
    if env == "local":
        return LocalSettings.from_env().api_url
    stack_file = outputs / f"{env}.json"
    if stack_file.is_file():
        found = json.loads(stack_file.read_text()).get("api_url")
        if found:
            return found.rstrip("/")
    raise UsageError(f"no URL for {env}: pass --url with the Pulumi stack's exported api_url "
                     f"(or write it to {stack_file} as {{\"api_url\": ...}})")


def locustfiles(env):
    """The shape and the personas that may run against env: never the registry writer against prod."""
    personas = ["predict.py", "registry_reader.py"] + ([] if env == "prod" else ["registry_writer.py"])
    return [str(LOADTESTS / name) for name in ["shapes.py", *personas]]


def locust_command(args, url, out):
    """The headless Locust command line of a gate run (no secrets: keys travel as file paths)."""
    command = [sys.executable, "-m", "locust", "-f", ",".join(locustfiles(args.env)), "--headless",
               "--only-summary", "--host", url, "--csv", str(out / "locust"),
               "--html", str(out / "locust-report.html"), "--model", args.model, "--target-env", args.env,
               "--slo-profile", args.profile or args.env, "--shape", args.shape,
               "--hold-seconds", str(args.hold_seconds), "--warmup-seconds", str(args.warmup_seconds),
               "--prediction-rps", str(args.prediction_rps),
               "--report-dir", str(out),
               "--max-generator-cpu", str(args.max_generator_cpu),
               "--canary-max-error-delta", str(args.canary_max_error_delta),
               "--canary-max-latency-ratio", str(args.canary_max_latency_ratio),
               "--canary-min-samples", str(args.canary_min_samples)]
    return command + _key_options(args)


def _key_options(args):
    options = []
    for option, path in (("--api-key-file", args.api_key_file),
                         ("--predict-api-key-file", args.predict_api_key_file)):
        if path:
            options += [option, str(Path(path).resolve())]
    return options


def distributed_commands(args, url, out, workers, master_host, master_port=5557):
    """The master's and each worker's command lines for a gate spread over several processes or pods.

    The master runs the shape and the gate (its `quitting` listener judges the merged stats and
    every worker's CPU); workers run the personas. Key files must exist at the same paths on each.
    """
    master = locust_command(args, url, out) + ["--master", "--expect-workers", str(workers),
                                               "--master-bind-port", str(master_port)]
    worker = [sys.executable, "-m", "locust", "-f", ",".join(locustfiles(args.env)), "--worker",
              "--master-host", master_host, "--master-port", str(master_port), "--model", args.model,
              "--target-env", args.env]
    return master, worker + _key_options(args)


def _default_to_local_keys(args):
    """Use the keys `tfship up` wrote (the bootstrap admin and the demo predictor) when none are given."""
    settings = LocalSettings.from_env()
    for attribute, role, variable in (("api_key_file", "admin", "TFSHIP_API_KEY"),
                                      ("predict_api_key_file", "predictor", "TFSHIP_PREDICT_API_KEY")):
        path = settings.key_file(role)
        if not getattr(args, attribute) and not os.environ.get(variable) and path.is_file():
            setattr(args, attribute, str(path))


def verify(args):
    """Run the gate; print its verdict line and report paths last; return its exit code."""
    url = target_url(args.env, args.url)
    if args.env == "local" and not args.url:
        _default_to_local_keys(args)
    if not (args.api_key_file or os.environ.get("TFSHIP_API_KEY")):
        raise UsageError("give --api-key-file (a key with the reader role, and admin for the registry writer "
                         "outside prod) or set TFSHIP_API_KEY")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = (args.out or Path(LocalSettings.from_env().state_dir) / "verify" / f"{args.env}-{stamp}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    try:
        timeout = load_plan.duration(args.shape, args.profile or args.env, args.hold_seconds,
                                     args.prediction_rps) + GRACE_SECONDS
    except ValueError as error:
        raise UsageError(str(error)) from None
    print(f"[verify] {args.shape} load against {url} for ~{timeout - GRACE_SECONDS:.0f} s, judged by SLO profile "
          f"{args.profile or args.env}; reports in {out}", flush=True)
    verdict_file = out / report.VERDICT_FILE
    verdict_file.unlink(missing_ok=True)  # a verdict from an earlier run in the same folder must not count
    try:
        completed = subprocess.run(locust_command(args, url, out), timeout=timeout, check=False)
        returncode = completed.returncode
    except subprocess.TimeoutExpired:
        returncode = None
    if not verdict_file.is_file():
        why = "timed out" if returncode is None else f"exited with {returncode}"
        print(f"SLO GATE: {INCONCLUSIVE} [profile {args.profile or args.env}] the load test {why} without a verdict")
        return EXIT_CODES[INCONCLUSIVE]
    verdict = json.loads(verdict_file.read_text())
    print(f"[verify] SLO report: {out / report.REPORT_FILE}\n[verify] Locust report: {out / 'locust-report.html'}")
    print(verdict["line"], flush=True)
    return verdict["exit_code"]


def run(command, argv):
    """Entry point of `tfship verify`."""
    args = parser().parse_args(argv)
    try:
        return verify(args)
    except UsageError as error:
        print(f"tfship {command}: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(run("verify", sys.argv[1:]))
