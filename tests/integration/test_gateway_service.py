"""GatewayService against a real ibsim over TCP (no Ray): history, pacing, faults, orders."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import exchange_calendars as xcals
import pandas as pd
import pytest

from actors.gateway_service import GatewayService
from actors.history_plan import plan_chunks
from actors.ib_connection import Backoff
from actors.pacing import PacingRules
from core.barsize import bar_size
from core.errors import NotFound, OrderRejected
from core.settings import IBSettings
from core.types import Instrument, Order, OrderStatus, Side
from ibsim.server import IBSim
from ibsim.testing import running_ibsim

pytestmark = pytest.mark.integration

SPEED = 300.0
"""ibsim runs 300x real time; the pacer's windows shrink by the same factor."""
SIM_START = datetime(2024, 3, 12, 15, 0, tzinfo=UTC)  # a Tuesday, 11:00 New York: market open


@pytest.fixture(scope="module")
def sim() -> Iterator[IBSim]:
    with running_ibsim(seed=3, pacing="strict", speed=SPEED, start=SIM_START) as server:
        yield server


_client_ids = iter(range(100, 10_000, 10))


def service(sim: IBSim, **kw: Any) -> GatewayService:
    settings = IBSettings(
        host="127.0.0.1", port=sim.port, client_id=next(_client_ids), account=None, timeout=10
    )
    kw.setdefault("time_scale", SPEED)
    kw.setdefault("backoff", Backoff(initial=0.05, cap=0.5))
    # No margin: the pacer times windows from each request's completion, so however late a
    # loaded machine delivers a request, ibsim (timing arrivals) never sees it early.
    kw.setdefault("rules", PacingRules.ibkr(margin_s=0.0))
    kw.setdefault("request_timeout", 20)
    return GatewayService(settings, **kw)


def run(body: Callable[[GatewayService], Coroutine[Any, Any, Any]], svc: GatewayService) -> Any:
    async def main() -> Any:
        await svc.connect()
        try:
            return await body(svc)
        finally:
            await svc.disconnect()

    return asyncio.run(main())


async def eventually(check: Callable[[], Any], *, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.02)
    return value


def sessions(start: str, end: str) -> list[pd.Timestamp]:
    cal = xcals.get_calendar("XNAS", start="2010-01-01")
    days = cal.sessions_in_range(start, end)
    return [pd.Timestamp(d.date(), tz=UTC) for d in days]


def test_gateway_connects_and_reports_health(sim: IBSim) -> None:
    async def body(svc: GatewayService) -> None:
        health = svc.health()
        assert health.connected and health.server_version == 178
        assert health.client_id == svc.conn.base_client_id
        assert health.as_dict()["reconnects"] == 0

    run(body, service(sim))


def test_gateway_moves_to_next_client_id_when_in_use(sim: IBSim) -> None:
    first, second = service(sim), service(sim)
    second.conn.base_client_id = first.conn.base_client_id

    async def main() -> None:
        await first.connect()
        try:
            health = await second.connect()
            assert health.client_id == first.conn.base_client_id + 1
            assert health.client_ids_tried == [health.client_id - 1, health.client_id]
            await second.disconnect()
        finally:
            await first.disconnect()

    asyncio.run(main())


def test_gateway_qualifies_valid_symbols_and_maps_unknown_to_none(sim: IBSim) -> None:
    async def body(svc: GatewayService) -> None:
        found = await svc.qualify(["AAPL", "MSFT", Instrument(symbol="NOSUCHSYM")])
        assert found["AAPL"] is not None and found["AAPL"].con_id == 420681219
        assert found["MSFT"] is not None and found["MSFT"].primary_exchange == "NASDAQ"
        assert found["NOSUCHSYM"] is None
        assert svc.health().errors_by_code.get(200) == 1
        details = await svc.contract_details("AAPL")
        assert details["long_name"] == "Apple Inc" and details["con_id"] == 420681219
        with pytest.raises(NotFound):
            await svc.contract_details("NOSUCHSYM")

    run(body, service(sim))


