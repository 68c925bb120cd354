"""Apply the registry's rollout state to TF Serving's model config file, safely.

The registry is the only source of truth; this loop makes the model servers follow it. Per
model in the config file, each pass reads the rollout state and what every replica serves,
then writes at most one change, in TF Serving's safe order:

1. **load**: serve (``specific`` policy) every version that is stable, canary or previous,
   beside those already served, keeping the current labels;
2. **label**: once a version is AVAILABLE on *every* replica, point its label (stable, canary,
   previous, shadow) at it. A label never points at a version that is not loaded everywhere;
   a version that failed to load gets no label. Until the new target is loaded, stable and
   previous keep their old version; canary and shadow have no label meanwhile (their old
   version must not answer in the new one's name: the gateway retries failed canary calls on
   stable);
3. **retire**: a label the registry dropped, and a version nothing names any more, stay for
   ``unload_grace_s`` (at least the gateway's rollout cache TTL plus the model server's config
   poll): gateways with a cached state keep finding them. Only then are they removed.

While the registry is unreachable nothing changes. Run it as ``tfship reconcile``; it talks
to the registry and the model servers over HTTP only.
"""
import argparse
import logging
import os
import sys
import time
from dataclasses import dataclass, field

from service.delivery import config_store, model_config, replicas
from service.delivery.registry_client import RegistryClient, RegistryError, read_key

LABELS = ("stable", "canary", "previous", "shadow")  # shadow: mirrored traffic (service/shadow.py)
# Labels whose old version keeps answering while the new one loads (stable must always answer;
# previous is only a rollback target). A canary or shadow label names one version: while a new
# canary loads, calls to the label fail and the gateway retries them on stable, instead of the
# old canary answering them in the new one's name (and its analysis).
KEEP_WHILE_LOADING = frozenset({"stable", "previous"})
log = logging.getLogger("tfship.reconciler")


@dataclass
class Plan:
    """The entry to write (None: nothing to change) and whether the model has converged."""

    entry: model_config.ModelEntry | None
    converged: bool
    waiting_for: set = field(default_factory=set)


def wanted_labels(state):
    """Return {label: version} the rollout state asks for."""
    return {label: int(state[label]) for label in LABELS if state.get(label) is not None}


def plan_model(entry, state, available, failed, retiring, now, grace):
    """Return the Plan for one model.

    entry: its current config entry; state: the registry's rollout state; available: the
    versions AVAILABLE on every replica; failed: versions whose load failed somewhere;
    retiring: {("label", name) | ("version", v): deadline}, updated in place.
    """
    served = set(entry.versions) if entry.versions is not None else (
        set(available) | set(entry.labels.values()))
    targets = wanted_labels(state)
    wanted = set(targets.values()) - failed
    if wanted - served:
        kept = {label: version for label, version in entry.labels.items()
                if label in KEEP_WHILE_LOADING or targets.get(label, version) == version}
        return Plan(_entry(entry, served | wanted, kept), False, wanted - served)
    waiting = wanted - set(available)

    labels = {}
    for label, version in targets.items():
        if version in available:
            labels[label] = version
            retiring.pop(("label", label), None)
        elif (label in KEEP_WHILE_LOADING and label in entry.labels
              and entry.labels[label] in served):
            labels[label] = entry.labels[label]  # the target is not loaded everywhere yet
    for label, version in entry.labels.items():
        if label in labels or version not in served:
            continue
        if label in targets and label not in KEEP_WHILE_LOADING:
            continue  # moved to a version not loaded yet: the old one must not answer for it
        deadline = retiring.setdefault(("label", label), now + grace)
        if now < deadline:
            labels[label] = version  # dropped by the registry; gateways may still route here

    versions = set()
    for version in served:
        if version in wanted:
            retiring.pop(("version", version), None)
            versions.add(version)
            continue
        # Unnamed since this pass at the latest: kept for the grace, and while a label holds it.
        deadline = retiring.setdefault(("version", version), now + grace)
        if now < deadline or version in labels.values():
            versions.add(version)
    for key in [k for k in retiring if (k[0] == "version" and k[1] not in versions)
                or (k[0] == "label" and k[1] not in labels)]:
        del retiring[key]
    if not versions:
        versions = served  # never write an empty policy: TF Serving would refuse it
    changed = versions != served or entry.versions is None or labels != entry.labels
    pending = bool(waiting) or any(True for _ in retiring) or labels != targets
    return Plan(_entry(entry, versions, labels) if changed else None,
                not changed and not pending, waiting)


def _entry(entry, versions, labels):
    return model_config.ModelEntry(name=entry.name, base_path=entry.base_path,
                                   platform=entry.platform, versions=tuple(sorted(versions)),
                                   labels=dict(labels))


