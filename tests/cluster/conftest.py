"""A real two-node Ray cluster on loopback, with token authentication, for the cluster tests.

Two ``ray start --block`` processes, as a user would run them on two machines: a head with 1 CPU
and a second node with 1 CPU (and a ``second_node`` resource), both on free ports, under their
own temp dir, and with a fresh token of their own (``RAY_AUTH_TOKEN_PATH``), so nothing here
touches another Ray on this machine or ``~/.ray/auth_token``. Torn down (SIGTERM, then SIGKILL
of what is left of each node's session) whatever happens in the test.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .procs import end_session

RAY = str(Path(sys.executable).with_name("ray"))


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports that were free a moment ago."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any Ray address/auth settings, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
    }
    env.update(SDL_AUDIODRIVER="dummy", RAY_USAGE_STATS_ENABLED="0", **extra)
    return env


@dataclass
class TwoNodeCluster:
    address: str
    token_path: Path
    temp_dir: Path
    logs: list[Path] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a process on a machine that holds the cluster's token."""
        return clean_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(self.token_path), **extra)

    def log_tail(self, n: int = 30) -> str:
        return "\n".join(
            f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-n:])
            for p in self.logs
            if p.exists()
        )


def _wait_started(proc: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log.exists() and "Ray runtime started" in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited with {proc.returncode}:\n{log.read_text()}")
        time.sleep(0.5)
    raise RuntimeError(f"ray start did not come up in {timeout_s:.0f} s:\n{log.read_text()}")


@pytest.fixture
def two_node_cluster(tmp_path):
    """Yield a :class:`TwoNodeCluster`; both nodes are stopped afterwards, always."""
    temp_dir = Path(tempfile.mkdtemp(prefix="rmcray-", dir="/tmp"))  # short: socket paths
    token_path = tmp_path / "auth_token"
    token_path.write_text(secrets.token_hex(32))
    token_path.chmod(0o600)
    gcs, client, *ports = free_ports(10)
    address = f"127.0.0.1:{gcs}"
    cluster = TwoNodeCluster(address, token_path, temp_dir)
    env = cluster.env()
    common = ["--block", "--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    common += [f"--temp-dir={temp_dir}"]

    def node_ports(a: int, b: int, c: int, d: int) -> list[str]:
        return [
            f"--dashboard-agent-listen-port={a}",
            f"--dashboard-agent-grpc-port={b}",
            f"--runtime-env-agent-port={c}",
            f"--metrics-export-port={d}",
        ]

    head_cmd = [RAY, "start", "--head", f"--port={gcs}", "--include-dashboard=false"]
    head_cmd += [f"--ray-client-server-port={client}", *common, *node_ports(*ports[:4])]
    worker_cmd = [RAY, "start", f"--address={address}", '--resources={"second_node": 1}']
    worker_cmd += [*common, *node_ports(*ports[4:8])]
    procs: list[subprocess.Popen] = []
    try:
        for name, cmd in (("head", head_cmd), ("worker", worker_cmd)):
            log = tmp_path / f"ray-{name}.log"
            cluster.logs.append(log)
            with log.open("w") as out:
                procs.append(
                    subprocess.Popen(
                        cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                    )
                )
            _wait_started(procs[-1], log, timeout_s=90)
        yield cluster
    finally:
        for proc in reversed(procs):  # the second node first, then the head
            end_session(proc.pid)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - end_session killed it
                proc.kill()
        shutil.rmtree(temp_dir, ignore_errors=True)
