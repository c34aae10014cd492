"""The trading commands as a user runs them (the real ``scizor`` executable, joining the
session cluster as a driver) against ibsim over TCP through the cluster's gateway, order-
manager, risk-manager and runner actors, with SQLite and PostgreSQL catalogs: ``deploy
--start`` trades, ``orders`` and ``positions`` show it, ``halt --flatten`` cancels an open
order, pauses the deployment and closes every position, ``resume-trading`` clears the kill
switch and leaves the deployment paused."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from actors.gateway import get_gateway
from actors.order_actor import get_order_manager
from actors.pacing import PacingRules
from core.settings import Settings
from core.types import Order, OrderStatus, OrderType, Side
from ibsim.testing import running_ibsim
from storage.catalog import Catalog, DeploymentStatus
from tests.integration.test_api_support import backend_url, eventually, kill_trading_actors

pytestmark = pytest.mark.integration

SCIZOR = str(Path(sys.executable).with_name("scizor"))
SPEED = 100.0  # a 5-minute bar every 3 s; the session (13:30-20:00 UTC) lasts ~3.8 min
START = datetime(2024, 3, 12, 13, 45, tzinfo=UTC)  # NASDAQ open: orders fill now
AAPL = "AAPL.NASDAQ"


@dataclass
class Shell:
    env: dict[str, str]
    settings: Settings
    catalog: Catalog
    gateway: Any

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SCIZOR, *args], env=self.env, capture_output=True, text=True,
                              timeout=240, check=False)  # fmt: skip

    def broker_positions(self) -> dict[str, Decimal]:
        import ray

        held = ray.get(self.gateway.positions.remote(), timeout=60)
        return {p.instrument: p.quantity for p in held if p.quantity != 0}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def catalog_db(request: pytest.FixtureRequest, tmp_path_factory: Any) -> Iterator[str]:
    yield from backend_url(request, tmp_path_factory)


@pytest.fixture(scope="module")
def shell(ray_session: None, catalog_db: str, tmp_path_factory: Any) -> Iterator[Shell]:
    import ray

    kill_trading_actors()  # another test's, on another catalog
    home = tmp_path_factory.mktemp("cli-trading")
    with running_ibsim(seed=11, pacing="strict", speed=SPEED, start=START) as sim:
        scizor_env = {
            "SCIZOR_HOME": str(home), "SCIZOR_DATABASE_URL": catalog_db,
            "SCIZOR_BAR_STORE": str(home / "bars"), "SCIZOR_IB_HOST": "127.0.0.1",
            "SCIZOR_IB_PORT": str(sim.port), "SCIZOR_IB_CLIENT_ID": "85",
            "SCIZOR_RAY_ADDRESS": ray.get_runtime_context().gcs_address,
        }  # fmt: skip
        settings = Settings.from_env(scizor_env)
        base = {k: v for k, v in os.environ.items() if not k.startswith("SCIZOR_")}
        gateway = get_gateway(settings, time_scale=SPEED, rules=PacingRules.ibkr())
        catalog = Catalog(catalog_db)
        try:
            ray.get(gateway.ready.remote(), timeout=60)
            yield Shell(env={**base, **scizor_env, "COLUMNS": "250"}, settings=settings,
                        catalog=catalog, gateway=gateway)  # fmt: skip
        finally:
            kill_trading_actors(catalog_db)
            with contextlib.suppress(Exception):
                ray.kill(gateway, no_restart=True)
            catalog.dispose()


def test_deploy_orders_positions_halt_and_resume_trading(shell: Shell) -> None:
    import ray

    deployed = shell.run("deploy", "sma_cross", "-i", AAPL, "--capital", "100000",
                         "-p", "fast=2", "-p", "slow=3", "--bar-size", "5m",
                         "--account", "DU1234567", "--paper", "--start")  # fmt: skip
    assert deployed.returncode == 0, deployed.stderr
    [dep] = shell.catalog.deployments.list()
    assert dep.status is DeploymentStatus.RUNNING and "running" in deployed.stdout
    assert "sma_cross(fast=2, slow=3" in deployed.stdout

    def filled() -> list[Any]:
        records = shell.catalog.orders.list(deployment_id=dep.id)
        return [r for r in records if r.status == OrderStatus.FILLED]

    [*_, traded] = eventually(filled, timeout=180, interval=1)
    listed = shell.run("orders")
    assert listed.returncode == 0, listed.stderr
    assert traded.order_ref in listed.stdout and "Filled" in listed.stdout
    traded_too = shell.run("positions", "--flat")  # the strategy may be flat again by now
    assert traded_too.returncode == 0 and AAPL in traded_too.stdout, traded_too.stdout

    om = get_order_manager(shell.settings)  # a manual long the strategy (long only) cannot undo
    buy = Order(instrument=AAPL, side=Side.BUY, quantity=Decimal(5), order_ref="cli-buy")
    assert ray.get(om.submit.remote(buy), timeout=120).sent
    eventually(lambda: shell.catalog.orders.get("cli-buy").status == OrderStatus.FILLED,
               timeout=60)  # fmt: skip
    shown = shell.run("positions")
    assert shown.returncode == 0 and AAPL in shown.stdout, shown.stdout + shown.stderr
    assert "no positions" not in shown.stdout

    far = Order(instrument=AAPL, side=Side.BUY, quantity=Decimal(1), order_type=OrderType.LIMIT,
                limit_price=Decimal("1.00"), order_ref="cli-far")  # fmt: skip
    assert ray.get(om.submit.remote(far), timeout=120).sent
    eventually(lambda: shell.catalog.orders.get("cli-far").status == OrderStatus.SUBMITTED,
               timeout=60)  # fmt: skip
    working = shell.run("orders", "--open")
    assert "cli-far" in working.stdout and traded.order_ref not in working.stdout

    halted = shell.run("halt", "--reason", "cli test", "--flatten")
    assert halted.returncode == 0, halted.stderr
    assert "Trading halted" in halted.stdout and "cli-far" in halted.stdout
    assert shell.catalog.deployments.get(dep.id).status is DeploymentStatus.PAUSED
    state = shell.catalog.risk.state() or {}
    assert state.get("state") == "HALTED" and state.get("reason") == "cli test", state
    eventually(lambda: shell.catalog.orders.get("cli-far").status == OrderStatus.CANCELLED,
               timeout=60)  # fmt: skip
    eventually(lambda: shell.broker_positions() == {}, timeout=120, interval=0.5)
    eventually(lambda: "no positions" in shell.run("positions").stdout, timeout=60, interval=1)

    resumed = shell.run("resume-trading")
    assert resumed.returncode == 0, resumed.stderr
    assert "Trading allowed again" in resumed.stdout and str(dep.id) in resumed.stdout
    assert (shell.catalog.risk.state() or {}).get("state") == "ACTIVE"
    assert shell.catalog.deployments.get(dep.id).status is DeploymentStatus.PAUSED

    stopped = shell.run("deployments", str(dep.id), "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert shell.catalog.deployments.get(dep.id).status is DeploymentStatus.STOPPED


def test_bad_trading_input_is_one_line_naming_it_with_exit_code_2(shell: Shell) -> None:
    for args, words in [
        (("deploy", "sma_cros", "-i", AAPL, "--capital", "10"), "sma_cross"),
        (("deploy", "sma_cross", "-i", AAPL, "--capital", "-1"), "capital"),
        (("deploy", "sma_cross", "-i", AAPL, "--capital", "10", "-p", "fast=x"), "fast"),
        (("deploy", "sma_cross", "-i", AAPL, "--capital", "10", "--live", "--start"),
         "--confirm-live"),
        (("halt", "--reason", " "), "--reason"),
        (("deployments", "999"), "999"),
    ]:  # fmt: skip
        done = shell.run(*args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert words in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)
