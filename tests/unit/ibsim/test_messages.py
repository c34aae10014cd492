"""Every message ibsim emits, decoded by the installed ib_async decoder at version 178."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from ibsim import messages as m
from ibsim.contracts import ContractInfo
from ibsim.orders import Broker, Quote, SimOrder


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
    )
    quote = Quote(bid=99.99, ask=100.0, last=100.0)
    broker.place(order, quote, datetime(2024, 3, 5, 15, tzinfo=UTC))
    return order, broker


def test_simple_messages_have_the_field_counts_the_decoder_reads(harness, aapl) -> None:
    cases = [
        (m.next_valid_id(5), "nextValidId", (5,)),
        (m.managed_accounts(["DU1", "DU2"]), "managedAccounts", ("DU1,DU2",)),
        (m.current_time(1_700_000_000), "currentTime", (1_700_000_000,)),
        (m.position_end(), "positionEnd", ()),
        (m.open_order_end(), "openOrderEnd", ()),
        (m.completed_orders_end(), "completedOrdersEnd", ()),
        (
            m.account_value("NetLiquidation", "1.00", "USD", "DU1"),
            "updateAccountValue",
            ("NetLiquidation", "1.00", "USD", "DU1"),
        ),
        (m.account_time("15:00"), "updateAccountTime", ("15:00",)),
        (m.account_download_end("DU1"), "accountDownloadEnd", ("DU1",)),
        (
            m.account_update_multi(4, "DU1", "Cash", "5", "USD"),
            "accountUpdateMulti",
            (4, "DU1", "", "Cash", "5", "USD"),
        ),
        (m.account_update_multi_end(4), "accountUpdateMultiEnd", (4,)),
        (
            m.account_summary(2, "DU1", "NetLiquidation", "9", "USD"),
            "accountSummary",
            (2, "DU1", "NetLiquidation", "9", "USD"),
        ),
        (m.account_summary_end(2), "accountSummaryEnd", (2,)),
        (m.contract_details_end(3), "contractDetailsEnd", (3,)),
        (m.exec_details_end(3), "execDetailsEnd", (3,)),
        (m.tick_size(8, 0, 300.0), "tickSize", (8, 0, 300.0)),
        (m.tick_snapshot_end(8), "tickSnapshotEnd", (8,)),
        (m.market_data_type(8, 1), "marketDataType", (8, 1)),
        (
            m.realtime_bar(6, 1_700_000_000, (1.0, 2.0, 0.5, 1.5), volume=10.0, wap=1.2),
            "realtimeBar",
            (6, 1_700_000_000, 1.0, 2.0, 0.5, 1.5, 10.0, 1.2, 1),
        ),
    ]
    for fields, name, args in cases:
        assert harness.decode(fields) == (name, args)


def test_error_message_carries_req_id_code_text_and_empty_json(harness) -> None:
    assert harness.decode(m.server_error(12, 200, "No security")) == (
        "error",
        (12, 200, "No security", ""),
    )


def test_tick_price_is_exactly_seven_fields(harness) -> None:
    fields = m.tick_price(8, 1, 101.25, 300.0)
    assert len(harness.wire(fields)) == 7
    assert harness.decode(fields) == ("priceSizeTick", (8, 1, 101.25, 300.0))


def test_position_is_sixteen_fields_and_decodes(harness, aapl) -> None:
    fields = m.position("DU1", aapl, Decimal(150), 190.5)
    assert len(harness.wire(fields)) == 16
    name, (account, contract, qty, cost) = harness.decode(fields)
    assert (name, account, contract.conId, contract.symbol, qty, cost) == (
        "position",
        "DU1",
        aapl.con_id,
        "AAPL",
        150.0,
        190.5,
    )


def test_portfolio_value_is_twenty_fields_and_decodes(harness, aapl) -> None:
    fields = m.portfolio_value(
        aapl,
        qty=Decimal(10),
        market_price=101.0,
        avg_cost=100.0,
        unrealized=10.0,
        realized=0.0,
        account="DU1",
    )
    assert len(harness.wire(fields)) == 20
    name, args = harness.decode(fields)
    assert name == "updatePortfolio" and args[0].primaryExchange == "NASDAQ"
    assert args[1:] == (10.0, 101.0, 1010.0, 100.0, 10.0, 0.0, "DU1")


@pytest.mark.parametrize("symbol_fixture", ["aapl", "bhp"])
def test_contract_details_decode_completely(harness, request, symbol_fixture) -> None:
    c: ContractInfo = request.getfixturevalue(symbol_fixture)
    fields = m.contract_details(
        9,
        c,
        exchange=c.exchange,
        trading="20240305:0930-20240305:1600",
        liquid="20240305:0930-20240305:1600",
    )
    name, (req_id, cd) = harness.decode(fields)
    assert (name, req_id) == ("contractDetails", 9)
    assert (cd.contract.conId, cd.contract.symbol, cd.contract.currency) == (
        c.con_id,
        c.symbol,
        c.currency,
    )
    assert cd.contract.primaryExchange == c.primary_exchange
    assert cd.longName == c.long_name and cd.timeZoneId == c.time_zone
    # the last fields land where they belong, so nothing was shifted
    assert (cd.minSize, cd.sizeIncrement, cd.suggestedSizeIncrement) == (1, 1, 100)


def test_historical_data_decodes_every_bar_then_ends(harness) -> None:
    bars = [
        ("20240304", 1.0, 2.0, 0.5, 1.5, 100.0, 1.2, 3),
        ("20240305", 1.5, 2.5, 1.0, 2.0, 200.0, 1.8, 4),
    ]
    harness.decode(m.historical_data(4, "s", "e", bars))
    calls = harness.wrapper.calls
    assert [c[0] for c in calls] == ["historicalData", "historicalData", "historicalDataEnd"]
    assert calls[1][1][1].close == 2.0 and calls[1][1][1].barCount == 4
    assert calls[2][1] == (4, "s", "e")


def test_historical_data_update_reorders_fields_as_ib_does(harness) -> None:
    name, (req_id, bar) = harness.decode(
        m.historical_data_update(4, ("1709650800", 1.0, 3.0, 0.5, 2.0, 50.0, 1.5, 7))
    )
    assert (name, req_id) == ("historicalDataUpdate", 4)
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.barCount) == (
        1.0,
        3.0,
        0.5,
        2.0,
        50.0,
        7,
    )


def test_order_status_is_twelve_fields(harness, aapl) -> None:
    order, _ = _filled_order(aapl)
    fields = m.order_status(order)
    assert len(harness.wire(fields)) == 12
    name, args = harness.decode(fields)
    assert name == "orderStatus"
    assert args[:4] == (7, "Filled", 100.0, 0.0) and args[8] == 3


def test_open_order_is_127_fields_and_decodes_order_and_state(harness, aapl) -> None:
    order, _ = _filled_order(aapl)
    fields = m.open_order(order)
    assert len(harness.wire(fields)) == 127
    name, (order_id, contract, o, state) = harness.decode(fields)
    assert (name, order_id, contract.symbol) == ("openOrder", 7, "AAPL")
    assert (o.action, o.totalQuantity, o.orderType, o.lmtPrice, o.clientId, o.permId) == (
        "BUY",
        100.0,
        "LMT",
        200.0,
        3,
        99,
    )
    assert state.status == "Filled"


def test_exec_details_and_commission_report_decode(harness, aapl) -> None:
    _, broker = _filled_order(aapl)
    execution = broker.executions[0]
    fields = m.exec_details(-1, execution)
    assert len(harness.wire(fields)) == 32
    name, (req_id, contract, ex) = harness.decode(fields)
    assert (name, req_id, contract.conId) == ("execDetails", -1, aapl.con_id)
    assert (ex.orderId, ex.side, ex.shares, ex.price, ex.clientId) == (7, "BOT", 100.0, 100.0, 3)
    assert ex.time == datetime(2024, 3, 5, 15, tzinfo=UTC)
    report = m.commission_report(execution)
    assert len(harness.wire(report)) == 8
    name, (cr,) = harness.decode(report)
    assert (name, cr.execId, cr.commission, cr.currency) == (
        "commissionReport",
        execution.exec_id,
        1.0,
        "USD",
    )
