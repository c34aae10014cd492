"""`scizor up` / `status` / `down` end to end, on the shared local Ray cluster.

The CLI runs as a separate driver process joining the test session's Ray cluster (the rule is
one Ray cluster per test run), starts the embedded ibsim and the Serve API, and `down` removes
exactly what `up` started.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration

SCIZOR = str(Path(sys.executable).with_name("scizor"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def eventually(predicate, *, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def gateway_metrics_exported() -> bool:
    """True once the gateway's connected gauge reads 1 on a node's Prometheus endpoint."""
    import ray

    for node in ray.nodes():
        if not node["Alive"]:
            continue
        url = f"http://127.0.0.1:{node['MetricsExportPort']}/metrics"
        try:
            text = httpx.get(url, timeout=5).text
        except httpx.HTTPError:
            continue
        for line in text.splitlines():
            if line.startswith("ray_scizor_gateway_connected{") and line.endswith(" 1.0"):
                return True
    return False


def scizor(env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SCIZOR, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_up_serves_health_from_ray_serve_and_down_stops_what_it_started(
    ray_session, serve_api_port, tmp_path
):
    import ray

    api_port, ib_port = serve_api_port, free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SCIZOR_")},
        "SCIZOR_HOME": str(tmp_path / "home"),
        "SCIZOR_RAY_ADDRESS": ray.get_runtime_context().gcs_address,
        "SCIZOR_API_PORT": str(api_port),
        "SCIZOR_IB_PORT": str(ib_port),
        "COLUMNS": "200",
    }
    up = scizor(env, "up", "--detach", "--no-prepare")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"http://127.0.0.1:{api_port}" in up.stdout

        health = httpx.get(f"http://127.0.0.1:{api_port}/health", timeout=10)
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "ok", body
        assert body["checks"]["gateway"]["connected"] is True
        assert body["checks"]["catalog"]["revision"]
        assert port_open(ib_port), "embedded ibsim is not listening"
        assert f"http://127.0.0.1:{api_port}/ui" in up.stdout  # the operator console
        assert "active; 0 deployment runner(s) resumed" in up.stdout
        page = httpx.get(f"http://127.0.0.1:{api_port}/ui", timeout=10)  # open: no token
        assert page.status_code == 200 and "EMERGENCY STOP" in page.text
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        for name in ("scizor-risk-manager", "scizor-order-manager"):  # trading is ready
            assert ray.get_actor(name, namespace="scizor") is not None
        assert (tmp_path / "home" / "scizor.db").exists(), "catalog was not migrated"

        assert eventually(gateway_metrics_exported, timeout=60), "no scizor metrics in Ray's"

        status = scizor(env, "status")
        assert status.returncode == 0
        assert "healthy" in status.stdout and "yes" in status.stdout
        assert "not started (scizor up --no-prepare)" in status.stdout
    finally:
        down = scizor(env, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "SCIZOR stopped." in down.stdout
    assert eventually(lambda: not port_open(ib_port)), "ibsim still listening after down"
    assert ray.is_initialized(), "down must not stop a cluster it did not start"
    for name in ("scizor-gateway", "scizor-risk-manager", "scizor-order-manager"):
        with pytest.raises(ValueError):
            ray.get_actor(name, namespace="scizor")
    assert scizor(env, "status").stdout.count("down") == 1


def test_up_with_bad_configuration_fails_cleanly_naming_the_variable(tmp_path):
    env = {**os.environ, "SCIZOR_HOME": str(tmp_path), "SCIZOR_API_PORT": "eighty"}
    result = scizor(env, "up", timeout=60)
    assert result.returncode == 2
    assert "SCIZOR_API_PORT" in result.stderr
    assert "Traceback" not in result.stderr
