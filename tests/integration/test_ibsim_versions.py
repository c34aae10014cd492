"""Version negotiation over TCP: ibsim answers min(client max, 178) and speaks that version.

ib_async is told to offer less on its own instance (``ib.client.MaxClientVersion``) and must
run the whole flow (contract details, history, market and limit orders to fills with their
commission reports, positions, a cancel, completed orders) at the negotiated version. A raw
socket client shows the negotiation is not ib_async-specific, and ranges without a common
version are refused as TWS refuses them.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from ib_async import IB, LimitOrder, MarketOrder, Stock, Trade

from ibsim.protocol import FrameReader, decode_fields, encode_message
from ibsim.server import IBSim
from ibsim.testing import eventually_async, running_ibsim

pytestmark = pytest.mark.integration
START = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)  # a Tuesday, NYSE open


@pytest.fixture
def sim() -> Iterator[IBSim]:
    with running_ibsim(start=START, speed=10) as handle:
        yield handle


async def _filled(ib: IB, trade: Trade) -> Trade:
    await eventually_async(trade.isDone)
    await eventually_async(
        lambda: trade.fills and all(f.commissionReport.execId for f in trade.fills)
    )
    return trade


async def _flow(ib: IB) -> dict[str, Any]:
    """Everything a trading client does, at whatever version the handshake settled on."""
    (aapl,) = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    end = "20240305-15:00:00"  # the half hour since the open
    bars = await ib.reqHistoricalDataAsync(aapl, end, "1800 S", "30 secs", "TRADES", True)
    market = await _filled(ib, ib.placeOrder(aapl, MarketOrder("BUY", 100, orderRef="mkt")))
    ask = (await ib.reqTickersAsync(aapl))[0].ask
    marketable = LimitOrder("BUY", 50, round(ask * 1.05, 2), orderRef="lmt")
    limit = await _filled(ib, ib.placeOrder(aapl, marketable))
    await eventually_async(lambda: sum(p.position for p in ib.positions()) == 150)
    resting = ib.placeOrder(aapl, LimitOrder("BUY", 10, 1.00, orderRef="rest"))
    await eventually_async(lambda: resting.orderStatus.status == "Submitted")
    ib.cancelOrder(resting.order)
    await eventually_async(resting.isDone)
    completed = await ib.reqCompletedOrdersAsync(apiOnly=False)
    return {
        "version": ib.client.serverVersion(),
        "con_id": aapl.conId,
        "bars": len(bars),
        "trades": [market, limit],
        "positions": [(p.contract.symbol, p.position) for p in ib.positions()],
        "resting": resting,
        "completed": sorted((t.order.orderRef, t.orderStatus.status) for t in completed),
    }


@pytest.mark.parametrize("version", [157, 163, 176, 178])
def test_the_whole_flow_runs_at_the_negotiated_version(sim: IBSim, version: int) -> None:
    async def main() -> dict[str, Any]:
        ib = IB()
        ib.client.MaxClientVersion = version  # this client offers v157..{version}
        await ib.connectAsync("127.0.0.1", sim.port, 3, timeout=5)
        try:
            return await _flow(ib)
        finally:
            ib.disconnect()

    got = asyncio.run(main())
    assert got["version"] == version and got["con_id"] > 0 and got["bars"] == 60
    for trade in got["trades"]:
        assert trade.orderStatus.status == "Filled"
        assert sum(f.execution.shares for f in trade.fills) == trade.order.totalQuantity
        assert all(f.commissionReport.commission == pytest.approx(1.0) for f in trade.fills)
    assert got["positions"] == [("AAPL", 150.0)]
    resting = got["resting"]
    assert resting.orderStatus.status == "Cancelled" and resting.fills == []
    assert any(entry.errorCode == 202 for entry in resting.log)
    assert got["completed"] == [("lmt", "Filled"), ("mkt", "Filled"), ("rest", "Cancelled")]


def _raw_connect(port: int, offer: bytes) -> tuple[socket.socket, FrameReader, list[str]]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"API\0" + struct.pack(">I", len(offer)) + offer)
    reader = FrameReader()
    hello = _read(sock, reader, lambda f: True)
    return sock, reader, hello[0] if hello else []


def _read(sock: socket.socket, reader: FrameReader, stop: Any) -> list[list[str]]:
    """Read messages until one satisfies ``stop`` or the server closes the connection."""
    seen: list[list[str]] = []
    while not any(stop(f) for f in seen):
        data = sock.recv(65536)
        if not data:
            break
        seen += [decode_fields(p) for p in reader.feed(data)]
    return seen


@pytest.mark.parametrize(("offer", "version"), [(b"v157..170", 170), (b"v100..160", 160)])
def test_a_raw_socket_client_gets_contract_details_in_its_version(
    sim: IBSim, offer: bytes, version: int
) -> None:
    sock, reader, hello = _raw_connect(sim.port, offer)
    with sock:
        assert len(hello) == 2 and hello[0] == str(version)
        sock.sendall(encode_message([71, 2, 11, ""]))  # startApi, clientId 11
        _read(sock, reader, lambda f: f[0] == "15")
        c12 = [0, "AAPL", "STK", "", 0.0, "", "", "SMART", "", "USD", "", ""]
        sock.sendall(encode_message([9, 8, 42, *c12, 0, "", ""]))
        replies = _read(sock, reader, lambda f: f[0] == "52")
    (details,) = [f for f in replies if f[0] == "10"]
    # below 164 a version field follows the id and mdSizeMultiplier follows minTick
    at = 1 if version >= 164 else 2
    assert details[at] == "42" and details[at + 1 : at + 3] == ["AAPL", "STK"]
    assert int(details[at + 11]) > 0  # conId
    assert details[-1] == ("100" if version >= 164 else "COMMON")
    assert any(f[0] == "52" and f[2] == "42" for f in replies)


@pytest.mark.parametrize("offer", [b"v100..150", b"v180..190"])
def test_a_client_without_a_common_version_is_refused(sim: IBSim, offer: bytes) -> None:
    sock, _, hello = _raw_connect(sim.port, offer)
    with sock:
        assert hello == []  # no handshake reply: the connection is closed
        assert sock.recv(100) == b""
