"""Fault injection and robustness: garbage, disconnects, 1100/1102, 326, rejections, CLI."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from ib_async import IB, MarketOrder, Stock

from ibsim.protocol import FrameReader, decode_fields, encode_message
from ibsim.server import IBSim
from ibsim.testing import eventually, eventually_async, ibsim_subprocess, running_ibsim

pytestmark = pytest.mark.integration
START = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)


@pytest.fixture
def sim() -> Iterator[IBSim]:
    with running_ibsim(start=START, speed=10) as handle:
        yield handle


async def _connected(port: int, client_id: int = 1) -> IB:
    ib = IB()
    await ib.connectAsync("127.0.0.1", port, client_id, timeout=5)
    return ib


def _raw_session(port: int, client_id: int) -> tuple[socket.socket, FrameReader]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    payload = b"v157..178"
    sock.sendall(b"API\0" + struct.pack(">I", len(payload)) + payload)
    sock.sendall(encode_message([71, 2, client_id, ""]))
    return sock, FrameReader()


def _read_until(sock: socket.socket, reader: FrameReader, pred) -> list[list[str]]:  # type: ignore[no-untyped-def]
    seen: list[list[str]] = []
    while not any(pred(f) for f in seen):
        data = sock.recv(65536)
        if not data:
            break
        seen += [decode_fields(p) for p in reader.feed(data)]
    return seen


def test_garbage_unknown_ids_and_abrupt_disconnects_do_not_crash_the_server(sim: IBSim) -> None:
    with socket.create_connection(("127.0.0.1", sim.port)) as garbage:
        garbage.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert garbage.recv(100) == b""  # closed by ibsim
    with socket.create_connection(("127.0.0.1", sim.port)) as huge:
        huge.sendall(b"API\0" + struct.pack(">I", 0xFFFFFFF0))
        assert huge.recv(100) == b""
    half = socket.create_connection(("127.0.0.1", sim.port))
    half.sendall(b"API\0\x00\x00")
    half.close()  # abrupt disconnect mid-handshake
    sock, reader = _raw_session(sim.port, 77)
    _read_until(sock, reader, lambda f: f[0] == "15")
    sock.sendall(encode_message([999, 1, 2]))
    replies = _read_until(sock, reader, lambda f: f[0] == "4" and f[3] == "505")
    assert any(f[3] == "505" for f in replies if f[0] == "4")
    sock.close()

    async def scenario() -> list[str]:
        ib = await _connected(sim.port)
        accounts = ib.managedAccounts()
        ib.disconnect()
        return accounts

    assert asyncio.run(scenario()) == ["DU1234567"]


def test_one_burst_of_60_messages_gets_error_100_but_the_connection_lives_on() -> None:
    with running_ibsim(start=START, speed=1) as sim:
        sock, reader = _raw_session(sim.port, 5)
        _read_until(sock, reader, lambda f: f[0] == "15")
        sock.sendall(b"".join(encode_message([49, 1]) for _ in range(60)))
        replies = _read_until(sock, reader, lambda f: f[0] == "4" and f[3] == "100")
        (warning,) = [f for f in replies if f[0] == "4" and f[3] == "100"]
        assert "max=50 rec=51" in warning[4]
        answered = sum(f[0] == "49" for f in replies)
        while answered < 60:  # every request is still answered, on the same connection
            batch = _read_until(sock, reader, lambda f: True)
            assert batch, "ibsim closed the connection after one burst"
            answered += sum(f[0] == "49" for f in batch)
        assert answered == 60
        sock.close()


def test_connectivity_flap_reaches_error_event_and_drop_fires_disconnected(sim: IBSim) -> None:
    async def scenario() -> tuple[list[int], bool]:
        ib = await _connected(sim.port)
        codes: list[int] = []
        dropped: list[bool] = []
        ib.errorEvent += lambda _req, code, *_: codes.append(code)
        ib.disconnectedEvent += lambda: dropped.append(True)
        await asyncio.to_thread(sim.connectivity_flap)
        await eventually_async(lambda: 1102 in codes)
        await asyncio.to_thread(sim.drop_all)
        await eventually_async(lambda: dropped)
        return codes, ib.isConnected()

    codes, connected = asyncio.run(scenario())
    assert codes[:2] == [1100, 1102] and not connected


def test_duplicate_client_id_is_refused_with_326(sim: IBSim) -> None:
    async def scenario() -> list[int]:
        first = await _connected(sim.port, client_id=9)
        second = IB()
        codes: list[int] = []
        second.errorEvent += lambda _req, code, *_: codes.append(code)
        with pytest.raises((ConnectionError, TimeoutError, asyncio.TimeoutError)):
            await second.connectAsync("127.0.0.1", sim.port, 9, timeout=2)
        assert first.isConnected()
        first.disconnect()
        return codes

    assert 326 in asyncio.run(scenario())


def test_reject_next_order_ends_the_trade_cancelled_with_the_reason(sim: IBSim) -> None:
    async def scenario():  # type: ignore[no-untyped-def]
        ib = await _connected(sim.port)
        await asyncio.to_thread(sim.reject_next_order, "Insufficient margin")
        c = (await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD")))[0]
        trade = ib.placeOrder(c, MarketOrder("BUY", 10))
        await eventually_async(trade.isDone)
        ib.disconnect()
        return trade

    trade = asyncio.run(scenario())
    assert trade.orderStatus.status in ("Cancelled", "Inactive") and not trade.fills
    assert any(e.errorCode == 201 and "Insufficient margin" in e.message for e in trade.log)


def test_stall_delays_replies_until_it_ends(sim: IBSim) -> None:
    async def scenario() -> tuple[bool, float]:
        ib = await _connected(sim.port)
        await asyncio.to_thread(sim.stall, 1.0)
        task = asyncio.ensure_future(ib.reqCurrentTimeAsync())
        await asyncio.sleep(0.2)  # allowed: proving nothing arrives during the stall
        early = task.done()
        answer = await asyncio.wait_for(task, 5)
        ib.disconnect()
        return early, answer.timestamp()

    early, answer = asyncio.run(scenario())
    assert not early and answer > START.timestamp()


def test_subprocess_cli_prints_its_port_and_obeys_control_commands() -> None:
    with ibsim_subprocess("--start", START.isoformat(), "--speed", "10") as proc:

        async def scenario() -> list[int]:
            ib = await _connected(proc.port)
            codes: list[int] = []
            ib.errorEvent += lambda _req, code, *_: codes.append(code)
            assert (await asyncio.to_thread(proc.control, "flap"))["ok"]
            await eventually_async(lambda: 1102 in codes)
            assert (await asyncio.to_thread(proc.control, "status"))["clients"] == [1]
            assert (await asyncio.to_thread(proc.control, "restart", seconds=1.0))["ok"]
            await eventually_async(lambda: not ib.isConnected())
            return codes

        assert asyncio.run(scenario())[:2] == [1100, 1102]
        assert proc.control("bogus")["ok"] is False

        async def reconnect() -> bool:
            ib = await _connected(proc.port)
            ok = ib.isConnected()
            ib.disconnect()
            return ok

        def try_reconnect() -> bool:
            try:
                return asyncio.run(reconnect())
            except (ConnectionError, TimeoutError, OSError):
                return False

        assert eventually(try_reconnect, timeout=15, interval=0.3)
