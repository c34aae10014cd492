"""The local head ``scizor up`` starts: its ``ray start`` command line (nothing is started here)."""

from __future__ import annotations

import json

from cluster.bootstrap import (
    AUTH_MODE_VAR,
    HEAD_RESOURCE,
    LOCAL_GCS_PORT,
    head_start_command,
    local_address,
    prepare_auth,
)
from core.settings import Settings


def flags(cmd: list[str]) -> dict[str, str]:
    """``--name=value`` arguments as a dict (bare flags map to "")."""
    out: dict[str, str] = {}
    for arg in cmd:
        if arg.startswith("--"):
            name, _, value = arg.partition("=")
            out[name] = value
    return out


def test_default_head_binds_loopback_and_dashboard_on_loopback() -> None:
    cmd = head_start_command(Settings.from_env({}), ray="/venv/bin/ray")
    assert cmd[:3] == ["/venv/bin/ray", "start", "--head"]
    got = flags(cmd)
    assert got["--node-ip-address"] == "127.0.0.1"
    assert got["--dashboard-host"] == "127.0.0.1"
    assert got["--port"] == str(LOCAL_GCS_PORT)
    assert got["--dashboard-port"] == "8265"
    assert json.loads(got["--resources"]) == {HEAD_RESOURCE: 1}
    assert "--disable-usage-stats" in got
    assert "--num-cpus" not in got  # Ray counts the machine's CPUs itself
    assert not any("0.0.0.0" in arg for arg in cmd)
    assert local_address() == f"127.0.0.1:{LOCAL_GCS_PORT}"


def test_dashboard_host_port_and_cpus_come_from_the_settings() -> None:
    env = {
        "SCIZOR_DASHBOARD_HOST": "10.0.0.5",
        "SCIZOR_DASHBOARD_PORT": "9999",
        "SCIZOR_RAY_NUM_CPUS": "3",
    }
    got = flags(head_start_command(Settings.from_env(env), ray="ray"))
    assert got["--dashboard-host"] == "10.0.0.5"
    assert got["--dashboard-port"] == "9999"
    assert got["--num-cpus"] == "3"
    assert got["--node-ip-address"] == "127.0.0.1"  # the node itself stays on loopback


def test_local_head_requires_a_token_unless_the_user_chose_a_mode() -> None:
    local: dict[str, str] = {}
    prepare_auth(local)
    assert local[AUTH_MODE_VAR] == "token"
    chosen = {AUTH_MODE_VAR: "disabled"}
    prepare_auth(chosen)
    assert chosen[AUTH_MODE_VAR] == "disabled"
    joined = {"SCIZOR_RAY_ADDRESS": "10.0.0.1:6379"}
    prepare_auth(joined)
    assert AUTH_MODE_VAR not in joined  # a cluster we join keeps its operator's mode
