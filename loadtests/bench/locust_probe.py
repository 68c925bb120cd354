"""Locust's saturation point: one HttpUser process with no wait time, against a cheap endpoint.

`python -m loadtests.bench.locust_probe --host URL --path /healthz --users 16 --seconds 5`
prints one JSON line: requests, rps, the probe's CPU utilisation over the measured window and
the rps it would reach at a full core (rps / utilisation). Run in its own process because Locust
monkey-patches the standard library with gevent.
"""
import argparse
import json
import sys
import time


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench.locust_probe")
    parser.add_argument("--host", required=True)
    parser.add_argument("--path", default="/healthz")
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args(argv)

    import gevent
    from locust import HttpUser, constant, task
    from locust.env import Environment

    class Probe(HttpUser):
        wait_time = constant(0)

        @task
        def get(self):
            self.client.get(args.path)

    environment = Environment(user_classes=[Probe], host=args.host)
    runner = environment.create_local_runner()
    runner.start(args.users, spawn_rate=args.users)
    gevent.sleep(args.warmup)
    requests0, cpu0, wall0 = environment.stats.total.num_requests, time.process_time(), time.monotonic()
    gevent.sleep(args.seconds)
    requests1, cpu1, wall1 = environment.stats.total.num_requests, time.process_time(), time.monotonic()
    failures = environment.stats.total.num_failures
    runner.quit()
    requests, wall = requests1 - requests0, wall1 - wall0
    utilisation = (cpu1 - cpu0) / wall
    rps = requests / wall
    print(json.dumps({"users": args.users, "requests": requests, "failures": failures,
                      "rps": round(rps, 1), "cpu_utilisation": round(utilisation, 3),
                      "saturation_rps": round(rps / utilisation, 1) if utilisation else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
