"""Unit tests of actors.contracts: canonical ids from IB's contract fields, the listing book."""

from __future__ import annotations

import ib_async
import pytest

from actors import ib_convert as conv
from actors.contracts import ContractBook, instrument_for_id, venue_from
from core.errors import Conflict, ValidationError
from core.types import Instrument, SecType

VEA_ASX = Instrument(
    symbol="VEA", exchange="ASX", primary_exchange="ASX", currency="AUD", con_id=577987566
)
VEA_ARCA = Instrument(
    symbol="VEA", primary_exchange="ARCA", currency="USD", con_id=337524944, sec_type=SecType.ETF
)


@pytest.mark.parametrize(
    ("primary", "exchange", "venue"),
    [
        ("ARCA", "SMART", "ARCA"),
        ("", "ASX", "ASX"),  # ASX routes to itself: the routing exchange names the venue
        ("", "SMART", None),  # a SMART-routed listing says nothing about where it is listed
        ("", "ISLAND", None),  # an execution venue is not the listing's venue
        ("", "", None),
    ],
)
def test_venue_from_uses_primary_exchange_and_only_self_routing_venues(
    primary: str, exchange: str, venue: str | None
) -> None:
    assert venue_from(primary_exchange=primary, exchange=exchange) == venue


def test_instrument_for_id_takes_currency_and_routing_from_the_venue_table() -> None:
    asx = instrument_for_id("vea.asx")
    assert (asx.symbol, asx.primary_exchange, asx.exchange, asx.currency) == (
        "VEA",
        "ASX",
        "ASX",
        "AUD",
    )
    arca = instrument_for_id("VEA.ARCA")
    assert (arca.exchange, arca.currency, arca.id) == ("SMART", "USD", "VEA.ARCA")
    other = instrument_for_id("X.TSE")  # a venue without a table entry: SMART, any currency
    assert (other.exchange, other.currency) == ("SMART", "")
    with pytest.raises(ValidationError):
        instrument_for_id("VEA")


def test_contract_book_keys_listings_by_id_and_con_id_never_by_symbol() -> None:
    book = ContractBook()
    book.add_all([VEA_ASX, VEA_ARCA])
    assert book.by_id("VEA.ASX") == VEA_ASX and book.by_id("vea.arca") == VEA_ARCA
    assert book.by_con_id(577987566) == VEA_ASX and book.by_con_id(337524944) == VEA_ARCA
    assert book.by_id("VEA") is None and len(book) == 2
    book.add(VEA_ASX)  # the same listing again is fine
    assert len(book) == 2


def test_contract_book_refuses_one_con_id_under_two_ids_and_unqualified_listings() -> None:
    book = ContractBook()
    book.add(VEA_ASX)
    clash = Instrument(symbol="VEA", primary_exchange="ARCA", con_id=577987566)
    with pytest.raises(Conflict, match="577987566"):
        book.add(clash)
    with pytest.raises(Conflict, match="no conId"):
        book.add(Instrument(symbol="BHP", exchange="ASX"))


def test_contract_book_names_ib_reported_contracts_by_con_id_then_by_fields() -> None:
    book = ContractBook()
    book.add(VEA_ARCA)
    # IB's openOrder/execDetails/position messages carry no primary exchange
    assert book.id_of(symbol="VEA", con_id=337524944, primary_exchange="", exchange="SMART") == (
        "VEA.ARCA"
    )
    assert book.id_of(symbol="VEA", con_id=577987566, primary_exchange="", exchange="ASX") == (
        "VEA.ASX"
    )
    assert book.id_of(symbol="VEA", con_id=1, primary_exchange="", exchange="SMART") is None
    assert book.id_of(symbol="AAPL", con_id=0, primary_exchange="NASDAQ", exchange="") == (
        "AAPL.NASDAQ"
    )


def test_from_details_routes_a_listing_by_its_venue_whatever_the_request_named() -> None:
    contract = ib_async.Contract(
        conId=577987566, symbol="VEA", exchange="SMART", primaryExchange="ASX", currency="AUD"
    )
    details = ib_async.ContractDetails(
        contract=contract, longName="Viva Energy", stockType="COMMON"
    )
    inst = conv.from_details(details)
    assert (inst.id, inst.exchange, inst.currency, inst.con_id) == (
        "VEA.ASX",
        "ASX",
        "AUD",
        577987566,
    )
    assert conv.details_record(details)["instrument"] == "VEA.ASX"
    etf = ib_async.ContractDetails(
        contract=ib_async.Contract(conId=337524944, symbol="VEA", primaryExchange="ARCA"),
        stockType="ETF",
    )
    assert conv.from_details(etf).sec_type == SecType.ETF
