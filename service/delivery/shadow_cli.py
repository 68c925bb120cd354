"""`tfship rollout shadow start VERSION --share S | status | stop`: shadow mode through the registry.

Only HTTP to the registry (``.../rollout/shadow``, with If-Match like every rollout change), so
the same commands drive the local stack and a Kubernetes one: only the registry URL differs.
The reconciler loads the shadow version and labels it ``shadow``; the gateways mirror to it
(service/shadow.py) and store the comparison, which ``status`` reads back.
"""
import argparse
import time

from service.delivery import replicas
from service.delivery.registry_client import RegistryClient


def parse_share(text):
    """Return a share given as 0.1 or 10% (in [0, 1]; 0 pauses mirroring, the version stays loaded)."""
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("the share is a fraction like 0.1, or 10%") from None
    if not 0 <= share <= 1:
        raise argparse.ArgumentTypeError("the share must be within 0..1 (or 0%..100%)")
    return share


def _ms(seconds):
    return "-" if seconds is None else f"{seconds * 1000:.3g} ms"


def describe(comparison):
    """Return the lines that report one comparison."""
    rate = comparison["agreement_rate"]
    primary, shadow = comparison["primary_latency"], comparison["shadow_latency"]
    return [
        f"  shadow {comparison['shadow_version']} vs stable {comparison['primary_version']}: "
        f"{comparison['requests']} mirrored, {comparison['failed']} failed, "
        f"{comparison['dropped']} dropped (queue full)",
        "    agreement on predicted class: " + (
            "no rows compared yet" if rate is None else
            f"{rate * 100:.2f}% ({comparison['agreed']}/{comparison['rows']} rows)"),
        f"    latency mean/p50/p95/p99: stable {_ms(primary['mean_s'])} / {_ms(primary['p50_s'])}"
        f" / {_ms(primary['p95_s'])} / {_ms(primary['p99_s'])}; shadow {_ms(shadow['mean_s'])}"
        f" / {_ms(shadow['p50_s'])} / {_ms(shadow['p95_s'])} / {_ms(shadow['p99_s'])}",
    ]


class ShadowDriver:
    """Start, report and stop one model's shadow mode, printing what it does."""

    def __init__(self, registry, model, out=print, sleep=time.sleep, refused=RuntimeError):
        self.registry, self.model, self.out, self.sleep = registry, model, out, sleep
        self.refused = refused

    def start(self, version, share, reason="", model_servers=(), load_timeout=60.0):
        """Set the shadow and its share.

        With model_servers, in two steps: first share 0 (the reconciler loads the version, the
        gateways mirror nothing yet), then, once it is AVAILABLE and labelled shadow on every
        replica, the share. Without, the share at once: mirrored calls fail (counted, never
        felt by clients) until the version is loaded.
        """
        state, etag = self.registry.shadow(self.model)
        if state["shadow"] is not None and state["shadow"] != version:
            self.out(f"[shadow] replacing shadow version {state['shadow']}")
        if model_servers:
            _, etag = self.registry.set_shadow(
                self.model, version, 0.0, etag=etag,
                reason=f"load version {version} for shadow mode (paused until AVAILABLE)")
            self._wait_loaded(version, model_servers, load_timeout)
        state, _ = self.registry.set_shadow(self.model, version, share, etag=etag, reason=reason)
        self.out(f"[shadow] {self.model}: mirroring {share * 100:g}% of stable "
                 f"{state['stable']}'s traffic to version {version}")
        return state

    def _wait_loaded(self, version, model_servers, timeout):
        deadline = time.monotonic() + timeout
        while True:
            try:
                if all(replicas.label_version(url, self.model, "shadow") == version
                       for url in model_servers):
                    self.out(f"[shadow] version {version} is AVAILABLE and labelled shadow on "
                             f"{len(model_servers)} model server(s)")
                    return
            except replicas.ReplicaUnreachable as error:
                self.out(f"[shadow] waiting: {error}")
            if time.monotonic() >= deadline:
                break
            self.sleep(0.5)
        self.stop(reason=f"version {version} was not AVAILABLE on every model server within "
                         f"{timeout:g} s")
        raise self.refused(f"shadow version {version} never became AVAILABLE; shadow mode "
                           "was stopped")

    def status(self, version=None, entries=5):
        """Print the shadow state, its comparison and the newest shadow transitions."""
        state, _ = self.registry.shadow(self.model, version)
        if state["shadow"] is None:
            self.out(f"{self.model}: no shadow version (stable {state['stable']})")
        else:
            self.out(f"{self.model}: shadow version {state['shadow']} receives "
                     f"{state['shadow_share'] * 100:g}% of stable {state['stable']}'s traffic")
        if not state["comparisons"]:
            self.out("  no comparison stored yet" + (
                "" if version is None and state["shadow"] is None else
                " (gateways store theirs every SHADOW_FLUSH_INTERVAL_S)"))
        for comparison in state["comparisons"]:
            for line in describe(comparison):
                self.out(line)
        shown = [e for e in self.registry.history(self.model, per_page=50)
                 if (e["step"] or "").startswith("shadow")][:entries]
        for event in shown:
            self.out(f"  {event['recorded_at']}  {event['step']:>11}  version "
                     f"{event.get('shadow')}  by {event['actor']}  {event['reason']}")
        return state

    def stop(self, reason=""):
        """Stop mirroring and print the comparison it leaves in the history."""
        state, etag = self.registry.shadow(self.model)
        if state["shadow"] is None:
            raise self.refused("there is no shadow version to stop")
        state, _ = self.registry.stop_shadow(self.model, etag=etag, reason=reason)
        self.out(f"[shadow] {self.model}: stopped mirroring; the comparison stays in the history")
        for comparison in state["comparisons"]:
            for line in describe(comparison):
                self.out(line)
        return state


def add_parser(actions, common):
    """Add `shadow start|status|stop` to the rollout command's subcommands."""
    shadow = actions.add_parser("shadow", help="mirror a share of stable's traffic to a version "
                                "and compare its answers (off the request path)")
    commands = shadow.add_subparsers(dest="shadow_action", required=True)
    start = commands.add_parser("start", parents=[common], help="start (or change) shadow mode")
    start.add_argument("version", type=int, help="the version to mirror traffic to")
    start.add_argument("--share", type=parse_share, default=0.1,
                       help="share of stable's predictions mirrored: 0.1 or 10%% (default 0.1)")
    start.add_argument("--model-server", action="append", default=[], dest="model_servers",
                       metavar="URL", help="wait until the version is AVAILABLE and labelled "
                       "shadow here (repeat per replica)")
    start.add_argument("--load-timeout", type=float, default=120.0)
    status = commands.add_parser("status", parents=[common],
                                 help="the agreement rate and latency measured so far")
    status.add_argument("--version", type=int, default=None,
                        help="report an earlier shadow version's comparison")
    commands.add_parser("stop", parents=[common], help="stop mirroring (the comparison is kept)")


def run_action(args, key, out, refused):
    """Run the parsed `rollout shadow ...` command."""
    driver = ShadowDriver(RegistryClient(args.registry, key), args.model, out, refused=refused)
    if args.shadow_action == "start":
        driver.start(args.version, args.share, reason=args.reason or "",
                     model_servers=args.model_servers, load_timeout=args.load_timeout)
    elif args.shadow_action == "status":
        driver.status(args.version)
    else:
        driver.stop(reason=args.reason or "")
