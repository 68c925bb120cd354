"""Start and stop the processes a benchmark measures, each on a free loopback port."""
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

START_TIMEOUT_S = 120


class StartError(RuntimeError):
    """A process exited or did not become ready; the message names its log."""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tfship(*args, env, timeout=300):
    """Run a tfship command to completion; return its stdout, raising on failure."""
    done = subprocess.run([sys.executable, "-m", "tfship.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise StartError(f"`tfship {' '.join(args)}` failed ({done.returncode}): "
                         f"{(done.stderr or done.stdout).strip()[-1500:]}")
    return done.stdout


def get_json(url, timeout=2.0, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def post_json(url, body, timeout=10.0, headers=None):
    request = urllib.request.Request(url, data=body.encode(), method="POST", headers={
        "Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


class Server:
    """A background process with its log; stop() ends it (TERM, then KILL)."""

    def __init__(self, command, env, log_path):
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        self.started = time.monotonic()

    @property
    def pid(self):
        return self.process.pid

    def wait_ready(self, check, timeout=START_TIMEOUT_S):
        """Poll check() until truthy; return the seconds since start."""
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise StartError(f"{self.process.args[:4]} exited with {self.process.returncode}; "
                                 f"see {self.log_path}")
            try:
                if check():
                    return time.monotonic() - self.started
            except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        raise StartError(f"{self.process.args[:4]} not ready after {timeout} s; see {self.log_path}")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def model_server(flags, env, log_path):
    return Server([sys.executable, "-m", "tfship.cli", "model-server", *flags], env, log_path)


def versions_available(url, model):
    status = get_json(f"{url}/v1/models/{model}")
    return [v for v in status["model_version_status"] if v["state"] == "AVAILABLE"]


def api(port, env, log_path):
    return Server([sys.executable, "-m", "tfship.cli", "api", "--port", str(port)], env, log_path)


def api_ready(url):
    try:
        get_json(f"{url}/readyz")
        return True
    except urllib.error.HTTPError:
        return False
