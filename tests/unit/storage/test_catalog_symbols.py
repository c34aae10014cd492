"""Listings by instrument id on SQLite and PostgreSQL: a ticker is not an instrument.

``VEA`` is Viva Energy on the ASX and the Vanguard FTSE Developed Markets ETF on NYSE Arca.
Every lookup takes the canonical id (any case) or a bare symbol naming one listing; a bare
symbol naming several is an :class:`AmbiguousInstrument` listing them, and changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.errors import NotFound, ValidationError
from core.instruments import AmbiguousInstrument
from storage.catalog import SymbolRecord

T0 = datetime(2024, 3, 1, 14, 30, tzinfo=UTC)
VIVA, VANGUARD = 577987566, 337524944

LISTINGS = [
    SymbolRecord(
        symbol="VEA", exchange="ASX", primary_exchange="ASX", currency="AUD", con_id=VIVA,
        name="Viva Energy Group",
    ),
    SymbolRecord(
        symbol="VEA", primary_exchange="ARCA", con_id=VANGUARD,
        name="Vanguard FTSE Developed Markets ETF",
    ),
    SymbolRecord(symbol="AAPL", primary_exchange="NASDAQ", name="Apple Inc"),
]  # fmt: skip


@pytest.fixture
def symbols(catalog):
    catalog.symbols.upsert_many(LISTINGS, at=T0)
    return catalog.symbols


def _state(symbols) -> dict[str, tuple[object, ...]]:
    return {s.id: (s.con_id, s.valid, s.last_verified, s.name) for s in symbols.list()}


def test_bare_symbol_of_two_listings_is_ambiguous_naming_both_ids_and_names(symbols):
    with pytest.raises(AmbiguousInstrument) as caught:
        symbols.get("VEA")
    assert str(caught.value) == (
        "VEA is ambiguous: VEA.ARCA (Vanguard FTSE Developed Markets ETF), "
        "VEA.ASX (Viva Energy Group); name one of these instrument ids"
    )
    assert caught.value.candidates == ["VEA.ARCA", "VEA.ASX"]
    assert caught.value.field == "instrument"
    assert isinstance(caught.value, ValidationError)  # the caller's input, not the store


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.get("vea"),
        lambda s: s.resolve(" VEA "),
        lambda s: s.mark_verified("VEA", con_id=1, at=T0, details={"name": "?"}),
        lambda s: s.mark_invalid("VEA", at=T0),
        lambda s: s.delete("VEA"),
    ],
    ids=["get", "resolve", "mark_verified", "mark_invalid", "delete"],
)
def test_every_lookup_by_an_ambiguous_symbol_is_refused_and_writes_nothing(symbols, call):
    before = _state(symbols)
    with pytest.raises(AmbiguousInstrument, match=r"VEA\.ARCA .*VEA\.ASX"):
        call(symbols)
    assert _state(symbols) == before


def test_instrument_ids_name_one_listing_whatever_their_case(symbols):
    assert symbols.get("vea.asx").con_id == VIVA
    assert symbols.get(" Vea.Arca ").con_id == VANGUARD
    assert symbols.resolve("vea.arca") == "VEA.ARCA"
    assert symbols.mark_invalid("vea.asx", at=T0).valid is False
    assert symbols.get("VEA.ARCA").valid is None  # the other listing is untouched
    assert symbols.delete("VEA.ASX").name == "Viva Energy Group"
    assert symbols.get("VEA").id == "VEA.ARCA"  # now one listing: the bare symbol works


def test_bare_symbol_of_one_listing_resolves_to_its_id(symbols):
    assert symbols.resolve("aapl") == "AAPL.NASDAQ"
    verified = symbols.mark_verified("AAPL", con_id=265598, at=T0)
    assert (verified.id, verified.con_id, verified.valid) == ("AAPL.NASDAQ", 265598, True)


@pytest.mark.parametrize(
    ("wanted", "suggested"),
    [
        ("VEA.NYSE", "did you mean VEA.ARCA, VEA.ASX?"),  # the listings of its symbol
        ("AAPL.ARCA", "did you mean AAPL.NASDAQ?"),
        ("APPL.NASDAQ", "did you mean AAPL.NASDAQ?"),  # a close id
        ("ZZZZQ", "add it with 'scizor symbols add'"),
        ("ZZZZQ.ASX", "add it with 'scizor symbols add'"),
    ],
)
def test_unknown_instrument_is_not_found_with_close_ids_suggested(symbols, wanted, suggested):
    with pytest.raises(NotFound, match=rf"instrument '{wanted}' is not in the catalog") as caught:
        symbols.get(wanted)
    assert suggested in str(caught.value)
    with pytest.raises(NotFound):
        symbols.delete(wanted)
    assert len(symbols.list()) == 3


@pytest.mark.parametrize("wanted", ["VEA.", ".ASX", "VEA.ASX.X", "", "VEA/ASX"])
def test_malformed_instrument_is_a_validation_error_showing_the_form(symbols, wanted):
    with pytest.raises(ValidationError, match=r"SYMBOL\.VENUE") as caught:
        symbols.get(wanted)
    assert caught.value.field == "instrument"


def test_listings_maps_every_id_to_its_name(symbols):
    assert symbols.listings() == {
        "AAPL.NASDAQ": "Apple Inc",
        "VEA.ARCA": "Vanguard FTSE Developed Markets ETF",
        "VEA.ASX": "Viva Energy Group",
    }


def test_a_listing_given_twice_in_one_batch_is_stored_once_the_last_winning(catalog):
    first = SymbolRecord(symbol="AAPL", primary_exchange="NASDAQ", name="Apple")
    again = SymbolRecord(symbol="aapl", primary_exchange="nasdaq", name="Apple Inc")
    assert catalog.symbols.upsert_many([first, again], at=T0) == 2
    (stored,) = catalog.symbols.list()
    assert (stored.id, stored.primary_exchange, stored.name) == (
        "AAPL.NASDAQ",
        "NASDAQ",
        "Apple Inc",
    )
