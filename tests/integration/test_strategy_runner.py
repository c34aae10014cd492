"""A strategy runner actor on the session's Ray cluster, fed by the gateway actor's live bar
stream from ibsim over TCP, sending its intents to a recording sink actor.

Killing the runner (Ray restarts it) resumes the deployment from the catalog without an
order_ref sent twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

from actors.deployments import DeploymentSpec, create_deployment
from actors.gateway import get_gateway
from actors.pacing import PacingRules
from actors.runner_state import order_ref
from actors.strategy_runner import get_runner
from core.settings import Settings
from ibsim.server import IBSim
from ibsim.testing import eventually, running_ibsim
from storage.bars import BarStore
from storage.catalog import Catalog, DeploymentStatus

pytestmark = pytest.mark.integration

SPEED = 300.0  # one 5-minute bar per real second
AAPL = "AAPL.NASDAQ"


@pytest.fixture
def sim() -> Iterator[IBSim]:
    start = datetime(2024, 3, 12, 14, 45, tzinfo=UTC)
    with running_ibsim(seed=11, pacing="strict", speed=SPEED, start=start) as server:
        yield server


def test_runner_actor_trades_streamed_bars_and_survives_a_restart(
    ray_session: None, sim: IBSim, tmp_path: Any
) -> None:
    import ray

    @ray.remote(num_cpus=0)
    class RecordingSink:  # stands in for the order manager (idempotent by order_ref there)
        def __init__(self) -> None:
            self.orders: list[Any] = []

        def submit(self, order: Any) -> None:
            self.orders.append(order)

        def refs(self) -> list[str]:
            return [o.order_ref for o in self.orders]

    settings = Settings.from_env({
        "SCIZOR_HOME": str(tmp_path),
        "SCIZOR_DATABASE_URL": f"sqlite:///{tmp_path / 'scizor.db'}",
        "SCIZOR_BAR_STORE": str(tmp_path / "bars"),
        "SCIZOR_IB_HOST": "127.0.0.1",
        "SCIZOR_IB_PORT": str(sim.port),
        "SCIZOR_IB_CLIENT_ID": "951",
    })  # fmt: skip
    catalog = Catalog(settings.db.url)
    catalog.upgrade()
    dep = create_deployment(catalog, DeploymentSpec(
        strategy="sma_cross", params={"fast": 2, "slow": 3}, instruments=[AAPL],
        capital=100_000, account="DU1234567", bar_size="5m",
    ))  # fmt: skip
    ns = "scizor-test"
    gateway = get_gateway(settings, time_scale=SPEED, rules=PacingRules.ibkr(), namespace=ns,
                          name="scizor-gateway-runner-test")  # fmt: skip
    sink = RecordingSink.remote()  # type: ignore[attr-defined]
    runner = get_runner(dep.id, settings, gateway=gateway, sink=sink, poll_interval=0.2,
                        namespace=ns)  # fmt: skip
    try:
        status = ray.get(runner.start.remote(False), timeout=120)
        assert status["running"] and not status["paused"]
        assert catalog.deployments.get(dep.id).status is DeploymentStatus.RUNNING

        def saved_refs(at_least: int) -> list[str] | None:
            refs = ray.get(sink.refs.remote(), timeout=30)
            state = catalog.deployments.runner_state(dep.id) or {}
            last = (state.get("instruments", {}).get(AAPL) or {}).get("last_bar")
            if len(refs) < at_least or last is None:
                return None
            # the newest intent is saved as processed: no send is in flight
            return refs if refs[-1] <= order_ref(dep.id, AAPL, pd.Timestamp(last)) else None

        before = eventually(lambda: saved_refs(2), timeout=120, interval=0.5)
        pid = ray.get(runner.status.remote(), timeout=30)["pid"]
        ray.kill(runner, no_restart=False)  # Ray restarts it: a new process, same name
        # nobody calls the restarted runner: it resumes by itself and trades on
        after = eventually(lambda: saved_refs(len(before) + 2), timeout=120, interval=0.5)

        def resumed() -> dict[str, Any] | None:
            try:
                status = ray.get(runner.status.remote(), timeout=60)
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
                return None
            return status if status["pid"] != pid else None

        restarted = eventually(resumed, timeout=60, interval=0.5)
        assert restarted["running"] and restarted["sent"], "the new process sent intents"
        assert not set(restarted["sent"]) & set(before), "and none the old one had sent"
        assert after[: len(before)] == before
        assert len(after) == len(set(after)), "no order_ref sent twice across the restart"
        assert after == sorted(after), "one intent per bar, oldest first"

        final = ray.get(runner.stop.remote(True), timeout=120)
        assert not final["running"]
        position = final["state"]["instruments"][AAPL]["position"]
        assert position == "0", "flattened"
        assert catalog.deployments.get(dep.id).status is DeploymentStatus.STOPPED
        stored = BarStore(settings.storage.bar_store).read(AAPL, "5m")
        assert len(stored) > 0, "the streamed bars were kept for the next restart"
    finally:
        ray.kill(runner)
        ray.kill(sink)
        ray.kill(gateway)
        catalog.dispose()
