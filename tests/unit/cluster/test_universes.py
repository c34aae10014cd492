"""Bundled universes: files parse, rows are well formed, selection deduplicates."""

from __future__ import annotations

import pytest

from cluster import universe, universes
from core.errors import DataError, ValidationError
from core.types import SecType

HEADER = "symbol,name,sec_type,exchange,primary_exchange,currency\n"


def test_each_bundled_universe_loads_with_expected_size_and_currency() -> None:
    sizes = universe.sizes()
    assert 190 <= sizes["asx200"] <= 230
    assert sizes["nasdaq"] >= 100
    assert 50 <= sizes["etfs"] <= 70
    assert {m.currency for m in universes.load("asx200")} == {"AUD"}
    assert {m.exchange for m in universes.load("asx200")} == {"ASX"}
    assert {m.currency for m in universes.load("nasdaq")} == {"USD"}
    assert {m.sec_type for m in universes.load("etfs")} == {SecType.ETF}


def test_well_known_constituents_are_present() -> None:
    asx = {m.symbol for m in universes.load("asx200")}
    nasdaq = {m.symbol for m in universes.load("nasdaq")}
    etfs = {m.symbol for m in universes.load("etfs")}
    assert {"BHP", "CBA", "CSL", "NAB", "WBC", "ANZ", "WES", "MQG"} <= asx
    assert {"AAPL", "MSFT", "NVDA", "AMZN", "META", "GOOGL", "AVGO", "COST"} <= nasdaq
    assert {"SPY", "QQQ", "IWM", "GLD", "TLT", "XLK", "EEM"} <= etfs


def test_select_all_unions_universes_without_duplicates() -> None:
    members = universe.select()
    keys = [(m.symbol, m.currency) for m in members]
    assert len(keys) == len(set(keys))
    assert len(members) == sum(universe.sizes().values())
    assert len(members) >= 300


def test_select_accepts_aliases_and_keeps_order() -> None:
    members = universe.select(["ETF", "nasdaq100"])
    assert members[0].universe == "etfs"
    assert members[-1].universe == "nasdaq"


def test_select_unknown_universe_names_the_valid_ones() -> None:
    with pytest.raises(ValidationError, match="asx200, nasdaq, etfs") as info:
        universe.select(["ftse100"])
    assert info.value.field == "universe"


def test_member_instrument_carries_listing_details() -> None:
    bhp = next(m for m in universes.load("asx") if m.symbol == "BHP")
    inst = bhp.instrument()
    assert (inst.symbol, inst.exchange, inst.currency, inst.con_id) == ("BHP", "ASX", "AUD", None)


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ("aapl,Apple,STK,SMART,NASDAQ,USD", "symbol"),
        ("AAPL,Apple,BOND,SMART,NASDAQ,USD", "sec_type"),
        ("AAPL,Apple,STK,NYSE,NASDAQ,USD", "exchange"),
        ("AAPL,Apple,STK,SMART,,USD", "primary_exchange"),
        ("AAPL,Apple,STK,SMART,NASDAQ,EUR", "currency"),
    ],
)
def test_parse_rejects_bad_rows_naming_line_and_field(row: str, field: str) -> None:
    with pytest.raises(DataError, match=f"x.csv line 2: {field}"):
        universes.parse(HEADER + row + "\n", universe="x")


def test_parse_rejects_repeated_symbols_and_wrong_header() -> None:
    row = "AAPL,Apple,STK,SMART,NASDAQ,USD\n"
    with pytest.raises(DataError, match="line 3: symbol AAPL is repeated"):
        universes.parse(HEADER + row + row, universe="x")
    with pytest.raises(DataError, match="header must be"):
        universes.parse("ticker,name\nAAPL,Apple\n", universe="x")
