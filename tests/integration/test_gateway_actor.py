"""The gateway as a named, detached Ray actor, against ibsim over TCP (one small Ray test)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from actors.gateway import get_gateway
from actors.pacing import PacingRules
from core.errors import NotFound
from core.settings import IBSettings
from ibsim.server import IBSim
from ibsim.testing import eventually, running_ibsim

pytestmark = pytest.mark.integration


@pytest.fixture
def sim() -> Iterator[IBSim]:
    start = datetime(2024, 3, 12, 15, 0, tzinfo=UTC)
    with running_ibsim(seed=5, pacing="strict", speed=300, start=start) as server:
        yield server


def test_gateway_actor_is_one_named_detached_actor_serving_bars(
    ray_session: None, sim: IBSim
) -> None:
    import ray

    settings = IBSettings(host="127.0.0.1", port=sim.port, client_id=901, account=None, timeout=10)
    kw = {"namespace": "scizor-test", "name": "scizor-gateway-test"}
    gateway = get_gateway(settings, time_scale=300.0, rules=PacingRules.ibkr(), **kw)
    try:
        health = ray.get(gateway.ready.remote(), timeout=60)
        assert health["connected"] and health["client_id"] == 901

        again = get_gateway(settings, **kw)  # get_if_exists: the same actor, no new connection
        assert again._actor_id == gateway._actor_id
        assert ray.get(again.health.remote(), timeout=30)["client_ids_tried"] == [901]

        found = ray.get(gateway.qualify.remote(["AAPL", "NOSUCHSYM"]), timeout=30)
        assert found["AAPL"].con_id == 420681219 and found["NOSUCHSYM"] is None
        with pytest.raises(NotFound):
            ray.get(gateway.contract_details.remote("NOSUCHSYM"), timeout=30)

        start, end = datetime(2023, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)
        bars = ray.get(
            gateway.historical_bars.remote("AAPL", bar_size="1d", start=start, end=end),
            timeout=60,
        )
        assert len(bars) == 250 and str(bars.index.tz) == "UTC"
    finally:
        ray.kill(gateway)


def test_gateway_actor_reports_stream_states_in_health_and_metrics(
    ray_session: None, sim: IBSim
) -> None:
    import ray

    from actors.metrics import GatewayMetrics

    metrics = GatewayMetrics()  # the tag keys Ray checks on every call must match
    metrics.streams(live=1, stale=0)
    metrics.stream_failure()

    settings = IBSettings(host="127.0.0.1", port=sim.port, client_id=911, account=None, timeout=10)
    kw = {"namespace": "scizor-test", "name": "scizor-gateway-streams-test"}
    gateway = get_gateway(settings, time_scale=300.0, rules=PacingRules.ibkr(), **kw)
    try:
        stream_id = ray.get(gateway.stream_bars.remote("AAPL.NASDAQ", "5s"), timeout=60)
        batch = ray.get(gateway.poll_stream.remote(stream_id), timeout=30)
        assert batch.status.stream_id == stream_id and not batch.status.stale
        health = ray.get(gateway.health.remote(), timeout=30)
        assert (health["streams"], health["streams_stale"]) == (1, 0)
        [state] = health["stream_states"]
        assert (state["instrument"], state["state"], state["con_id"]) == (
            "AAPL.NASDAQ",
            "live",
            420681219,
        )
    finally:
        ray.kill(gateway)


def test_gateway_actor_restarted_by_ray_reports_an_order_filled_before(
    ray_session: None, sim: IBSim
) -> None:
    import ray

    from core.types import Order, OrderStatus, Side

    settings = IBSettings(host="127.0.0.1", port=sim.port, client_id=921, account=None, timeout=10)
    kw = {"namespace": "scizor-test", "name": "scizor-gateway-restart-test"}
    gateway = get_gateway(settings, time_scale=300.0, rules=PacingRules.ibkr(), **kw)
    order = Order(instrument="MSFT.NASDAQ", side=Side.BUY, quantity=Decimal(9), order_ref="a-1")
    try:
        ray.get(gateway.place_order.remote(order), timeout=60)
        eventually(
            lambda: (
                ray.get(gateway.order_status.remote("a-1"), timeout=30).status == OrderStatus.FILLED
            ),
            timeout=30,
        )
        ray.kill(gateway, no_restart=False)  # Ray restarts it: a new process, a new connection

        def restarted() -> Any:
            try:  # a fresh instance has not connected yet (the old one tried client id 921)
                health = ray.get(gateway.health.remote(), timeout=30)
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
                return None
            return health["client_ids_tried"] == []

        eventually(restarted, timeout=60)
        ack = ray.get(gateway.order_status.remote("a-1"), timeout=60)
        assert (ack.status, ack.filled, ack.instrument) == (
            OrderStatus.FILLED,
            Decimal(9),
            "MSFT.NASDAQ",
        )
        health = ray.get(gateway.health.remote(), timeout=30)
        assert health["client_ids_tried"] == [921]  # a fresh service, the same client id
    finally:
        ray.kill(gateway)
