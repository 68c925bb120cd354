"""Run wrk (Debian's HTTP benchmark) and read its figures.

A Lua script sets the method, body and headers (the body is read from a file, the
Authorization header from the environment, so no key lands in a file or on a command line)
and prints one JSON line of summary and latency percentiles when the run is done.
"""
import dataclasses
import json
import os
import resource
import shutil
import subprocess
import tempfile

MARKER = "TFSHIP_BENCH "
SCRIPT = r"""
wrk.method = os.getenv("TFSHIP_BENCH_METHOD")
local body_file = os.getenv("TFSHIP_BENCH_BODY_FILE")
if body_file and body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = "application/json"
end
local auth = os.getenv("TFSHIP_BENCH_AUTHORIZATION")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = auth
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, "read_errors": %d, '
    .. '"write_errors": %d, "status_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, '
    .. '"p99_us": %d, "mean_us": %.1f, "max_us": %d}\n',
    "TFSHIP_BENCH ", summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
"""


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed no summary."""


@dataclasses.dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    cpu_s: float = 0.0  # wrk's own CPU time (user + system)

    @property
    def rps(self):
        return self.requests / self.seconds if self.seconds else 0.0

    def as_dict(self):
        return dict(dataclasses.asdict(self), rps=round(self.rps, 1))


def parse(stdout):
    """Return the WrkResult of the script's summary line in wrk's output."""
    for line in stdout.splitlines():
        if line.startswith(MARKER):
            data = json.loads(line[len(MARKER):])
            break
    else:
        raise WrkError("wrk printed no summary line:\n" + stdout[-2000:])
    errors = sum(data[k] for k in ("connect_errors", "read_errors", "write_errors",
                                   "status_errors", "timeouts"))
    return WrkResult(requests=data["requests"], seconds=data["duration_us"] / 1e6, errors=errors,
                     p50_ms=data["p50_us"] / 1e3, p90_ms=data["p90_us"] / 1e3,
                     p99_ms=data["p99_us"] / 1e3, mean_ms=data["mean_us"] / 1e3,
                     max_ms=data["max_us"] / 1e3)


def binary():
    path = shutil.which("wrk")
    if not path:
        raise WrkError("wrk is not installed: apt-get install -y wrk (or tfship doctor --install)")
    return path


def run(url, *, seconds, connections=1, method="GET", body=None, authorization=None, threads=1,
        timeout_s=10):
    """Load `url` for `seconds` with `connections` keep-alive connections; return a WrkResult."""
    with tempfile.TemporaryDirectory(prefix="tfship-wrk-") as folder:
        script = os.path.join(folder, "request.lua")
        with open(script, "w") as handle:
            handle.write(SCRIPT)
        body_file = ""
        if body is not None:
            body_file = os.path.join(folder, "body.json")
            with open(body_file, "w") as handle:
                handle.write(body)
        env = dict(os.environ, TFSHIP_BENCH_METHOD=method, TFSHIP_BENCH_BODY_FILE=body_file,
                   TFSHIP_BENCH_AUTHORIZATION=authorization or "")
        command = [binary(), f"-t{min(threads, connections)}", f"-c{connections}",
                   f"-d{max(1, round(seconds))}s", f"--timeout={timeout_s}s", "-s", script, url]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(command, env=env, capture_output=True, text=True,
                              timeout=seconds + timeout_s + 30)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise WrkError(f"wrk exited with {done.returncode}: {done.stderr.strip()[-1000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return dataclasses.replace(parse(done.stdout), cpu_s=cpu)
