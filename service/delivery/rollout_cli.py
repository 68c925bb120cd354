"""`tfship rollout start|status|promote|abort|rollback|shadow`: drive a canary through the registry.

The registry's rollout state is the only source of truth; these commands change it (each
change is recorded in the rollout history with its step and reason) and the reconciler makes
the model servers follow. Progress is the canary's weight in the registry, so ``start`` run
again for the same version resumes after the last step it reached. ``shadow start|status|stop``
(service/delivery/shadow_cli.py) mirrors a share of stable's traffic to a version instead.
"""
import argparse
import dataclasses
import os
import sys
import time

from pathlib import Path

from service.delivery import analysis, load_test, replicas, shadow_cli
from service.delivery.compatibility import breaking_changes
from service.delivery.registry_client import RegistryClient, RegistryError, read_key

DEFAULT_STEPS = "5,25,50,100"


class RolloutRefused(RuntimeError):
    """The rollout cannot go ahead; the message says why and what to do."""


def parse_steps(text):
    """Return the traffic steps of '5,25,50,100' as weights (0.05, ...), strictly increasing."""
    try:
        percents = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"steps must be percentages like {DEFAULT_STEPS}") from None
    if not percents or any(not 0 < p <= 100 for p in percents) or percents != sorted(set(percents)):
        raise argparse.ArgumentTypeError("steps must increase strictly within (0, 100]")
    return [p / 100 for p in percents]


def _percent(weight):
    return f"{weight * 100:g}%"


