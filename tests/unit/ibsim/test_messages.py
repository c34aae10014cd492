"""Contract, market-data, history and account messages decoded by real clients' decoders.

Every builder is decoded by the installed ib_async decoder at every server version ibsim
speaks (157..178), and by the official ibapi client's decoder at 157.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from ibsim import messages as m
from ibsim import versions
from ibsim.contracts import ContractInfo


def _simple_cases() -> list[tuple[list[Any], str, tuple[Any, ...]]]:
    return [
        (m.next_valid_id(5), "nextValidId", (5,)),
        (m.managed_accounts(["DU1", "DU2"]), "managedAccounts", ("DU1,DU2",)),
        (m.current_time(1_700_000_000), "currentTime", (1_700_000_000,)),
        (m.position_end(), "positionEnd", ()),
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
        (m.tick_size(8, 0, 300.0), "tickSize", (8, 0, 300.0)),
        (m.tick_snapshot_end(8), "tickSnapshotEnd", (8,)),
        (m.market_data_type(8, 1), "marketDataType", (8, 1)),
        (
            m.realtime_bar(6, 1_700_000_000, (1.0, 2.0, 0.5, 1.5), volume=10.0, wap=1.2),
            "realtimeBar",
            (6, 1_700_000_000, 1.0, 2.0, 0.5, 1.5, 10.0, 1.2, 1),
        ),
    ]


def _details(c: ContractInfo, version: int) -> list[Any]:
    hours = "20240305:0930-20240305:1600"
    return m.contract_details(
        9, c, exchange=c.exchange, trading=hours, liquid=hours, version=version
    )


def test_simple_messages_have_the_field_counts_the_decoder_reads(at_version) -> None:
    for fields, name, args in _simple_cases():
        assert at_version.decode(fields) == (name, args)


def test_simple_messages_decode_strictly_in_the_official_client(official) -> None:
    for fields, name, _ in _simple_cases():
        assert official.decode(fields)[0] == name


def test_error_carries_the_reject_json_only_from_166(at_version) -> None:
    fields = m.server_error(12, 200, "No security", version=at_version.version)
    expected = 6 if at_version.version >= versions.ADVANCED_ORDER_REJECT else 5
    assert len(at_version.wire(fields)) == expected
    assert at_version.decode(fields) == ("error", (12, 200, "No security", ""))


def test_error_at_157_is_the_five_fields_the_official_client_maps(official) -> None:
    fields = m.server_error(12, 200, "No security", version=official.version)
    assert official.decode(fields) == ("error", (12, 200, "No security"))


def test_tick_price_is_exactly_seven_fields(at_version) -> None:
    fields = m.tick_price(8, 1, 101.25, 300.0)
    assert len(at_version.wire(fields)) == 7
    assert at_version.decode(fields) == ("priceSizeTick", (8, 1, 101.25, 300.0))


def test_tick_price_in_the_official_client_gives_price_then_size(official) -> None:
    (price_name, price_args), (size_name, size_args) = official.decode_all(
        m.tick_price(8, 1, 101.25, 300.0)
    )
    assert (price_name, price_args[:3]) == ("tickPrice", (8, 1, 101.25))
    assert (size_name, size_args) == ("tickSize", (8, 0, 300))


def test_position_is_sixteen_fields_and_decodes(at_version, aapl) -> None:
    fields = m.position("DU1", aapl, Decimal(150), 190.5)
    assert len(at_version.wire(fields)) == 16
    name, (account, contract, qty, cost) = at_version.decode(fields)
    assert (name, account, contract.conId, contract.symbol, qty, cost) == (
        "position",
        "DU1",
        aapl.con_id,
        "AAPL",
        150.0,
        190.5,
    )


def _portfolio(c: ContractInfo) -> list[Any]:
    return m.portfolio_value(
        c,
        qty=Decimal(10),
        market_price=101.0,
        avg_cost=100.0,
        unrealized=10.0,
        realized=0.0,
        account="DU1",
    )


def test_portfolio_value_is_twenty_fields_and_decodes(at_version, aapl) -> None:
    fields = _portfolio(aapl)
    assert len(at_version.wire(fields)) == 20
    name, args = at_version.decode(fields)
    assert name == "updatePortfolio" and args[0].primaryExchange == "NASDAQ"
    assert args[1:] == (10.0, 101.0, 1010.0, 100.0, 10.0, 0.0, "DU1")


def test_position_and_portfolio_decode_strictly_in_the_official_client(official, bhp) -> None:
    name, (account, contract, qty, cost) = official.decode(
        m.position("DU1", bhp, Decimal(150), 40.5)
    )
    assert (name, account, contract.symbol, qty, cost) == ("position", "DU1", "BHP", 150, 40.5)
    name, args = official.decode(_portfolio(bhp))
    assert (name, args[0].primaryExchange, args[-1]) == ("updatePortfolio", "ASX", "DU1")


@pytest.mark.parametrize("symbol_fixture", ["aapl", "bhp"])
def test_contract_details_decode_completely_at_every_version(
    at_version, request, symbol_fixture
) -> None:
    c: ContractInfo = request.getfixturevalue(symbol_fixture)
    version = at_version.version
    fields = _details(c, version)
    # 164 dropped the version field and mdSizeMultiplier and added three size rules; 163 alone
    # carries sizeMinTick.
    expected = 40 if version >= versions.FRACTIONAL_SIZE_SUPPORT else 39
    assert len(at_version.wire(fields)) == expected
    name, (req_id, cd) = at_version.decode(fields)
    assert (name, req_id) == ("contractDetails", 9)
    assert (cd.contract.conId, cd.contract.symbol, cd.contract.currency) == (
        c.con_id,
        c.symbol,
        c.currency,
    )
    assert cd.contract.primaryExchange == c.primary_exchange
    assert cd.longName == c.long_name and cd.timeZoneId == c.time_zone
    assert cd.stockType in ("COMMON", "ETF")
    if version >= versions.SIZE_RULES:  # the last fields land where they belong
        assert (cd.minSize, cd.sizeIncrement, cd.suggestedSizeIncrement) == (1, 1, 100)


@pytest.mark.parametrize("symbol_fixture", ["aapl", "bhp"])
def test_contract_details_decode_strictly_in_the_official_client(
    official, request, symbol_fixture
) -> None:
    c: ContractInfo = request.getfixturevalue(symbol_fixture)
    name, (req_id, cd) = official.decode(_details(c, official.version))
    assert (name, req_id, cd.contract.conId, cd.contract.symbol) == (
        "contractDetails",
        9,
        c.con_id,
        c.symbol,
    )
    assert (cd.longName, cd.timeZoneId, cd.contract.primaryExchange) == (
        c.long_name,
        c.time_zone,
        c.primary_exchange,
    )
    assert cd.stockType in ("COMMON", "ETF") and cd.tradingHours.startswith("20240305")


def _bars() -> list[m.HistBar]:
    return [
        ("20240304", 1.0, 2.0, 0.5, 1.5, 100.0, 1.2, 3),
        ("20240305", 1.5, 2.5, 1.0, 2.0, 200.0, 1.8, 4),
    ]


def test_historical_data_decodes_every_bar_then_ends(at_version) -> None:
    at_version.decode(m.historical_data(4, "s", "e", _bars()))
    calls = at_version.wrapper.calls
    assert [c[0] for c in calls] == ["historicalData", "historicalData", "historicalDataEnd"]
    assert calls[1][1][1].close == 2.0 and calls[1][1][1].barCount == 4
    assert calls[2][1] == (4, "s", "e")


def test_historical_data_decodes_strictly_in_the_official_client(official) -> None:
    calls = official.decode_all(m.historical_data(4, "s", "e", _bars()))
    assert [name for name, _ in calls] == ["historicalData", "historicalData", "historicalDataEnd"]
    assert calls[1][1][1].close == 2.0 and calls[1][1][1].barCount == 4
    assert calls[2][1] == (4, "s", "e")


def test_historical_data_update_reorders_fields_as_ib_does(at_version) -> None:
    name, (req_id, bar) = at_version.decode(
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