@pytest.mark.parametrize(
    ("start", "end"), [("2019-01-01", "2024-01-01"), ("2011-06-01", "2024-01-01")]
)
def test_gateway_daily_bars_over_years_are_contiguous(sim: IBSim, start: str, end: str) -> None:
    lo, hi = (datetime.fromisoformat(d).replace(tzinfo=UTC) for d in (start, end))

    async def body(svc: GatewayService) -> pd.DataFrame:
        return await svc.historical_bars("AAPL", bar_size="1d", start=lo, end=hi)

    svc = service(sim)
    frame = run(body, svc)
    expected = sessions(start, "2023-12-31")
    assert list(frame.index) == expected  # every session once, none missing, none extra
    assert str(frame.index.tz) == "UTC" and frame.index.name == "ts"
    assert list(frame.columns) == ["open", "high", "low", "close", "volume", "wap", "bar_count"]
    assert (frame["high"] >= frame["low"]).all()
    assert svc.pacer.stats().granted >= len(plan_chunks(bar_size("1d"), lo, hi))


def test_gateway_minute_bars_over_several_days_use_several_chunks(sim: IBSim) -> None:
    lo, hi = datetime(2024, 3, 4, tzinfo=UTC), datetime(2024, 3, 9, tzinfo=UTC)

    async def body(svc: GatewayService) -> pd.DataFrame:
        return await svc.historical_bars("MSFT", bar_size="1m", start=lo, end=hi)

    svc = service(sim)
    frame = run(body, svc)
    assert len(plan_chunks(bar_size("1m"), lo, hi)) == 5
    assert len(frame) == 5 * 390  # five regular sessions of 390 minutes
    for _, day in frame.groupby(frame.index.date):
        steps = day.index.to_series().diff().dropna()
        assert (steps == pd.Timedelta(minutes=1)).all()
    assert frame.index.is_unique and frame.index.is_monotonic_increasing


def test_gateway_paces_hard_paced_requests_without_a_single_violation(sim: IBSim) -> None:
    lo, hi = datetime(2024, 3, 4, tzinfo=UTC), datetime(2024, 3, 7, tzinfo=UTC)

    async def body(svc: GatewayService) -> pd.DataFrame:
        return await svc.historical_bars("NVDA", bar_size="5s", start=lo, end=hi)

    svc = service(sim)
    frame = run(body, svc)
    n = len(plan_chunks(bar_size("5s"), lo, hi))
    assert n == 72  # more than the 60 allowed per (scaled) ten minutes
    health = svc.health()
    assert health.pacing_violations == 0 and 162 not in health.errors_by_code
    assert health.pacing_waits > 0  # the pacer, not the server, held requests back
    assert len(frame) == 3 * 390 * 12


def test_gateway_recovers_from_a_dropped_connection_mid_request(sim: IBSim) -> None:
    lo, hi = datetime(2024, 3, 4, tzinfo=UTC), datetime(2024, 3, 5, tzinfo=UTC)

    async def body(svc: GatewayService) -> pd.DataFrame:
        amzn = await svc.resolve("AMZN")  # known now: only the history request is held below
        sim.stall(5.0)  # far longer than the drop takes, so the request cannot finish first
        task = asyncio.create_task(svc.historical_bars(amzn, bar_size="1m", start=lo, end=hi))
        await eventually(lambda: svc.pacer.stats().open_requests == 1)
        await asyncio.to_thread(sim.drop_all)
        sim.stall(0.0)  # requests arriving from now on (the reconnect, the retry) are served
        frame = await task
        assert svc.health().reconnects == 1 and svc.health().connected
        return frame

    frame = run(body, service(sim))
    assert len(frame) == 390


def test_gateway_survives_1100_1102_and_resubscribes_streams(sim: IBSim) -> None:
    async def body(svc: GatewayService) -> None:
        stream_id = await svc.stream_bars("AAPL", "5s")
        assert svc.streams.status(stream_id).subscriptions == 1
        await asyncio.to_thread(sim.connectivity_flap)
        await eventually(lambda: svc.streams.status(stream_id).subscriptions == 2)
        health = svc.health()
        assert health.errors_by_code.get(1100) == 1 and health.errors_by_code.get(1102) == 1
        assert health.broker_connectivity and health.connected
        assert (health.streams, health.streams_stale) == (1, 0)
        bars = await eventually_async_frame(svc, stream_id)
        assert bars.index.is_unique
        status = svc.streams.status(stream_id)
        assert not status.stale and status.failures == 0 and status.instrument == "AAPL.NASDAQ"
        assert status.last_bar_at is not None and status.last_bar_at >= bars.index[-1]

    run(body, service(sim))


