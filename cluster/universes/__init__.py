"""Bundled symbol universes: CSV files shipped with SCIZOR.

Each ``<name>.csv`` in this folder has the columns
``symbol,name,sec_type,exchange,primary_exchange,currency``:

- ``asx200``: the S&P/ASX 200 constituents (exchange ASX, currency AUD).
- ``nasdaq``: the NASDAQ-100 plus the largest other NASDAQ-listed names (SMART, USD).
- ``etfs``: about 60 major US-listed ETFs (SMART, USD).

The lists are written by hand from public index membership; a ticker that IBKR no longer
knows is reported invalid by ``scizor symbols validate`` and removed from the catalog.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from core.errors import DataError, ValidationError
from core.types import Instrument, SecType

COLUMNS = ("symbol", "name", "sec_type", "exchange", "primary_exchange", "currency")
"""The header every universe file carries, in this order."""

UNIVERSE_NAMES = ("asx200", "nasdaq", "etfs")
"""The bundled universes, in the order ``scizor symbols populate`` loads them."""

_ALIASES = {"asx": "asx200", "nasdaq100": "nasdaq", "etf": "etfs"}
_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9.]{0,11}$")
_EXCHANGES = {"SMART", "ASX"}
_CURRENCIES = {"USD", "AUD"}


@dataclass(frozen=True, slots=True, kw_only=True)
class UniverseMember:
    """One row of a bundled universe."""

    symbol: str
    name: str
    sec_type: SecType
    exchange: str
    primary_exchange: str
    currency: str
    universe: str

    def instrument(self) -> Instrument:
        """Return the member as an unqualified :class:`Instrument` (no con_id yet)."""
        return Instrument(
            symbol=self.symbol,
            sec_type=self.sec_type,
            exchange=self.exchange,
            primary_exchange=self.primary_exchange,
            currency=self.currency,
            name=self.name,
        )


def canonical_name(name: str) -> str:
    """Return the bundled universe ``name`` refers to (case-insensitive, aliases allowed).

    Raises:
        ValidationError: if no bundled universe has that name.
    """
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in UNIVERSE_NAMES:
        valid = ", ".join(UNIVERSE_NAMES)
        raise ValidationError(
            f"universe {name!r} is not bundled; use one of: {valid}", field="universe"
        )
    return key


@cache
def load(name: str) -> tuple[UniverseMember, ...]:
    """Load one bundled universe.

    Raises:
        ValidationError: if the name is unknown.
        DataError: if the file is malformed (names the file, line and column).
    """
    key = canonical_name(name)
    text = resources.files(__name__).joinpath(f"{key}.csv").read_text(encoding="utf-8")
    return parse(text, universe=key)


def parse(text: str, *, universe: str) -> tuple[UniverseMember, ...]:
    """Parse universe CSV ``text``; every row is checked, duplicates rejected.

    Raises:
        DataError: naming the file, line and field of the first bad row.
    """
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise DataError(
            f"{universe}.csv: header must be {','.join(COLUMNS)}; got {reader.fieldnames}"
        )
    members: list[UniverseMember] = []
    seen: set[str] = set()
    for line, row in enumerate(reader, start=2):
        member = _member(row, universe=universe, line=line)
        if member.symbol in seen:
            raise DataError(f"{universe}.csv line {line}: symbol {member.symbol} is repeated")
        seen.add(member.symbol)
        members.append(member)
    return tuple(members)


def _member(row: dict[str, str], *, universe: str, line: int) -> UniverseMember:
    where = f"{universe}.csv line {line}"
    values = {k: (row.get(k) or "").strip() for k in COLUMNS}
    checks = (
        ("symbol", _SYMBOL.match(values["symbol"]) is not None, "an upper-case ticker"),
        ("sec_type", values["sec_type"] in ("STK", "ETF"), "STK or ETF"),
        ("exchange", values["exchange"] in _EXCHANGES, " or ".join(sorted(_EXCHANGES))),
        ("primary_exchange", bool(values["primary_exchange"]), "a primary exchange"),
        ("currency", values["currency"] in _CURRENCIES, " or ".join(sorted(_CURRENCIES))),
    )
    for field, ok, expected in checks:
        if not ok:
            raise DataError(f"{where}: {field} {values[field]!r} is invalid; use {expected}")
    return UniverseMember(
        symbol=values["symbol"],
        name=values["name"],
        sec_type=SecType(values["sec_type"]),
        exchange=values["exchange"],
        primary_exchange=values["primary_exchange"],
        currency=values["currency"],
        universe=universe,
    )
