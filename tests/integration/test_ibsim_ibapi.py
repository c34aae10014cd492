"""The official IB API Python client (``ibapi`` from PyPI, which offers v100..157) against
ibsim over TCP: ibsim must answer 157 and speak 157's layouts, which the official client
decodes strictly (a wrong field count drops the message).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from ibapi.client import EClient
from ibapi.contract import Contract
from ibapi.order import Order
from ibapi.wrapper import EWrapper

from ibsim.server import IBSim
from ibsim.testing import eventually, running_ibsim

pytestmark = pytest.mark.integration
START = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)  # a Tuesday, NYSE open


class App(EWrapper, EClient):  # type: ignore[misc]
    """An official-client application recording every callback it gets (camelCase names
    are the official wrapper's)."""

    def __init__(self) -> None:
        EWrapper.__init__(self)
        EClient.__init__(self, self)
        self.seen: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        self._lock = threading.Lock()

    def _note(self, name: str, *args: Any) -> None:
        with self._lock:
            self.seen[name].append(args)

    def got(self, name: str) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self.seen[name])

    def nextValidId(self, orderId: int) -> None:
        self._note("nextValidId", orderId)

    def error(self, reqId: int, errorCode: int, errorString: str) -> None:
        self._note("error", reqId, errorCode, errorString)

    def contractDetails(self, reqId: int, contractDetails: Any) -> None:
        self._note("contractDetails", reqId, contractDetails)

    def contractDetailsEnd(self, reqId: int) -> None:
        self._note("contractDetailsEnd", reqId)

    def historicalData(self, reqId: int, bar: Any) -> None:
        self._note("historicalData", reqId, bar)

    def historicalDataEnd(self, reqId: int, start: str, end: str) -> None:
        self._note("historicalDataEnd", reqId, start, end)

    def openOrder(self, orderId: int, contract: Any, order: Any, orderState: Any) -> None:
        self._note("openOrder", orderId, order.orderRef, orderState.status)

    def orderStatus(self, orderId: int, status: str, filled: float, *rest: Any) -> None:
        self._note("orderStatus", orderId, status, filled)

    def execDetails(self, reqId: int, contract: Any, execution: Any) -> None:
        self._note("execDetails", execution.execId, execution.shares, execution.orderRef)

    def commissionReport(self, commissionReport: Any) -> None:
        self._note("commissionReport", commissionReport.execId, commissionReport.commission)

    def position(self, account: str, contract: Any, position: float, avgCost: float) -> None:
        self._note("position", contract.symbol, position)

    def completedOrder(self, contract: Any, order: Any, orderState: Any) -> None:
        self._note("completedOrder", order.orderRef, order.permId, orderState.status)

    def completedOrdersEnd(self) -> None:
        self._note("completedOrdersEnd")


@pytest.fixture
def app() -> Iterator[tuple[App, IBSim]]:
    with running_ibsim(start=START, speed=10) as sim:
        client = App()
        client.connect("127.0.0.1", sim.port, clientId=7)
        reader = threading.Thread(target=client.run, name="ibapi", daemon=True)
        reader.start()
        try:
            yield client, sim
        finally:
            client.disconnect()
            reader.join(10)


def _aapl() -> Contract:
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = "AAPL", "STK", "SMART", "USD"
    return c


def test_the_official_client_negotiates_157_and_gets_contract_details_and_history(app) -> None:
    client, _ = app
    assert client.serverVersion() == 157
    eventually(lambda: client.got("nextValidId"))
    client.reqContractDetails(1, _aapl())
    eventually(lambda: client.got("contractDetailsEnd"))
    ((req_id, details),) = client.got("contractDetails")
    assert (req_id, details.contract.symbol, details.contract.primaryExchange) == (
        1,
        "AAPL",
        "NASDAQ",
    )
    assert details.contract.conId > 0 and details.timeZoneId == "America/New_York"
    client.reqHistoricalData(
        2, _aapl(), "20240305-15:00:00", "1800 S", "30 secs", "TRADES", 1, 1, False, []
    )
    eventually(lambda: client.got("historicalDataEnd"))
    bars = [bar for _, bar in client.got("historicalData")]
    assert len(bars) == 60 and all(bar.high >= bar.low > 0 for bar in bars)
    assert [code for _, code, _ in client.got("error") if code < 2100] == []


def test_the_official_client_trades_to_a_fill_with_commission_and_completed_order(app) -> None:
    client, _ = app
    ((order_id,),) = eventually(lambda: client.got("nextValidId"))
    order = Order()
    order.action, order.totalQuantity, order.orderType = "BUY", 100, "MKT"
    order.orderRef = "official"
    client.placeOrder(order_id, _aapl(), order)
    eventually(lambda: (order_id, "Filled", 100) in client.got("orderStatus"))
    ((exec_id, shares, ref),) = eventually(lambda: client.got("execDetails"))
    assert (shares, ref) == (100, "official")
    assert eventually(lambda: client.got("commissionReport")) == [(exec_id, 1.0)]
    assert (order_id, "official", "Filled") in client.got("openOrder")
    client.reqPositions()
    assert eventually(lambda: client.got("position")) == [("AAPL", 100)]
    client.reqCompletedOrders(False)
    eventually(lambda: client.got("completedOrdersEnd"))
    ((ref, perm_id, status),) = client.got("completedOrder")
    assert (ref, status) == ("official", "Filled") and perm_id > 0
