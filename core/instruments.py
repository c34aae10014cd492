"""Canonical instrument ids: one name per listing, used everywhere.

A ticker is not an instrument: ``VEA`` is Viva Energy on the ASX and the Vanguard FTSE
Developed Markets ETF on NYSE Arca. SCIZOR names every listing ``SYMBOL.VENUE``, where the
venue is the listing's primary exchange as IB spells it (``VEA.ASX``, ``VEA.ARCA``,
``AAPL.NASDAQ``, ``BHP.ASX``), as NautilusTrader does. The id keys catalog rows, collection
items, bar-store partitions, orders, executions, positions, CLI arguments and API paths;
IB's ``conId`` travels alongside it.

A bare symbol is accepted at the edges (CLI, API) wherever it names one listing: callers
resolve it with :func:`resolve` against the listings they know, and an ambiguous symbol is an
:class:`AmbiguousInstrument` error listing the candidates.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from core.errors import NotFound, ValidationError

_SYMBOL = r"[A-Z0-9][A-Z0-9 &+\-]{0,30}"
_VENUE = r"[A-Z][A-Z0-9]{0,15}"
_ID = re.compile(rf"(?P<symbol>{_SYMBOL})\.(?P<venue>{_VENUE})")
_BARE = re.compile(_SYMBOL)


@dataclass(frozen=True, slots=True, kw_only=True)
class Venue:
    """What SCIZOR knows of a venue: its currency and how IB routes orders there.

    Attributes:
        code: IB's name of the primary exchange (the id's venue part).
        currency: The currency its listings trade in.
        routing: The IB exchange orders are sent to (``SMART`` for US venues).
    """

    code: str
    currency: str
    routing: str


VENUES: Mapping[str, Venue] = {
    v.code: v
    for v in (
        Venue(code="NASDAQ", currency="USD", routing="SMART"),
        Venue(code="NYSE", currency="USD", routing="SMART"),
        Venue(code="ARCA", currency="USD", routing="SMART"),
        Venue(code="AMEX", currency="USD", routing="SMART"),
        Venue(code="BATS", currency="USD", routing="SMART"),
        Venue(code="IEX", currency="USD", routing="SMART"),
        Venue(code="ASX", currency="AUD", routing="ASX"),
    )
}
"""Venues of the bundled universes; an id with another venue still parses (its currency and
routing then come from the catalog's symbol row)."""


def venue(code: str) -> Venue:
    """Return the known venue ``code`` (IB's primary-exchange name).

    Raises:
        NotFound: for a venue SCIZOR has no currency and routing for.
    """
    found = VENUES.get(code.strip().upper())
    if found is None:
        raise NotFound(f"venue {code!r} is not known; known venues: {', '.join(sorted(VENUES))}")
    return found


class AmbiguousInstrument(ValidationError):
    """A bare symbol names several listings; the message lists them as canonical ids.

    Attributes:
        candidates: The canonical ids the symbol could mean, sorted.
    """

    def __init__(self, message: str, *, candidates: Iterable[str], field: str = "instrument"):
        super().__init__(message, field=field)
        self.candidates = sorted(candidates)


@dataclass(frozen=True, slots=True)
class InstrumentId:
    """A parsed canonical id: the IB symbol and the venue (primary exchange)."""

    symbol: str
    venue: str

    def __str__(self) -> str:
        return f"{self.symbol}.{self.venue}"


def instrument_id(symbol: str, venue: str, *, field: str = "instrument") -> str:
    """Return the canonical id of ``symbol`` listed on ``venue`` (both upper-cased).

    Raises:
        ValidationError: naming ``field`` if either part cannot be part of an id.
    """
    text = f"{symbol.strip().upper()}.{venue.strip().upper()}"
    return str(parse(text, field=field))


def parse(text: str, *, field: str = "instrument") -> InstrumentId:
    """Parse a canonical id ``SYMBOL.VENUE`` (case-insensitive).

    Raises:
        ValidationError: naming ``field`` when ``text`` is not of that form.
    """
    if not isinstance(text, str):
        raise ValidationError(f"{field} must be a string like 'BHP.ASX'", field=field)
    match = _ID.fullmatch(text.strip().upper())
    if match is None:
        raise ValidationError(
            f"{field} {text!r} is not an instrument id: write SYMBOL.VENUE with the listing's "
            "primary exchange, e.g. 'BHP.ASX', 'AAPL.NASDAQ', 'VEA.ARCA'",
            field=field,
        )
    return InstrumentId(match["symbol"], match["venue"])


def is_canonical(text: str) -> bool:
    """True when ``text`` has the form ``SYMBOL.VENUE``."""
    return isinstance(text, str) and _ID.fullmatch(text.strip().upper()) is not None


def venue_of(*, primary_exchange: str, exchange: str) -> str:
    """Return a listing's venue: its primary exchange, else a non-SMART routing exchange.

    Raises:
        ValidationError: naming ``primary_exchange`` when neither names a venue (a SMART-routed
            listing whose primary exchange IB has not told us yet).
    """
    primary, routing = primary_exchange.strip().upper(), exchange.strip().upper()
    if primary:
        return primary
    if routing and routing != "SMART":
        return routing
    raise ValidationError(
        "primary_exchange is required for a SMART-routed listing (the venue part of its "
        "instrument id): pass the primary exchange, e.g. NASDAQ, NYSE, ARCA or ASX",
        field="primary_exchange",
    )


def resolve(text: str, listings: Mapping[str, str], *, field: str = "instrument") -> str:
    """Return the canonical id ``text`` names among ``listings`` (``{id: description}``).

    ``text`` is a canonical id (matched exactly, case-insensitively) or a bare symbol that
    names exactly one of the listings.

    Raises:
        NotFound: if nothing matches; close matches are suggested.
        AmbiguousInstrument: if a bare symbol names several listings.
        ValidationError: if ``text`` is neither an id nor a symbol.
    """
    wanted = text.strip().upper() if isinstance(text, str) else ""
    if is_canonical(wanted):
        if wanted in listings:
            return wanted
        raise NotFound(f"{field} {text!r} is not in the catalog{_suggest(wanted, listings)}")
    if not _BARE.fullmatch(wanted):
        parse(text, field=field)  # raises with the id's spelling rules
    matches = sorted(i for i in listings if parse(i).symbol == wanted)
    if not matches:
        raise NotFound(f"{field} {text!r} is not in the catalog{_suggest(wanted, listings)}")
    if len(matches) > 1:
        raise AmbiguousInstrument(
            f"{wanted} is ambiguous: "
            + ", ".join(f"{i} ({listings[i]})" if listings[i] else i for i in matches)
            + "; name one of these instrument ids",
            candidates=matches,
            field=field,
        )
    return matches[0]


def _suggest(wanted: str, listings: Mapping[str, str]) -> str:
    import difflib

    symbol = wanted.split(".", 1)[0]
    same = sorted(i for i in listings if parse(i).symbol == symbol)
    if not same:  # a misspelled symbol (APPL): compare symbols, then whole ids
        by_symbol: dict[str, list[str]] = {}
        for i in listings:
            by_symbol.setdefault(parse(i).symbol, []).append(i)
        near = difflib.get_close_matches(symbol, list(by_symbol), n=3, cutoff=0.6)
        same = sorted(i for s in near for i in by_symbol[s])[:5]
    close = same or difflib.get_close_matches(wanted, list(listings), n=3, cutoff=0.6)
    if close:
        return f"; did you mean {', '.join(close)}?"
    return "; add it with 'scizor symbols add' (or 'scizor symbols populate')"
