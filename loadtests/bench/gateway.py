"""Gateway cost: the API in front of the model server against the model server directly."""
import os

from loadtests.bench import arithmetic, measure, servers, targets
from loadtests.bench.stack import MODEL


ROUNDS = 3


def urls(stack):
    """The same prediction both ways: the API routes to the `stable` label, as does the direct call."""
    return (f"{stack.model_server_url}/v1/models/{MODEL}/labels/stable:predict",
            f"{stack.api_url}/api/v1/models/{MODEL}:predict")


def run(stack, body, seconds, api_url=None, api_pid=None):
    """Direct and through the API at c=1 and c=8, in alternating rounds merged by measure.merge."""
    direct_url, via_url = urls(stack)
    via_url = f"{api_url}/api/v1/models/{MODEL}:predict" if api_url else via_url
    api_pid = api_pid or stack.pid("api")
    auth = f"Bearer {stack.predictor_key}"
    direct = servers.post_json(direct_url, body)
    via = servers.post_json(via_url, body, headers={"Authorization": auth})
    if direct.get("predictions") != via.get("predictions"):
        raise AssertionError("the gateway's answer differs from the model server's")
    pids = {"api": api_pid, "model_server": stack.pid("model-server")}
    for url, header in ((direct_url, None), (via_url, auth)):  # warm keep-alive pools, caches
        measure.run(url, seconds=1, pids={}, connections=8, method="POST", body=body,
                    authorization=header)
    idle = measure.idle_rates(pids)
    return measure.alternate({"direct": {"url": direct_url, "authorization": None},
                              "api": {"url": via_url, "authorization": auth}},
                             concurrencies=(1, 8), rounds=ROUNDS, seconds=seconds, pids=pids, idle=idle,
                             method="POST", body=body)


def figures(runs, cores=None):
    """The issue's gateway figures from the runs of run()."""
    cores = cores or os.cpu_count()
    d1, a1, d8, a8 = runs["direct_c1"], runs["api_c1"], runs["direct_c8"], runs["api_c8"]
    api_cpu = runs["api_c1"]["cpu_s"]["api"] + runs["api_c8"]["cpu_s"]["api"]
    api_requests = a1["requests"] + a8["requests"]
    via_costs = [a8["cpu_ms_per_request"][k] for k in ("wrk", "api", "model_server")]
    direct_costs = [d8["cpu_ms_per_request"][k] for k in ("wrk", "model_server")]
    ceiling, via_ceiling_rps, direct_ceiling_rps = arithmetic.shared_core_ceiling(
        cores, via_costs, direct_costs)
    target = targets.by_key("gateway_throughput_ratio_c8").limit
    others = [via_costs[0], via_costs[2]]  # wrk and the model server on the path through the API
    budget = arithmetic.gateway_cpu_budget(cores, target, d8["rps"], others)
    budget_at_ceiling = arithmetic.gateway_cpu_budget(cores, target, direct_ceiling_rps, others)
    return {
        "gateway_extra_p50_ms": round(arithmetic.extra_ms(a1["p50_ms"], d1["p50_ms"]), 3),
        "gateway_extra_p99_ms": round(arithmetic.extra_ms(a1["p99_ms"], d1["p99_ms"]), 3),
        "gateway_cpu_ms_per_request": round(arithmetic.per_request_ms(api_cpu, api_requests), 3),
        "gateway_throughput_ratio_c8": round(arithmetic.ratio(a8["rps"], d8["rps"]), 3),
        "gateway_throughput_ceiling_c8": None if ceiling is None else round(ceiling, 3),
        "gateway_ceiling_rps_via": None if via_ceiling_rps is None else round(via_ceiling_rps),
        "gateway_ceiling_rps_direct": None if direct_ceiling_rps is None else round(direct_ceiling_rps),
        # The direct run need not saturate the cores (one model-server process runs Python on
        # one core at a time): the ratio as measured is bounded by the API path's ceiling
        # over the direct rate measured, and the API's CPU budget follows from that rate.
        "gateway_direct_cores_busy_c8": round(arithmetic.cores_busy(direct_costs, d8["rps"]), 2),
        "gateway_throughput_ceiling_measured_direct_c8": None if via_ceiling_rps is None else round(
            arithmetic.ratio(via_ceiling_rps, d8["rps"]), 3),
        "gateway_api_cpu_budget_ms_c8": None if budget is None else round(budget, 3),
        "gateway_api_cpu_budget_at_direct_ceiling_ms_c8": None if budget_at_ceiling is None else round(
            budget_at_ceiling, 3),
        "gateway_cost_breakdown_ms_c8": {"via": dict(zip(("wrk", "api", "model_server"), via_costs)),
                                         "direct": dict(zip(("wrk", "model_server"), direct_costs))},
    }


# Settings of the API that exist today, each tried alone against the stack's (2 workers x 4 threads).
VARIANTS = {"1 worker x 4 threads": {"WORKERS": 1}, "2 workers x 1 thread": {"THREADS": 1},
            "4 workers x 2 threads": {"WORKERS": 4, "THREADS": 2}}


def variants(stack, body, seconds, root, direct_rps):
    """The c=8 run through extra API processes with other worker settings, on the same registry."""
    _, via_url = urls(stack)
    found = {}
    for name, settings in VARIANTS.items():
        port = servers.free_port()
        env = dict(stack.api_env(), **{f"TFSHIP_API_{k}": str(v) for k, v in settings.items()})
        api = servers.api(port, env, root / f"api-variant-{port}.log")
        try:
            url = f"http://127.0.0.1:{port}"
            api.wait_ready(lambda: servers.api_ready(url))
            via = f"{url}/api/v1/models/{MODEL}:predict"
            auth = f"Bearer {stack.predictor_key}"
            measure.run(via, seconds=1, pids={}, connections=8, method="POST", body=body, authorization=auth)
            pids = {"api": api.pid, "model_server": stack.pid("model-server")}
            run_ = measure.run(via, seconds=seconds, pids=pids, connections=8, method="POST", body=body,
                               authorization=auth, idle=measure.idle_rates(pids, 0.5))
        finally:
            api.stop()
        found[name] = dict(run_, settings=settings,
                           ratio_to_direct=round(arithmetic.ratio(run_["rps"], direct_rps), 3))
    return found
