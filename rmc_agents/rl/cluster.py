"""Joining an existing Ray cluster: a fast address check, token authentication, where runners run.

``train_agent.py --address HOST:PORT`` (or ``auto``, or ``RAY_ADDRESS``) connects to a cluster
started with ``ray start``. Left to itself, ``ray.init`` waits about 40 s on an address where
nothing answers and about 20 s when the cluster refuses its token, then fails with a message that
names neither cause. :func:`check_ray_address` asks first, with short timeouts, and raises one
:class:`ClusterError` that says what is wrong and what to do.

Token authentication stays on. Ray 2.60 turns it on by itself only for a local cluster (or
``--address auto`` with a token file present); for an explicit address it connects without a token
unless ``RAY_AUTH_MODE=token`` is set. :func:`enable_token_auth` sets it whenever a token is at hand
(``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``) and the user has not chosen a
mode, so the trainer never talks to a cluster unauthenticated by accident.

:func:`env_runner_nodes` reports which Ray node each EnvRunner actor lives on (the trainer logs and
writes it to ``summary.json``), which is how a run shows that its runners spread over the cluster.
"""

from __future__ import annotations

import os
import socket
import threading
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = [
    "ClusterError",
    "check_ray_address",
    "enable_token_auth",
    "env_runner_nodes",
    "requested_address",
    "token_available",
]

AUTH_MODE_VAR = "RAY_AUTH_MODE"
#: Seconds to wait for a TCP connection to the cluster's GCS port.
CONNECT_TIMEOUT_S = 5.0
#: Seconds to wait for the GCS to answer one request once the port is open.
GCS_TIMEOUT_S = 15.0


class ClusterError(RuntimeError):
    """The Ray cluster named by ``--address`` / ``RAY_ADDRESS`` cannot be used."""


def requested_address(address: str | None) -> str | None:
    """The cluster address to join: ``address`` if given, else ``RAY_ADDRESS``, else None (local)."""
    if address:
        return address
    return os.environ.get("RAY_ADDRESS") or None


def token_available() -> bool:
    """True when Ray would find an authentication token (without reading it)."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        return Path(path).is_file()
    return (Path.home() / ".ray" / "auth_token").is_file()


def enable_token_auth() -> bool:
    """Turn token authentication on for this process (and its Ray workers) if a token is at hand.

    An explicit ``RAY_AUTH_MODE`` (``token`` or ``disabled``) is the user's choice and is kept.
    Returns whether token authentication is on.
    """
    mode = os.environ.get(AUTH_MODE_VAR)
    if mode is not None:
        return mode.lower() == "token"
    if not token_available():
        return False
    os.environ[AUTH_MODE_VAR] = "token"
    try:  # refresh Ray's cached config in case Ray already read the environment
        from ray._raylet import Config

        Config.initialize("")
    except Exception:  # pragma: no cover - private API; the environment variable is what counts
        pass
    return True


def _split_host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ClusterError(f"--address '{address}' is not HOST:PORT (e.g. 10.0.0.5:6379) or 'auto'")
    return host.strip("[]"), int(port)


def _resolve(address: str) -> str:
    """``auto`` -> the host:port of the cluster ``ray start`` left on this machine."""
    if address != "auto":
        return address
    from ray._private.services import canonicalize_bootstrap_address

    try:
        resolved = canonicalize_bootstrap_address("auto")
    except Exception as exc:
        raise ClusterError(
            "--address auto: no running Ray cluster found on this machine "
            f"({exc}); start one with `ray start --head` or give HOST:PORT"
        ) from None
    if not resolved:
        raise ClusterError(
            "--address auto: no running Ray cluster found on this machine; start one with "
            "`ray start --head` or give HOST:PORT"
        )
    return resolved


def _probe_gcs(address: str, timeout_s: float) -> str | None:
    """Ask the GCS at ``address`` for one value; return an error text, or None if it answered."""
    outcome: dict[str, Any] = {}

    def ask() -> None:
        try:
            from ray._raylet import GcsClient

            client = GcsClient(address=address)
            client.internal_kv_get(b"rmc_agents_probe", None, timeout=timeout_s)
            outcome["ok"] = True
        except Exception as exc:  # reported below
            outcome["error"] = exc

    thread = threading.Thread(target=ask, name="rmc-gcs-probe", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        return (
            f"something listens at {address} but no Ray GCS answered within {timeout_s:.0f} s "
            "(is it the port `ray start --head` printed?)"
        )
    exc = outcome.get("error")
    if exc is None:
        return None
    text = str(exc)
    if "auth" in type(exc).__name__.lower() or "InvalidAuthToken" in text:
        return (
            f"the Ray cluster at {address} refused this machine's authentication token; copy the "
            "head node's ~/.ray/auth_token here (or set RAY_AUTH_TOKEN_PATH / RAY_AUTH_TOKEN) and "
            "set RAY_AUTH_MODE=token"
        )
    return f"the Ray cluster at {address} did not answer: {type(exc).__name__}: {text[:200]}"


def check_ray_address(
    address: str,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
    gcs_timeout_s: float = GCS_TIMEOUT_S,
) -> str:
    """Check that a Ray cluster answers at ``address`` and accepts our token; return host:port.

    ``ray://`` (Ray Client) addresses are passed through unchecked.

    Raises:
        ClusterError: a malformed address, nothing listening, no GCS answering, or the token
            refused; the message names the address and the fix.
    """
    if address.startswith("ray://"):
        return address
    resolved = _resolve(address)
    host, port = _split_host_port(resolved)
    try:
        with socket.create_connection((host, port), timeout=connect_timeout_s):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise ClusterError(
            f"no Ray cluster answers at {resolved} ({reason} after at most "
            f"{connect_timeout_s:.0f} s); start one with `ray start --head --port {port}` there, "
            "or leave out --address (and RAY_ADDRESS) to start a local one"
        ) from None
    enable_token_auth()
    problem = _probe_gcs(resolved, gcs_timeout_s)
    if problem is not None:
        raise ClusterError(problem)
    return resolved


def env_runner_nodes(algo: Any) -> dict[str, Any]:
    """Where the algorithm's remote EnvRunners live: ``{"nodes": {node_id: count}, "runners": n}``.

    Only healthy runners answer; an algorithm sampling in the driver reports no runners.
    """
    group = getattr(algo, "env_runner_group", None)
    if group is None or group.num_remote_env_runners() == 0:
        return {"runners": 0, "nodes": {}}

    def node_of(runner: Any) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    ids = group.foreach_env_runner(node_of, local_env_runner=False, timeout_seconds=30)
    return {"runners": len(ids), "nodes": dict(Counter(ids))}
