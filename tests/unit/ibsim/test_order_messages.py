"""Order messages decoded by ib_async at every version ibsim speaks, and by ibapi at 157."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from ibsim import order_messages as om
from ibsim import versions
from ibsim.contracts import ContractInfo
from ibsim.orders import Broker, Quote, SimOrder

NOW = datetime(2024, 3, 5, 15, tzinfo=UTC)


def _filled_order(c: ContractInfo, qty: int = 100) -> tuple[SimOrder, Broker]:
    broker = Broker(account="DU1")
    order = SimOrder(
        order_id=7,
        client_id=3,
        perm_id=99,
        contract=c,
        exchange="SMART",
        action="BUY",
        total_qty=Decimal(qty),
        order_type="LMT",
        lmt_price=200.0,
        account="DU1",
        order_ref="ref-7",
    )
    broker.place(order, Quote(bid=99.99, ask=100.0, last=100.0), NOW)
    return order, broker


def _open_order_length(version: int) -> int:
    """What the official client reads of an openOrder without optional sections."""
    length = 119
    length += version < versions.FA_PROFILE_DESUPPORT
    length += version >= versions.DURATION
    length += version >= versions.POST_TO_ATS
    length += version >= versions.AUTO_CANCEL_PARENT
    return length + 5 * (version >= versions.PEGBEST_PEGMID_OFFSETS)


def test_end_markers_decode_at_every_version(at_version) -> None:
    assert at_version.decode(om.open_order_end()) == ("openOrderEnd", ())
    assert at_version.decode(om.completed_orders_end()) == ("completedOrdersEnd", ())
    assert at_version.decode(om.exec_details_end(3)) == ("execDetailsEnd", (3,))


def test_order_status_is_twelve_fields(at_version, aapl) -> None:
    order, _ = _filled_order(aapl)
    fields = om.order_status(order)
    assert len(at_version.wire(fields)) == 12
    name, args = at_version.decode(fields)
    assert name == "orderStatus"
    assert args[:4] == (7, "Filled", 100.0, 0.0) and args[8] == 3


def test_open_order_has_the_fields_of_its_version_and_decodes(at_version, aapl) -> None:
    order, _ = _filled_order(aapl)
    fields = om.open_order(order, version=at_version.version)
    assert len(at_version.wire(fields)) == _open_order_length(at_version.version)
    name, (order_id, contract, o, state) = at_version.decode(fields)
    assert (name, order_id, contract.symbol) == ("openOrder", 7, "AAPL")
    assert (o.action, o.totalQuantity, o.orderType, o.lmtPrice, o.clientId, o.permId) == (
        "BUY",
        100.0,
        "LMT",
        200.0,
        3,
        99,
    )
    assert (o.orderRef, o.parentId, state.status) == ("ref-7", 0, "Filled")


def test_open_order_is_127_fields_at_178_and_128_at_176(aapl) -> None:
    order, _ = _filled_order(aapl)
    assert len(om.open_order(order, version=178)) == 127
    assert len(om.open_order(order, version=176)) == 128  # faProfile, retired in 177


def test_completed_order_carries_perm_id_ref_and_final_state(at_version, aapl) -> None:
    order, _ = _filled_order(aapl)
    name, (contract, o, state) = at_version.decode(
        om.completed_order(order, version=at_version.version)
    )
    assert (name, contract.conId, contract.symbol) == ("completedOrder", aapl.con_id, "AAPL")
    assert (o.permId, o.orderRef, o.action, o.totalQuantity, o.filledQuantity) == (
        99,
        "ref-7",
        "BUY",
        100.0,
        100.0,
    )
    assert (state.status, state.completedStatus) == ("Filled", "Filled")
    assert state.completedTime == "20240305 15:00:00 UTC"


def test_exec_details_and_commission_report_decode(at_version, aapl) -> None:
    _, broker = _filled_order(aapl)
    execution = broker.executions[0]
    fields = om.exec_details(-1, execution, version=at_version.version)
    with_revision = at_version.version >= versions.PENDING_PRICE_REVISION
    assert len(at_version.wire(fields)) == (32 if with_revision else 31)
    name, (req_id, contract, ex) = at_version.decode(fields)
    assert (name, req_id, contract.conId) == ("execDetails", -1, aapl.con_id)
    assert (ex.orderId, ex.side, ex.shares, ex.price, ex.clientId) == (7, "BOT", 100.0, 100.0, 3)
    assert (ex.orderRef, ex.lastLiquidity) == ("ref-7", 1)
    assert ex.time == NOW
    report = om.commission_report(execution)
    assert len(at_version.wire(report)) == 8
    name, (cr,) = at_version.decode(report)
    assert (name, cr.execId, cr.commission, cr.currency) == (
        "commissionReport",
        execution.exec_id,
        1.0,
        "USD",
    )


@pytest.mark.parametrize("symbol_fixture", ["aapl", "bhp"])
def test_order_messages_decode_strictly_in_the_official_client(
    official, request, symbol_fixture
) -> None:
    c: ContractInfo = request.getfixturevalue(symbol_fixture)
    order, broker = _filled_order(c)
    name, (order_id, contract, o, state) = official.decode(
        om.open_order(order, version=official.version)
    )
    assert (name, order_id, contract.symbol, o.permId, o.orderRef) == (
        "openOrder",
        7,
        c.symbol,
        99,
        "ref-7",
    )
    assert state.status == "Filled"
    name, (contract, o, state) = official.decode(
        om.completed_order(order, version=official.version)
    )
    assert (name, contract.symbol, o.permId, o.orderRef, o.filledQuantity) == (
        "completedOrder",
        c.symbol,
        99,
        "ref-7",
        100,
    )
    assert (state.status, state.completedStatus) == ("Filled", "Filled")
    assert official.decode(om.order_status(order))[1][:2] == (7, "Filled")
    execution = broker.executions[0]
    name, (_, contract, ex) = official.decode(
        om.exec_details(-1, execution, version=official.version)
    )
    assert (name, contract.symbol, ex.side, ex.shares) == ("execDetails", c.symbol, "BOT", 100)
    name, (report,) = official.decode(om.commission_report(execution))
    assert (name, report.execId) == ("commissionReport", execution.exec_id)
    for end in (om.open_order_end(), om.completed_orders_end(), om.exec_details_end(3)):
        assert official.decode(end)[0] in ("openOrderEnd", "completedOrdersEnd", "execDetailsEnd")
