"""The gateway's book of IB listings, keyed by canonical instrument id and by conId.

A ticker is not a listing (``VEA`` is Viva Energy on the ASX and a Vanguard ETF on NYSE
Arca), so nothing here is keyed by a bare symbol. :class:`ContractBook` remembers every
listing IB has described to the gateway; :func:`venue_from` and :meth:`ContractBook.id_of`
turn what IB reports about a contract (symbol, primary exchange, routing exchange, conId)
back into SCIZOR's canonical id; :func:`instrument_for_id` builds the contract SCIZOR asks
IB about for an id it has not qualified yet. Plain Python: no ib_async, no Ray.
"""

from __future__ import annotations

from collections.abc import Iterable

from core.errors import Conflict
from core.instruments import VENUES, instrument_id, parse
from core.types import Instrument


def venue_from(*, primary_exchange: str, exchange: str) -> str | None:
    """Return the venue IB's contract fields name, or None when they do not name one.

    The primary exchange is the venue. Without it (IB leaves it out of openOrder,
    execDetails and position messages) a routing exchange names the venue only when the
    venue routes to itself (``ASX``): a US listing routed ``SMART`` or executed on ``ISLAND``
    says nothing about where it is listed.
    """
    primary, routing = primary_exchange.strip().upper(), exchange.strip().upper()
    if primary:
        return primary
    known = VENUES.get(routing)
    if known is not None and known.routing == routing:
        return routing
    return None


def instrument_for_id(text: str) -> Instrument:
    """Return the contract to ask IB for the canonical id ``text`` (no conId yet).

    Currency and routing come from :data:`core.instruments.VENUES`; for a venue SCIZOR has
    no table entry for, the routing is ``SMART`` and the currency is left blank (IB then
    matches any currency and reports the listing's own).

    Raises:
        ValidationError: if ``text`` is not of the form ``SYMBOL.VENUE``.
    """
    parsed = parse(text)
    venue = VENUES.get(parsed.venue)
    return Instrument(
        symbol=parsed.symbol,
        primary_exchange=parsed.venue,
        exchange=venue.routing if venue else "SMART",
        currency=venue.currency if venue else "",
    )


class ContractBook:
    """Every listing IB has described to this gateway, by canonical id and by conId."""

    def __init__(self) -> None:
        self._by_id: dict[str, Instrument] = {}
        self._by_con_id: dict[int, Instrument] = {}

    def __len__(self) -> int:
        return len(self._by_con_id)

    def add(self, instrument: Instrument) -> Instrument:
        """Remember a qualified listing (one with a conId and a venue); return it.

        Raises:
            Conflict: if the id or the conId is already known as another listing.
            ValidationError: if the listing has no venue to name it by.
        """
        if instrument.con_id is None:
            raise Conflict(f"{instrument.symbol} has no conId: only qualified listings are kept")
        key = instrument.id
        known = self._by_id.get(key) or self._by_con_id.get(instrument.con_id)
        if known is not None and (known.id, known.con_id) != (key, instrument.con_id):
            raise Conflict(
                f"IB described {key} (conId {instrument.con_id}) but the gateway knows "
                f"{known.id} (conId {known.con_id}); one listing, one id"
            )
        self._by_id[key] = instrument
        self._by_con_id[instrument.con_id] = instrument
        return instrument

    def add_all(self, instruments: Iterable[Instrument]) -> None:
        """Remember several qualified listings (see :meth:`add`)."""
        for instrument in instruments:
            self.add(instrument)

    def by_id(self, instrument: str) -> Instrument | None:
        """Return the listing with canonical id ``instrument``, or None."""
        return self._by_id.get(instrument.strip().upper())

    def by_con_id(self, con_id: int) -> Instrument | None:
        """Return the listing with IB contract id ``con_id``, or None."""
        return self._by_con_id.get(con_id)

    def id_of(
        self, *, symbol: str, con_id: int, primary_exchange: str, exchange: str
    ) -> str | None:
        """Return the canonical id of a contract IB reported, or None if it cannot tell.

        A known conId wins (its listing came from IB's contract details); otherwise the
        venue comes from the fields themselves (see :func:`venue_from`).
        """
        known = self._by_con_id.get(con_id) if con_id else None
        if known is not None:
            return known.id
        venue = venue_from(primary_exchange=primary_exchange, exchange=exchange)
        return instrument_id(symbol, venue) if venue and symbol else None
