"""The stages of each load shape (smoke, ramp, soak) per environment, each bounded in time.

Each shape is sized from the profile's gate, so a healthy run can pass it: prediction users
send one request a second each, at a rate at least twice the gate's minimum throughput, long
enough for 1.5 x its minimum sample count after the warm-up that the gate does not judge. The
rates stay in the tens of requests a second, far below one Locust process's ~750 rps.
"""
import math
from dataclasses import dataclass

from monitoring import slo

SPAWN_SECONDS = 2  # time to start each stage's new users
WARMUP_SECONDS = 3  # the gate judges nothing before: users spawning, connections opening, caches filling


@dataclass(frozen=True)
class EnvironmentLoad:
    """An environment's steady prediction rate (requests/s) and how long it soaks."""

    prediction_rps: int
    soak_seconds: int


LOADS = {
    "local": EnvironmentLoad(prediction_rps=10, soak_seconds=300),
    "dev": EnvironmentLoad(prediction_rps=10, soak_seconds=600),
    "staging": EnvironmentLoad(prediction_rps=40, soak_seconds=1800),
    "prod": EnvironmentLoad(prediction_rps=40, soak_seconds=1800),
    "test": EnvironmentLoad(prediction_rps=25, soak_seconds=20),
}


@dataclass(frozen=True)
class Stage:
    """Hold `prediction_users` until `until_s` seconds into the run."""

    until_s: float
    prediction_users: int


def stages(shape, profile_name, hold_seconds=0.0, prediction_rps=0):
    """The stages of a shape for a profile; hold_seconds > 0 overrides the time at full load, and
    prediction_rps > 0 the steady rate (which must still reach the gate's minimum throughput)."""
    load, gate = LOADS[profile_name], slo.load(profile_name).gate
    rps = prediction_rps or max(load.prediction_rps, math.ceil(2 * gate.min_throughput_rps))
    if rps < gate.min_throughput_rps:
        raise ValueError(f"{rps} predictions/s cannot reach profile {profile_name}'s minimum throughput "
                         f"of {gate.min_throughput_rps:g}/s")
    hold = hold_seconds or WARMUP_SECONDS + max(10, math.ceil(1.5 * gate.min_samples / rps))
    if shape == "smoke":
        return (Stage(SPAWN_SECONDS + hold, rps),)
    if shape == "soak":
        return (Stage(SPAWN_SECONDS + (hold_seconds or max(hold, load.soak_seconds)), rps),)
    if shape == "ramp":  # 25% steps up to twice the steady rate, then back to it
        step = max(SPAWN_SECONDS + 1, math.ceil(hold / 2))
        levels = [math.ceil(rps * f) for f in (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 1.0)]
        return tuple(Stage(step * (i + 1), users) for i, users in enumerate(levels))
    raise ValueError(f"unknown shape {shape!r}; known: smoke, ramp, soak")


def duration(shape, profile_name, hold_seconds=0.0, prediction_rps=0):
    """Seconds the shape runs."""
    return stages(shape, profile_name, hold_seconds, prediction_rps)[-1].until_s