class Driver:
    """Change one model's rollout state through the registry, printing what it does."""

    def __init__(self, registry, model, out=print, sleep=time.sleep):
        self.registry, self.model, self.out, self.sleep = registry, model, out, sleep
        self._stable_classes = None  # stable's classes from the last step that saw enough of them
        self._locust = None

    def _set(self, etag, **fields):
        state, etag = self.registry.set_rollout(self.model, etag=etag, **fields)
        self.out(f"[rollout] {self.model}: stable {state['stable']}, canary {state['canary']} "
                 f"at {_percent(state['canary_weight'])}, previous {state['previous']}"
                 f" ({fields.get('step')})")
        return state, etag

    def start(self, version, steps, step_wait, force=False, model_servers=(), load_timeout=60.0,
              promote=True, metrics_urls=(), thresholds=None, reason="", locust=None):
        """Load version as canary beside stable, shift traffic step by step, then promote.

        With metrics_urls (the gateways' /metrics), each step is judged when it has baked
        (service.delivery.analysis); a failing step aborts the canary at once. Run again for
        the same canary (e.g. after a crash), it bakes the step reached again, then goes on.
        """
        thresholds = thresholds or analysis.Thresholds()
        self._locust = locust  # a load_test.LoadTest: a Locust canary run judges each step too
        state, etag = self.registry.rollout(self.model)
        stable, measured = state["stable"], {}
        if state["canary"] == version:
            self.out(f"[rollout] resuming the canary of version {version} at "
                     f"{_percent(state['canary_weight'])}")
            if model_servers:
                self._wait_loaded(version, model_servers, load_timeout)
            if state["canary_weight"] > 0:
                measured = self._bake(stable, version, state["canary_weight"], step_wait,
                                      metrics_urls, thresholds)
        elif state["canary"] is not None:
            raise RolloutRefused(f"version {state['canary']} is already the canary; promote or "
                                 "abort it first")
        elif stable is None:
            raise RolloutRefused(f"{self.model} has no stable version to compare with; set one")
        elif stable == version:
            raise RolloutRefused(f"version {version} is already stable")
        else:
            problems = breaking_changes(self.registry.version(self.model, stable)["input_schema"],
                                        self.registry.version(self.model, version)["input_schema"])
            if problems and not force:
                raise RolloutRefused(f"version {version}'s input schema breaks callers of version "
                                     f"{stable}: " + "; ".join(problems) + " (--force to go ahead)")
            reason = (reason or f"start canary {version}") + (
                "; forced despite: " + "; ".join(problems) if problems
                else "; input schema compatible")
            state, etag = self._set(etag, stable=stable, canary=version, canary_weight=0.0,
                                    step="load", reason=reason,
                                    measurements={"breaking_changes": problems})
            if model_servers:
                self._wait_loaded(version, model_servers, load_timeout)
        for weight in steps:
            if weight <= state["canary_weight"]:
                continue
            state, etag = self._set(etag, stable=stable, canary=version, canary_weight=weight,
                                    step=_percent(weight), measurements=measured,
                                    reason="next traffic step" + (
                                        "; the last step passed its analysis" if measured else ""))
            measured = self._bake(stable, version, weight, step_wait, metrics_urls, thresholds)
        if promote:
            self.promote(reason="every traffic step passed", measurements=measured)

    def _bake(self, stable, canary, weight, seconds, metrics_urls, thresholds):
        """Wait seconds; with metrics, judge the step and abort the canary when it fails.

        A step passes only on enough canary calls (thresholds.min_calls): the bake goes on,
        seconds at a time, until it has them or until five bakes (at least 30 s) passed, and
        a step that saw too little traffic to judge fails rather than passes.
        """
        if not metrics_urls:
            self.sleep(seconds)
            return {}
        started, measured = time.monotonic(), {}
        baseline = self._stable_classes
        longest = max(30.0, 5 * seconds)
        try:
            before = analysis.snapshot(metrics_urls)
            while True:
                self.sleep(seconds)
                measured = analysis.measure(before, analysis.snapshot(metrics_urls), self.model,
                                            stable, canary, stable_baseline=baseline,
                                            min_stable_rows=thresholds.min_calls)
                reasons = analysis.judge(measured, thresholds)
                calls = measured["canary"]["calls"]
                if reasons or calls >= thresholds.min_calls:
                    break
                if time.monotonic() - started >= longest:
                    reasons = [f"only {calls:g} canary calls in {longest:g} s: too few to judge "
                               f"(--min-calls {thresholds.min_calls})"]
                    break
        except analysis.MetricsUnavailable as error:
            reasons = [f"the gateway metrics are unavailable ({error})"]
        if not reasons and self._locust is not None:
            self.out(f"[rollout] step {_percent(weight)}: Locust canary run (tfship verify "
                     f"--env {self._locust.env}) ...")
            measured["locust"], reasons = load_test.run_step(
                self._locust, f"{self.model}-{canary}-{weight * 100:g}")
        calls = measured.get("canary", {}).get("calls", 0)
        if measured.get("psi_against") == "this step":
            self._stable_classes = measured["stable"]["classes"]  # the baseline of later steps
        psi = measured.get("psi")
        self.out(f"[rollout] step {_percent(weight)}: {calls:g} canary calls, PSI "
                 + (f"{psi:.3f}" if psi is not None else "not judged (too few stable rows)")
                 + ": " + ("; ".join(reasons) or "passed"))
        if reasons:
            reason = f"automatic rollback at {_percent(weight)}: " + "; ".join(reasons)
            self.abort(reason=reason, measurements=measured)
            raise RolloutRefused(reason)
        return measured

    def _wait_loaded(self, version, model_servers, timeout):
        deadline = time.monotonic() + timeout
        while True:
            try:
                if all(replicas.label_version(url, self.model, "canary") == version
                       for url in model_servers):
                    self.out(f"[rollout] version {version} is AVAILABLE and labelled canary on "
                             f"{len(model_servers)} model server(s)")
                    return
            except replicas.ReplicaUnreachable as error:
                self.out(f"[rollout] waiting: {error}")
            if time.monotonic() >= deadline:
                break
            self.sleep(0.5)
        self.abort(reason=f"version {version} was not AVAILABLE on every model server within "
                          f"{timeout:g} s")
        raise RolloutRefused(f"version {version} never became AVAILABLE; the canary was aborted")

    def promote(self, reason="promoted by an operator", measurements=None):
        """Make the canary stable (the old stable becomes previous)."""
        state, etag = self.registry.rollout(self.model)
        if state["canary"] is None:
            raise RolloutRefused("there is no canary to promote")
        return self._set(etag, stable=state["canary"], canary=None, canary_weight=0.0,
                         step="promote", reason=reason, measurements=measurements)

    def abort(self, reason="aborted by an operator", measurements=None):
        """Send every request to stable at once and drop the canary."""
        state, etag = self.registry.rollout(self.model)
        if state["canary"] is None:
            raise RolloutRefused("there is no canary to abort")
        return self._set(etag, stable=state["stable"], canary=None, canary_weight=0.0,
                         step="abort", reason=reason, measurements=measurements)

    def rollback(self, reason="rolled back by an operator"):
        """Make the previous version stable again (nothing is redeployed: it is still loaded)."""
        state, etag = self.registry.rollout(self.model)
        if state["previous"] is None:
            raise RolloutRefused("there is no previous version to roll back to")
        return self._set(etag, stable=state["previous"], canary=None, canary_weight=0.0,
                         step="rollback", reason=reason)

    def status(self, entries=10):
        """Print the rollout state and the newest history entries."""
        state, _ = self.registry.rollout(self.model)
        self.out(f"{self.model}: stable {state['stable']}, canary {state['canary']} at "
                 f"{_percent(state['canary_weight'])}, previous {state['previous']}" + (
                     f", shadow {state['shadow']} at {_percent(state['shadow_share'])}"
                     if state.get("shadow") is not None else ""))
        for event in self.registry.history(self.model, per_page=entries):
            self.out(f"  {event['recorded_at']}  {event['step'] or '-':>8}  stable "
                     f"{event['stable']} canary {event['canary']} "
                     f"{_percent(event['canary_weight'])}  by {event['actor']}  {event['reason']}")


