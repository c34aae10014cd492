"""Canonical instrument ids: parsing, resolution of bare symbols, ambiguity errors."""

from __future__ import annotations

import pickle
from decimal import Decimal

import pytest

from core.errors import NotFound, ValidationError
from core.instruments import (
    AmbiguousInstrument,
    instrument_id,
    is_canonical,
    parse,
    resolve,
    venue,
)
from core.types import Fill, Instrument, Order, Position, SecType, Side, utcnow

LISTINGS = {
    "VEA.ASX": "Viva Energy Group Ltd",
    "VEA.ARCA": "Vanguard FTSE Developed Markets ETF",
    "AAPL.NASDAQ": "Apple Inc",
    "BHP.ASX": "BHP Group Ltd",
}


def test_parse_splits_symbol_and_venue_case_insensitively() -> None:
    parsed = parse(" vea.asx ")
    assert (parsed.symbol, parsed.venue, str(parsed)) == ("VEA", "ASX", "VEA.ASX")
    assert instrument_id("brk b", "nyse") == "BRK B.NYSE"


@pytest.mark.parametrize("text", ["VEA", "", ".ASX", "VEA.", "VEA.A.SX", "VEA/ASX", "VE=A.ASX"])
def test_parse_refuses_what_is_not_an_id_naming_the_field(text: str) -> None:
    with pytest.raises(ValidationError, match=r"SYMBOL\.VENUE") as err:
        parse(text, field="symbol")
    assert err.value.field == "symbol"
    assert not is_canonical(text)


def test_resolve_accepts_ids_and_unambiguous_bare_symbols() -> None:
    assert resolve("vea.arca", LISTINGS) == "VEA.ARCA"
    assert resolve("aapl", LISTINGS) == "AAPL.NASDAQ"
    assert resolve("BHP", LISTINGS) == "BHP.ASX"


def test_resolve_of_an_ambiguous_symbol_lists_every_candidate_with_its_name() -> None:
    with pytest.raises(AmbiguousInstrument) as err:
        resolve("VEA", LISTINGS)
    assert err.value.candidates == ["VEA.ARCA", "VEA.ASX"]
    assert err.value.field == "instrument"
    assert str(err.value) == (
        "VEA is ambiguous: VEA.ARCA (Vanguard FTSE Developed Markets ETF), "
        "VEA.ASX (Viva Energy Group Ltd); name one of these instrument ids"
    )
    # It crosses Ray process boundaries intact.
    again = pickle.loads(pickle.dumps(err.value))
    assert again.candidates == err.value.candidates and str(again) == str(err.value)


def test_resolve_of_an_unknown_listing_suggests_the_same_symbol_elsewhere() -> None:
    with pytest.raises(NotFound, match=r"VEA.NYSE.*did you mean VEA.ARCA, VEA.ASX"):
        resolve("VEA.NYSE", LISTINGS)
    with pytest.raises(NotFound, match=r"did you mean AAPL\.NASDAQ"):
        resolve("APPL", LISTINGS)  # a misspelled bare symbol
    with pytest.raises(NotFound, match="scizor symbols add"):
        resolve("ZZZZ", LISTINGS)


def test_instrument_id_uses_the_primary_exchange_then_a_direct_route() -> None:
    etf = Instrument(symbol="VEA", sec_type=SecType.ETF, primary_exchange="ARCA")
    asx = Instrument(symbol="VEA", exchange="ASX", currency="AUD")
    assert (etf.id, asx.id) == ("VEA.ARCA", "VEA.ASX")
    with pytest.raises(ValidationError) as err:
        _ = Instrument(symbol="XYZ").id  # SMART with no primary exchange: no venue
    assert err.value.field == "primary_exchange"


def test_orders_fills_and_positions_carry_the_canonical_id_and_con_id() -> None:
    order = Order(instrument="vea.asx", side=Side.BUY, quantity=10, con_id=577987566)
    assert (order.instrument, order.con_id) == ("VEA.ASX", 577987566)
    fill = Fill(
        exec_id="e1", order_ref="r1", instrument="VEA.ARCA", side=Side.SELL, quantity=1,
        price=Decimal("50"), commission=Decimal("1"), time=utcnow(), con_id=337524944,
    )  # fmt: skip
    assert fill.instrument == "VEA.ARCA"
    assert Position(instrument="bhp.asx", quantity=Decimal(1), avg_cost=Decimal(40)).instrument == (
        "BHP.ASX"
    )
    with pytest.raises(ValidationError) as err:
        Order(instrument="VEA", side=Side.BUY, quantity=1)
    assert err.value.field == "instrument"
    with pytest.raises(ValidationError) as err:
        Order(instrument="VEA.ASX", side=Side.BUY, quantity=1, con_id=0)
    assert err.value.field == "con_id"


def test_known_venues_give_currency_and_ib_routing() -> None:
    assert (venue("asx").currency, venue("ASX").routing) == ("AUD", "ASX")
    assert (venue("ARCA").currency, venue("ARCA").routing) == ("USD", "SMART")
    with pytest.raises(NotFound, match="known venues"):
        venue("LSE")
