"""Ray bootstrap: start or join the cluster the settings name.

With no ``SCIZOR_RAY_ADDRESS``, ``scizor up`` starts a local head node (``ray start --head``)
whose dashboard listens on 127.0.0.1; every later command joins it. The head carries the
custom resource ``scizor_head`` so the gateway actor (the one IBKR connection) lands there.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from core.errors import ConfigError
from core.settings import Settings

HEAD_RESOURCE = "scizor_head"
NAMESPACE = "scizor"
LOCAL_GCS_PORT = 6380


AUTH_MODE_VAR = "RAY_AUTH_MODE"


def prepare_auth(env: dict[str, str] | os._Environ[str]) -> None:
    """Use Ray's token authentication for the local head unless the user chose a mode.

    Must run before Ray is imported: Ray reads the mode once. A cluster named by
    ``SCIZOR_RAY_ADDRESS`` keeps whatever mode its operator set (``RAY_AUTH_MODE``); the head
    ``scizor up`` starts always requires the token in ``~/.ray/auth_token`` (generated once).
    """
    if not env.get("SCIZOR_RAY_ADDRESS"):
        env.setdefault(AUTH_MODE_VAR, "token")


def ray_executable() -> str:
    """The ``ray`` CLI of this Python environment."""
    candidate = Path(sys.executable).with_name("ray")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("ray")
    if not found:
        raise ConfigError("the 'ray' command was not found; install SCIZOR with 'make up'")
    return found


def local_address() -> str:
    """The GCS address of the head node ``scizor up`` starts on this machine."""
    return f"127.0.0.1:{LOCAL_GCS_PORT}"


def head_start_command(settings: Settings, *, ray: str) -> list[str]:
    """The ``ray start --head`` command line of the local head node (pure: runs nothing).

    The node address is loopback; the dashboard listens on ``SCIZOR_DASHBOARD_HOST``
    (default 127.0.0.1) and ``SCIZOR_DASHBOARD_PORT``.

    Args:
        settings: The settings (Ray dashboard host/port, CPU count).
        ray: The ``ray`` executable to run.
    """
    cmd = [
        ray,
        "start",
        "--head",
        f"--port={LOCAL_GCS_PORT}",
        "--node-ip-address=127.0.0.1",  # a laptop head stays on loopback
        f"--dashboard-host={settings.ray.dashboard_host}",
        f"--dashboard-port={settings.ray.dashboard_port}",
        f"--resources={json.dumps({HEAD_RESOURCE: 1})}",
        "--disable-usage-stats",
    ]
    if settings.ray.num_cpus:
        cmd.append(f"--num-cpus={settings.ray.num_cpus}")
    return cmd


def start_local_head(settings: Settings) -> str:
    """Start a local Ray head node (idempotent); return its address.

    Raises:
        ConfigError: if Ray cannot start (the message carries Ray's own output).
    """
    address = local_address()
    if head_running(address):
        return address
    cmd = head_start_command(settings, ray=ray_executable())
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    prepare_auth(env)
    if env.get(AUTH_MODE_VAR) == "token":
        # Creates ~/.ray/auth_token once; it prints the token, which must not reach a log.
        subprocess.run(
            [ray_executable(), "get-auth-token", "--generate"],
            capture_output=True,
            env=env,
            check=False,
        )
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise ConfigError(f"ray start failed:\n{proc.stdout}\n{proc.stderr}")
    return address


def stop_local_head() -> None:
    """Stop the local Ray node(s) started by ``scizor up``."""
    subprocess.run([ray_executable(), "stop", "--force"], capture_output=True, check=False)


def head_running(address: str) -> bool:
    """True when a Ray GCS answers at ``address``."""
    import socket

    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def connect(settings: Settings, *, address: str | None = None) -> None:
    """Join the cluster (``address``, else settings, else the local head) as a driver."""
    import ray

    target = address or settings.ray.address or local_address()
    if ray.is_initialized():
        return
    try:
        ray.init(
            address=target,
            namespace=NAMESPACE,
            logging_level=logging.WARNING,
            log_to_driver=False,
        )
    except ConnectionError as exc:
        raise ConfigError(
            f"cannot reach the Ray cluster at {target}: {exc}. Start SCIZOR with 'scizor up', "
            "or set SCIZOR_RAY_ADDRESS to a running cluster's address"
        ) from exc
