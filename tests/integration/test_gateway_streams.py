"""Live bar streams that lose their subscription: stale, retried with backoff, live again.

Against a real ibsim over TCP with its fault injection: a stall makes the re-subscription
after a 1100/1102 flap go unanswered (so it fails and is retried), and a simulated nightly
restart drops the connection and refuses new ones for a while.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from actors.gateway_service import GatewayService
from actors.ib_connection import Backoff
from actors.pacing import PacingRules
from actors.stream_status import StreamState
from core.settings import IBSettings
from ibsim.server import IBSim
from ibsim.testing import running_ibsim

pytestmark = pytest.mark.integration

SPEED = 300.0
US_OPEN = datetime(2024, 3, 12, 15, 0, tzinfo=UTC)
_client_ids = iter(range(7000, 8000, 10))


class RecordingObserver:
    """A GatewayObserver that keeps what the metrics would receive."""

    def __init__(self) -> None:
        self.stream_counts: list[tuple[int, int]] = []
        self.stream_failures = 0

    def request(self, kind: str) -> None:
        pass

    def error(self, code: int) -> None:
        pass

    def pacing_wait(self, seconds: float) -> None:
        pass

    def connected(self, up: bool) -> None:
        pass

    def streams(self, *, live: int, stale: int) -> None:
        self.stream_counts.append((live, stale))

    def stream_failure(self) -> None:
        self.stream_failures += 1


@pytest.fixture(scope="module")
def sim() -> Iterator[IBSim]:
    with running_ibsim(seed=17, pacing="strict", speed=SPEED, start=US_OPEN) as server:
        yield server


def service(sim: IBSim, observer: RecordingObserver, *, request_timeout: float) -> GatewayService:
    # a short connect timeout: ibsim closes refused connections after accepting them, and
    # ib_async then waits out the whole timeout before the next reconnect attempt
    settings = IBSettings(
        host="127.0.0.1", port=sim.port, client_id=next(_client_ids), account=None, timeout=3
    )
    return GatewayService(
        settings,
        time_scale=SPEED,
        backoff=Backoff(initial=0.05, cap=0.5),
        stream_backoff=Backoff(initial=0.2, cap=1.0, jitter=0.1),
        rules=PacingRules.ibkr(),
        request_timeout=request_timeout,
        observer=observer,
        seed=1,
    )


async def eventually(check: Callable[[], Any], *, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.02)
    return value


async def bars_arrive(svc: GatewayService, stream_id: str) -> int:
    deadline = time.monotonic() + 20
    while not len((batch := await svc.poll_stream(stream_id)).bars):
        assert time.monotonic() < deadline, "the stream delivered no completed bars"
        await asyncio.sleep(0.05)
    assert not batch.status.stale
    return len(batch.bars)


def test_gateway_stream_whose_resubscription_fails_is_stale_then_retried_live(
    sim: IBSim,
) -> None:
    observer = RecordingObserver()
    svc = service(sim, observer, request_timeout=1.5)

    async def body() -> None:
        stream_id = await svc.stream_bars("AAPL.NASDAQ", "5s")
        assert svc.streams.status(stream_id).state == StreamState.LIVE
        await asyncio.to_thread(sim.stall, 5.0)  # the re-subscription gets no answer
        await asyncio.to_thread(sim.connectivity_flap)  # 1100 then 1102: re-subscribe
        stale = await eventually(
            lambda: (s := svc.streams.status(stream_id)).failures >= 1 and s.stale and s
        )
        assert "re-subscribing failed" in stale.error and "no answer" in stale.error
        assert (await svc.poll_stream(stream_id)).status.stale  # bars from before, if any
        batch = await svc.poll_stream(stream_id)
        assert batch.status.stale and len(batch.bars) == 0  # nothing new, and says why
        health = svc.health()
        assert (health.streams, health.streams_stale) == (1, 1)
        listed = health.as_dict()["stream_states"]
        assert [(s["stream_id"], s["state"], s["stale"]) for s in listed] == [
            (stream_id, "stale", True)
        ]
        assert observer.stream_failures >= 1 and (0, 1) in observer.stream_counts

        live = await eventually(lambda: (s := svc.streams.status(stream_id)).state == "live" and s)
        assert live.error == "" and live.next_retry_at is None and live.subscriptions == 2
        assert live.failures == observer.stream_failures >= 1
        assert observer.stream_counts[-1] == (1, 0) and svc.health().streams_stale == 0
        assert await bars_arrive(svc, stream_id) > 0

    async def main() -> None:
        await svc.connect()
        try:
            await body()
        finally:
            await svc.disconnect()

    asyncio.run(main())


def test_gateway_streams_are_stale_while_disconnected_and_live_after_reconnect(
    sim: IBSim,
) -> None:
    observer = RecordingObserver()
    svc = service(sim, observer, request_timeout=10)

    async def body() -> None:
        first = await svc.stream_bars("MSFT.NASDAQ", "5s")
        second = await svc.stream_bars("VEA.ARCA", "5s")
        await asyncio.to_thread(sim.restart, 1.0)  # drop everyone, refuse for a second
        down = await eventually(lambda: not svc.health().connected and svc.health())
        assert down.streams_stale == 2
        assert {s.error for s in down.stream_states} == {"the connection to IB dropped"}
        await eventually(lambda: svc.health().connected and svc.health().streams_stale == 0)
        statuses = {s.stream_id: s for s in svc.health().stream_states}
        assert {statuses[first].instrument, statuses[second].instrument} == {
            "MSFT.NASDAQ",
            "VEA.ARCA",
        }
        assert all(s.subscriptions == 2 and not s.stale for s in statuses.values())
        assert await bars_arrive(svc, first) > 0
        svc.streams.close(second)
        assert len(svc.streams) == 1 and observer.stream_counts[-1] == (1, 0)

    async def main() -> None:
        await svc.connect()
        try:
            await body()
        finally:
            await svc.disconnect()

    asyncio.run(main())


def test_gateway_streams_open_before_a_disconnect_are_live_after_connect(sim: IBSim) -> None:
    svc = service(sim, RecordingObserver(), request_timeout=10)

    async def main() -> None:
        await svc.connect()
        stream_id = await svc.stream_bars("AAPL.NASDAQ", "5s")
        await svc.disconnect()  # e.g. the actor's shutdown(), then a call that reconnects
        assert svc.streams.status(stream_id).stale
        await svc.connect()
        try:
            status = svc.streams.status(stream_id)
            assert (status.state, status.subscriptions) == (StreamState.LIVE, 2)
            assert await bars_arrive(svc, stream_id) > 0
        finally:
            await svc.disconnect()

    asyncio.run(main())
