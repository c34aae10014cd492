"""Which listing a request means: canonical ids and conIds resolved at IB, once each.

Every gateway request names a listing as an :class:`core.types.Instrument` or a string:
a canonical id (``VEA.ASX``) or, where it names one listing, a bare symbol (``AAPL``). The
:class:`ContractResolver` answers from its :class:`actors.contracts.ContractBook` when it
can and otherwise asks IB for contract details (paced), remembering every listing IB
describes. A bare symbol IB lists more than once is an
:class:`core.instruments.AmbiguousInstrument` naming the candidates; it is never guessed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import ib_async

from actors import ib_convert as conv
from actors.contracts import ContractBook, instrument_for_id, venue_from
from actors.ib_link import IBLink
from core.errors import BrokerError, Conflict, NotFound
from core.instruments import AmbiguousInstrument, is_canonical
from core.types import Instrument

log = logging.getLogger(__name__)


class ContractResolver:
    """Resolve what callers name to qualified listings (with conIds), asking IB when needed.

    Args:
        link: The paced request path.
        book: The listings already known (shared with the other gateway parts).
    """

    def __init__(self, link: IBLink, book: ContractBook) -> None:
        self._link = link
        self.book = book

    async def resolve(self, item: Instrument | str) -> Instrument:
        """Return the one qualified listing ``item`` names.

        Raises:
            NotFound: if IB has no such listing (error 200).
            AmbiguousInstrument: if a bare symbol names several listings.
            Conflict: if a given conId belongs to another listing than the one named.
        """
        known = self._known(item)
        if known is not None:
            return known
        return conv.from_details(self._one(item, await self._matching(item)))

    async def contract_details(self, item: Instrument | str) -> dict[str, Any]:
        """Return IB's contract details of the one listing ``item`` names, as a record.

        Raises:
            NotFound: if IB has no such listing (error 200).
            AmbiguousInstrument: if a bare symbol names several listings.
            Conflict: if a given conId belongs to another listing than the one named.
        """
        known = self._known(item)
        wanted: Instrument | str = item
        if known is not None:
            wanted = Instrument(symbol=known.symbol, con_id=known.con_id)
        return conv.details_record(self._one(item, await self._matching(wanted)))

    async def _matching(self, item: Instrument | str) -> list[ib_async.ContractDetails]:
        """IB's details of every listing ``item`` may name (all remembered in the book).

        Raises:
            NotFound: if IB has none.
            Conflict: if a given conId belongs to another listing than the one named.
        """
        wanted = _request(item)
        details = await self.details(wanted)
        found = [(d, conv.from_details(d)) for d in details]
        self.book.add_all(i for _, i in found)
        matches = [(d, i) for d, i in found if _matches(i, wanted)]
        if not matches:
            raise NotFound(f"IB has no listing {_name(item)}; IB answered {_ids(found)}")
        if wanted.con_id is not None and not _consistent(item, matches[0][1]):
            raise Conflict(
                f"conId {wanted.con_id} is {matches[0][1].id} at IB, not {_name(item)}; "
                "check the catalog's contract id"
            )
        return [d for d, _ in matches]

    @staticmethod
    def _one(
        item: Instrument | str, details: list[ib_async.ContractDetails]
    ) -> ib_async.ContractDetails:
        if len(details) > 1:
            ids = sorted(conv.from_details(d).id for d in details)
            raise AmbiguousInstrument(
                f"{_name(item)} is ambiguous at IB: {', '.join(ids)}; name one of these ids",
                candidates=ids,
            )
        return details[0]

    async def details(self, instrument: Instrument) -> list[ib_async.ContractDetails]:
        """Return IB's contract details for ``instrument`` (paced).

        Raises:
            NotFound: if IB has no such contract (error 200).
        """
        contract = _details_contract(instrument)
        details = await self._link.paced_request(
            "contract_details", lambda: self._link.ib.reqContractDetailsAsync(contract)
        )
        if not details:
            raise NotFound(f"IB has no contract for {_name(instrument)}; check the symbol")
        return list(details)

    async def qualify(self, items: Iterable[Instrument | str]) -> dict[str, Instrument | None]:
        """Resolve many items at once; unknown or ambiguous ones map to None.

        The result is keyed by each item's name: the string as given, or an instrument's
        canonical id (its symbol when it names no venue).
        """
        wanted = list(items)
        found = await asyncio.gather(*(self._qualify_one(i) for i in wanted))
        return {_name(i): f for i, f in zip(wanted, found, strict=True)}

    async def _qualify_one(self, item: Instrument | str) -> Instrument | None:
        try:
            return await self.resolve(item)
        except AmbiguousInstrument as exc:
            log.warning("%s", exc)
        except NotFound:
            pass
        return None

    async def instrument_id(self, contract: ib_async.Contract) -> str:
        """Return the canonical id of a contract IB reported (order, execution, position).

        IB leaves the primary exchange out of those messages, so an unknown conId is
        qualified at IB first (one paced request per listing, then remembered).

        Raises:
            BrokerError: if IB cannot tell which listing the conId is.
        """
        found = self._id_in_book(contract)
        if found is None and contract.conId:
            await self.resolve(Instrument(symbol=contract.symbol, con_id=contract.conId))
            found = self._id_in_book(contract)
        if found is None:
            raise BrokerError(
                0, f"IB reported {contract.symbol} (conId {contract.conId}) with no venue"
            )
        return found

    def _id_in_book(self, contract: ib_async.Contract) -> str | None:
        return self.book.id_of(
            symbol=contract.symbol,
            con_id=contract.conId,
            primary_exchange=contract.primaryExchange,
            exchange=contract.exchange,
        )

    def _known(self, item: Instrument | str) -> Instrument | None:
        if isinstance(item, str):
            return self.book.by_id(item) if is_canonical(item) else None
        if item.con_id is not None:
            known = self.book.by_con_id(item.con_id)
            if known is not None and not _consistent(item, known):
                raise Conflict(f"conId {item.con_id} is {known.id}, not {_name(item)}")
            return known
        venue = _venue(item)
        return self.book.by_id(f"{item.symbol}.{venue}") if venue else None


def _request(item: Instrument | str) -> Instrument:
    """The contract to ask IB about for ``item``."""
    if isinstance(item, Instrument):
        return item
    text = item.strip().upper()
    return instrument_for_id(text) if is_canonical(text) else Instrument(symbol=text, currency="")


def _details_contract(instrument: Instrument) -> ib_async.Contract:
    if instrument.con_id is not None:
        return ib_async.Contract(conId=instrument.con_id)  # a conId names one listing
    return conv.to_contract(instrument)


def _matches(found: Instrument, wanted: Instrument) -> bool:
    if wanted.con_id is not None:
        return found.con_id == wanted.con_id
    if found.symbol != wanted.symbol.strip().upper():
        return False
    if wanted.currency and found.currency != wanted.currency:
        return False
    return not wanted.primary_exchange or found.primary_exchange == wanted.primary_exchange


def _consistent(item: Instrument | str, listing: Instrument) -> bool:
    """True when ``listing`` is what ``item`` names (same symbol, and venue when named)."""
    if isinstance(item, str):
        text = item.strip().upper()
        return listing.id == text if is_canonical(text) else listing.symbol == text
    venue = _venue(item)
    same_symbol = not item.symbol or item.symbol.strip().upper() == listing.symbol
    return same_symbol and (venue is None or listing.primary_exchange == venue)


def _venue(item: Instrument) -> str | None:
    return venue_from(primary_exchange=item.primary_exchange, exchange=item.exchange)


def _name(item: Instrument | str) -> str:
    """What ``item`` is called in results and messages: its id, else its symbol."""
    if isinstance(item, str):
        return item.strip().upper()
    venue = _venue(item)
    symbol = item.symbol.strip().upper()
    return f"{symbol}.{venue}" if venue else symbol


def _ids(found: list[tuple[ib_async.ContractDetails, Instrument]]) -> str:
    return ", ".join(sorted(i.id for _, i in found)) or "nothing"
