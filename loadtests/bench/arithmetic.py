"""The arithmetic behind the figures: percentiles, costs per request, ratios and the shared-core ceiling."""
import math


def percentile(values, q):
    """The nearest-rank q-th percentile (0 < q <= 100) of `values`, as wrk and HdrHistogram report it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def per_request_ms(cpu_seconds, requests):
    """CPU milliseconds per request (None when nothing was served)."""
    return 1000.0 * cpu_seconds / requests if requests else None


def ratio(measured, baseline):
    """measured / baseline, or None when the baseline is zero or missing."""
    if measured is None or not baseline:
        return None
    return measured / baseline


def extra_ms(through, direct):
    return through - direct


def shared_core_ceiling(cores, via_costs_ms, direct_costs_ms):
    """Best possible throughput ratio (via / direct) when every process shares `cores`.

    Each request through a path costs the CPU of every process on it (load generator,
    gateway, model server). With the cores saturated, throughput is cores / total cost, so
    the ratio of the two paths' throughputs is at most direct cost / via cost.
    Returns (ceiling ratio, via rps ceiling, direct rps ceiling).
    """
    via, direct = sum(via_costs_ms), sum(direct_costs_ms)
    if not via or not direct:
        return None, None, None
    return direct / via, 1000.0 * cores / via, 1000.0 * cores / direct


def cores_busy(costs_ms, rps):
    """How many cores a path kept busy: the CPU its requests cost times its rate."""
    return sum(costs_ms) * rps / 1000.0


def gateway_cpu_budget(cores, target_ratio, direct_rps, other_costs_ms):
    """The most CPU per request (ms) the gateway may spend for the path through it to serve
    target_ratio x direct_rps with the cores saturated, the other processes' costs as measured."""
    if not target_ratio or not direct_rps:
        return None
    return 1000.0 * cores / (target_ratio * direct_rps) - sum(other_costs_ms)
