"""The 50 messages/s limit over TCP: a throttled client is never dropped, a flood is.

The limit is counted on the real clock at arrival (not on the simulated clock, not at
dispatch), as a token bucket of 50; three consecutive seconds over it close the connection.
The tests assert outcomes (error codes, disconnect or not), never timings.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from ib_async import IB, Stock

from core.clock import ManualClock
from ibsim.testing import eventually_async, running_ibsim

pytestmark = pytest.mark.integration
START = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)  # a Tuesday, NYSE open


def _watch(ib: IB) -> tuple[list[int], list[bool]]:
    codes: list[int] = []
    dropped: list[bool] = []
    ib.errorEvent += lambda _req, code, *_: codes.append(code)
    ib.disconnectedEvent += lambda: dropped.append(True)
    return codes, dropped


def test_two_hundred_requests_through_a_45_per_second_throttle_are_never_dropped() -> None:
    # The simulated clock stands still: only a real-time count lets 200 requests through.
    async def scenario(port: int) -> tuple[list[int], list[int], bool, bool]:
        ib = IB()  # ib_async sends at most 45 requests a second (in bursts of up to 45)
        await ib.connectAsync("127.0.0.1", port, 1, timeout=5)
        codes, dropped = _watch(ib)
        c = Stock("AAPL", "SMART", "USD")
        replies = await asyncio.gather(
            *(
                ib.reqHistoricalDataAsync(c, "", "1800 S", "1 min", "TRADES", True, timeout=60)
                for _ in range(200)
            )
        )
        connected, was_dropped = ib.isConnected(), bool(dropped)
        ib.disconnect()
        return [len(bars) for bars in replies], codes, was_dropped, connected

    with running_ibsim(clock=ManualClock(START)) as sim:
        sizes, codes, dropped, connected = asyncio.run(scenario(sim.port))
    assert sizes == [30] * 200  # every request answered with its half hour of minute bars
    assert 100 not in codes and not dropped and connected


def test_a_client_flooding_at_80_per_second_gets_error_100_then_is_disconnected() -> None:
    async def scenario(port: int, sessions: dict[int, object]) -> tuple[list[int], bool]:
        ib = IB()
        ib.client.MaxRequests = 80  # this client throttles itself to 80 a second, not 45
        await ib.connectAsync("127.0.0.1", port, 5, timeout=5)
        codes, dropped = _watch(ib)
        for _ in range(800):  # ten seconds' worth at 80/s; the server ends it sooner
            ib.client.reqCurrentTime()
        await eventually_async(lambda: dropped, timeout=20)
        warned_before_drop = list(codes)
        await eventually_async(lambda: 5 not in sessions, timeout=5)
        return warned_before_drop, ib.isConnected()

    with running_ibsim(start=START) as sim:
        codes, connected = asyncio.run(scenario(sim.port, sim.sessions))
    assert 100 in codes and not connected