class Reconciler:
    """Reconcile the models of one model config with the registry, across model-server replicas.

    config: a path (a file) or a store with read() and write(entries) (config_store).
    replica_urls: the replicas' base URLs, or a callable returning them at each pass (DNS).
    """

    def __init__(self, registry, config, replica_urls, unload_grace_s, clock=time.monotonic):
        self.registry = registry
        self.config = config_store.FileStore(config) if isinstance(config, str) else config
        urls = None if callable(replica_urls) else list(replica_urls)
        self.replicas = replica_urls if urls is None else (lambda: urls)
        self.grace, self.clock = unload_grace_s, clock
        self.retiring = {}  # model -> {("label"|"version", key): deadline}

    def reconcile_once(self):
        """Make one pass over every model; return True when all have converged."""
        entries = self.config.read()
        try:
            replica_urls = self.replicas()
        except replicas.ReplicaUnreachable as error:
            log.warning("%s; changing nothing", error)
            return False
        converged, changed = True, False
        for index, entry in enumerate(entries):
            try:
                state, _ = self.registry.rollout(entry.name)
                available = replicas.available_everywhere(replica_urls, entry.name)
                failed = replicas.failed_anywhere(replica_urls, entry.name,
                                                  set(wanted_labels(state).values()))
            except (RegistryError, replicas.ReplicaUnreachable) as error:
                log.warning("%s: %s; changing nothing", entry.name, error)
                converged = False
                continue
            for version in sorted(failed):
                log.error("%s: version %s failed to load; no label points at it",
                          entry.name, version)
            plan = plan_model(entry, state, available, failed,
                              self.retiring.setdefault(entry.name, {}), self.clock(), self.grace)
            if plan.entry is not None:
                log.info("%s: serving versions %s, labels %s", entry.name,
                         list(plan.entry.versions), plan.entry.labels)
                entries[index], changed = plan.entry, True
            elif plan.converged:
                plan.converged = self._labels_applied(entry, replica_urls)
            converged &= plan.converged
        if changed:
            self.config.write(entries)
        return converged and not changed

    def _labels_applied(self, entry, replica_urls):
        """Return whether every replica resolves every label of entry as the file says."""
        try:
            return all(replicas.label_version(url, entry.name, label) == version
                       for url in replica_urls for label, version in entry.labels.items())
        except replicas.ReplicaUnreachable:
            return False

    def run_until_converged(self, timeout, interval):
        """Pass until converged (True) or timeout seconds passed (False)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.reconcile_once():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)

    def run_forever(self, interval, heartbeat_file=None):
        """Pass every interval seconds until interrupted, touching heartbeat_file after each pass."""
        while True:
            try:
                self.reconcile_once()
            except (OSError, model_config.ConfigFileError) as error:
                log.error("cannot reconcile %s: %s", self.config, error)
            if heartbeat_file:
                with open(heartbeat_file, "a", encoding="utf-8"):
                    os.utime(heartbeat_file)
            time.sleep(interval)


def parser(command="reconcile"):
    result = argparse.ArgumentParser(
        prog=f"tfship {command}", description="Apply the registry's rollout state to TF "
        "Serving's model config file, moving labels only to versions AVAILABLE on every replica.")
    result.add_argument("--registry", required=True, help="the API's base URL")
    result.add_argument("--key-file", required=True, help="file holding a reader (or higher) key")
    where = result.add_mutually_exclusive_group(required=True)
    where.add_argument("--model-config-file",
                       help="the ModelServerConfig file the model servers poll")
    where.add_argument("--model-config-configmap", metavar="NAMESPACE/NAME",
                       help="the ConfigMap the model servers mount, read and replaced through the "
                       "Kubernetes API with this pod's ServiceAccount (in a cluster)")
    result.add_argument("--model-config-key", default="models.config",
                        help="with --model-config-configmap: the key holding the config")
    servers = result.add_mutually_exclusive_group(required=True)
    servers.add_argument("--model-server", action="append", dest="model_servers",
                         metavar="URL", help="a replica's REST base URL (repeat for each)")
    servers.add_argument("--model-server-dns", metavar="URL",
                         help="http://NAME:PORT whose NAME resolves to every replica (a headless "
                         "Service); resolved again at each pass")
    result.add_argument("--heartbeat-file", help="touched after every pass (a liveness probe "
                        "checks its age)")
    result.add_argument("--once", action="store_true",
                        help="reconcile until converged (or --timeout), then exit")
    result.add_argument("--interval", type=float, default=1.0, help="seconds between passes")
    result.add_argument("--unload-grace-seconds", type=float, default=5.0,
                        help="how long a dropped label or unnamed version stays: at least the "
                        "gateway's ROLLOUT_CACHE_TTL_S plus the model server's config poll")
    result.add_argument("--timeout", type=float, default=120.0, help="with --once: give up after")
    return result


def run(command, argv):
    args = parser(command).parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        if args.model_config_configmap:
            config = config_store.ConfigMapStore.parse(
                args.model_config_configmap, args.model_config_key, config_store.KubernetesApi.in_cluster())
        else:
            config = args.model_config_file
        if args.model_server_dns:
            replicas.split_url(args.model_server_dns)  # a malformed URL fails now, not every pass
            replica_urls = lambda: replicas.resolve(args.model_server_dns)  # noqa: E731
        else:
            replica_urls = args.model_servers
        reconciler = Reconciler(RegistryClient(args.registry, read_key(args.key_file)),
                                config, replica_urls, args.unload_grace_seconds)
        if args.once:
            if reconciler.run_until_converged(args.timeout, args.interval):
                return 0
            print(f"[{command}] not converged after {args.timeout:g} s", file=sys.stderr)
            return 1
        reconciler.run_forever(args.interval, args.heartbeat_file)
    except (RegistryError, OSError, ValueError, model_config.ConfigFileError) as error:
        print(f"[{command}] {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(run("reconcile", sys.argv[1:]))