def parser(command="rollout"):
    result = argparse.ArgumentParser(prog=f"tfship {command}", description=__doc__.split("\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--registry", default=os.environ.get("TFSHIP_REGISTRY_URL"),
                        help="the API's base URL (default: $TFSHIP_REGISTRY_URL)")
    common.add_argument("--key-file", default=os.environ.get("TFSHIP_KEY_FILE"),
                        help="file holding a deployer key (default: $TFSHIP_KEY_FILE)")
    common.add_argument("--model", default=os.environ.get("TFSHIP_MODEL_NAME"),
                        help="the model (default: $TFSHIP_MODEL_NAME)")
    common.add_argument("--reason", default=None, help="why (kept in the rollout history)")
    actions = result.add_subparsers(dest="action", required=True)
    start = actions.add_parser("start", parents=[common], help="canary a version step by step")
    start.add_argument("--version", type=int, required=True)
    start.add_argument("--steps", type=parse_steps, default=parse_steps(DEFAULT_STEPS),
                       help=f"traffic percentages (default {DEFAULT_STEPS})")
    start.add_argument("--step-wait", type=float, default=60.0,
                       help="seconds each step bakes before the next")
    start.add_argument("--force", action="store_true",
                       help="go ahead although the input schema breaks callers")
    start.add_argument("--model-server", action="append", default=[], dest="model_servers",
                       metavar="URL", help="wait until the canary is AVAILABLE here first (repeat)")
    start.add_argument("--load-timeout", type=float, default=120.0)
    start.add_argument("--no-promote", dest="promote", action="store_false",
                       help="stop at the last step instead of promoting")
    start.add_argument("--metrics-url", action="append", default=[], dest="metrics_urls",
                       metavar="URL", help="a gateway's /metrics: judge every step (repeat for "
                       "each gateway); a failing step aborts the canary")
    start.add_argument("--slo-profile", default="local",
                       help="SLO profile whose gate gives the error ratio and p95 "
                       "(monitoring/slo.yaml)")
    start.add_argument("--max-p95-seconds", type=float, help="override the profile's p95")
    start.add_argument("--max-error-ratio", type=float, help="override the profile's error ratio")
    start.add_argument("--max-psi", type=float, default=analysis.Thresholds.max_psi,
                       help="largest PSI of the canary's predicted classes against stable's")
    start.add_argument("--min-calls", type=int, default=analysis.Thresholds.min_calls,
                       help="canary calls a step needs before its distributions are judged")
    start.add_argument("--locust-env", help="also judge every step by a Locust canary run: "
                       "`tfship verify --env ENV` against the live split (needs --metrics-url)")
    start.add_argument("--locust-profile", help="SLO profile of that run (default: the env's)")
    start.add_argument("--locust-url", help="the API's URL for that run (default: the env's)")
    start.add_argument("--locust-hold-seconds", type=float, default=0.0,
                       help="seconds at full load (default: sized from the profile)")
    start.add_argument("--locust-out", type=Path, default=Path(".tfship/rollout"),
                       help="where each step's gate report goes")
    start.add_argument("--locust-key-file", help="the gate's API key file (default: --key-file)")
    start.add_argument("--locust-predict-key-file", help="the gate's predictor key file")
    for name, text in (("status", "show the state and its history"),
                       ("promote", "make the canary stable"),
                       ("abort", "send all traffic to stable now and drop the canary"),
                       ("rollback", "make the previous version stable again")):
        actions.add_parser(name, parents=[common], help=text)
    shadow_cli.add_parser(actions, common)
    return result


def _thresholds(args):
    from monitoring.slo import SLOFileError
    try:
        found = analysis.Thresholds.from_slo(args.slo_profile, max_psi=args.max_psi,
                                             min_calls=args.min_calls)
    except SLOFileError as error:
        raise RolloutRefused(str(error)) from None
    overrides = {k: v for k, v in (("max_p95_seconds", args.max_p95_seconds),
                                   ("max_error_ratio", args.max_error_ratio)) if v is not None}
    return dataclasses.replace(found, **overrides)


def _locust(args):
    if not args.locust_env:
        return None
    if not args.metrics_urls:
        raise RolloutRefused("--locust-env judges steps beside the gateway's metrics: give "
                             "--metrics-url too")
    keys = {"--api-key-file": args.locust_key_file or args.key_file}
    if args.locust_predict_key_file:
        keys["--predict-api-key-file"] = args.locust_predict_key_file
    return load_test.LoadTest(env=args.locust_env, out=args.locust_out.absolute(),
                              profile=args.locust_profile, url=args.locust_url,
                              hold_seconds=args.locust_hold_seconds,
                              key_files={k: Path(v).absolute() for k, v in keys.items()})


def run(command, argv, out=print):
    args = parser(command).parse_args(argv)
    missing = [flag for flag, value in (("--registry", args.registry),
                                        ("--key-file", args.key_file), ("--model", args.model))
               if not value]
    if missing:
        print(f"[{command}] missing {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        driver = Driver(RegistryClient(args.registry, read_key(args.key_file)), args.model, out)
        if args.action == "start":
            driver.start(args.version, args.steps, args.step_wait, force=args.force,
                         model_servers=args.model_servers, load_timeout=args.load_timeout,
                         promote=args.promote, metrics_urls=args.metrics_urls,
                         thresholds=_thresholds(args), reason=args.reason or "",
                         locust=_locust(args))
        elif args.action == "status":
            driver.status()
        elif args.action == "shadow":
            shadow_cli.run_action(args, read_key(args.key_file), out, RolloutRefused)
        else:
            action = getattr(driver, args.action)
            action(**({"reason": args.reason} if args.reason else {}))
    except (RegistryError, RolloutRefused) as error:
        print(f"[{command}] {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run("rollout", sys.argv[1:]))