async def eventually_async_frame(svc: GatewayService, stream_id: str) -> pd.DataFrame:
    frames: list[pd.DataFrame] = []

    def polled() -> bool:
        return bool(frames) and len(frames[-1]) > 0

    deadline = time.monotonic() + 15
    while not polled():
        frames.append((await svc.poll_stream(stream_id)).bars)
        if time.monotonic() > deadline:
            raise AssertionError("stream produced no completed bars")
        await asyncio.sleep(0.05)
    return frames[-1]


def test_gateway_places_a_market_order_that_fills(sim: IBSim) -> None:
    async def body(svc: GatewayService) -> None:
        order = Order(
            instrument="MSFT.NASDAQ", side=Side.BUY, quantity=Decimal(7), order_ref="t-fill"
        )
        ack = await svc.place_order(order)
        assert ack.order_id > 0 and ack.order_ref == "t-fill"

        async def filled() -> Any:
            return (await svc.order_status(ack.order_id)).status == OrderStatus.FILLED

        deadline = time.monotonic() + 15
        while not await filled():
            assert time.monotonic() < deadline, "order never filled"
            await asyncio.sleep(0.05)
        done = await svc.order_status(ack.order_id)
        assert done.filled == Decimal(7) and done.avg_fill_price is not None
        fills = [f for f in await svc.executions() if f.order_ref == "t-fill"]
        assert sum(f.quantity for f in fills) == Decimal(7)
        assert {(f.instrument, f.con_id) for f in fills} == {("MSFT.NASDAQ", 393556148)}
        positions = {p.instrument: p for p in await svc.positions()}
        assert positions["MSFT.NASDAQ"].quantity >= Decimal(7)
        assert positions["MSFT.NASDAQ"].con_id == 393556148
        summary = await svc.account_summary()
        assert any("NetLiquidation" in tags for tags in summary.values())

    run(body, service(sim))


def test_gateway_raises_order_rejected_when_ib_refuses(sim: IBSim) -> None:
    async def body(svc: GatewayService) -> None:
        await asyncio.to_thread(sim.reject_next_order, "no margin")
        with pytest.raises(OrderRejected, match="no margin"):
            await svc.place_order(
                Order(instrument="AAPL.NASDAQ", side=Side.BUY, quantity=Decimal(1))
            )

    run(body, service(sim))


def test_gateway_snapshot_has_a_two_sided_quote(sim: IBSim) -> None:
    async def body(svc: GatewayService) -> dict[str, Any]:
        return await svc.snapshot("AAPL")

    quote = run(body, service(sim))
    assert quote["bid"] is not None and quote["ask"] is not None
    assert quote["bid"] < quote["ask"]


def test_gateway_reconnects_when_1100_is_not_followed_by_a_restore(sim: IBSim) -> None:
    async def body(svc: GatewayService) -> None:
        svc.conn.lost_grace_s = 0.2
        client_id = svc.health().client_id

        def lose() -> None:
            session = sim.sessions[client_id]
            session.error(-1, 1100, "Connectivity between IB and Trader Workstation has been lost.")

        await asyncio.to_thread(sim._call, lose)
        await eventually(lambda: svc.health().reconnects == 1 and svc.health().connected)
        assert svc.health().broker_connectivity
        found = await svc.qualify(["AAPL"])  # and the new connection serves requests
        assert found["AAPL"] is not None

    run(body, service(sim))


def test_gateway_daily_range_of_exactly_five_years_includes_its_first_session(
    sim: IBSim,
) -> None:
    # 2019-03-07 is a Thursday session exactly 5 x 365 days before 2024-03-05: a bare "5 Y"
    # request back from the end leaves the boundary session out.
    lo, hi = datetime(2019, 3, 7, tzinfo=UTC), datetime(2024, 3, 5, tzinfo=UTC)
    assert (hi - lo).days == 5 * 365

    async def body(svc: GatewayService) -> pd.DataFrame:
        return await svc.historical_bars("MSFT", bar_size="1d", start=lo, end=hi)

    frame = run(body, service(sim))
    assert frame.index[0] == pd.Timestamp("2019-03-07", tz="UTC")
    assert list(frame.index) == sessions("2019-03-07", "2024-03-04")
