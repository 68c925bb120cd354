"""`tfship doctor`: check the system tools the tests and the local stack use; install where allowed.

Each tool names the Debian package that provides it. With `--install` and root, missing packages
are installed with apt-get; otherwise the exact command to run is printed.
"""
import argparse
import os
import shutil
import subprocess
import sys

# binary -> (Debian package, what needs it). One list, read by the Makefile and .ci/run.
TOOLS = {
    "promtool": ("prometheus", "Prometheus rule checks and the live monitoring tests"),
    "prometheus": ("prometheus", "the local stack's Prometheus and the live monitoring tests"),
    "amtool": ("prometheus-alertmanager", "Alertmanager routing tests"),
    "wrk": ("wrk", "benchmarks and gateway latency measurements"),
    "redis-server": ("redis-server", "rate limits shared across API workers"),
    "openssl": ("openssl", "the local API's self-signed TLS certificate"),
}
POSTGRES_BIN = "/usr/lib/postgresql/15/bin"
POSTGRES_PACKAGE = "postgresql"


def missing_packages():
    """Debian packages whose binaries are not installed, with the reasons they are needed."""
    missing = {}
    for binary, (package, why) in TOOLS.items():
        if shutil.which(binary) is None:
            missing.setdefault(package, []).append(why)
    if not (os.path.exists(os.path.join(POSTGRES_BIN, "initdb")) or shutil.which("initdb")):
        missing.setdefault(POSTGRES_PACKAGE, []).append("registry tests on a real PostgreSQL")
    return missing


def apt_command(packages):
    return ["apt-get", "install", "-y", "--no-install-recommends", *sorted(packages)]


def run(command, argv):
    parser = argparse.ArgumentParser(prog="tfship doctor", description=__doc__)
    parser.add_argument("--install", action="store_true", help="install missing packages (root)")
    args = parser.parse_args(argv)
    missing = missing_packages()
    if not missing:
        print("[doctor] all system tools present")
        return 0
    for package, reasons in sorted(missing.items()):
        print(f"[doctor] missing {package}: needed for {'; '.join(reasons)}")
    install = apt_command(missing)
    if args.install and os.geteuid() == 0 and shutil.which("apt-get"):
        print("[doctor] installing: " + " ".join(install), flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
        subprocess.run(install, check=True, env=env)
        return 0
    print("[doctor] run as root: apt-get update && " + " ".join(install), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run("doctor", sys.argv[1:]))
