"""The contract "world": which stocks and ETFs ibsim knows, and how requests match them.

The universe lives in ``ibsim/data/contracts.csv`` (NASDAQ-100, large NYSE stocks, major US
ETFs and the ASX 200). Matching follows IBKR's contract-details search closely enough for
``qualifyContracts``: a conId wins outright; otherwise symbol, security type, exchange,
primary exchange and currency narrow the candidates, and blank fields match anything.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

_CSV = Path(__file__).parent / "data" / "contracts.csv"

_US_HOURS = ("America/New_York", "0930", "1600", "0400", "2000")
_ASX_HOURS = ("Australia/Sydney", "1000", "1600", "1000", "1600")
_US_DIRECT = frozenset({"NASDAQ", "NYSE", "ARCA", "ISLAND", "BATS", "IEX"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ContractInfo:
    """One listed instrument ibsim can quote and trade."""

    symbol: str
    sec_type: str
    """``STK`` or ``ETF`` (IBKR reports both with secType ``STK``; ETFs as stockType ETF)."""
    exchange: str
    primary_exchange: str
    currency: str
    con_id: int
    long_name: str

    @property
    def ib_sec_type(self) -> str:
        """The secType IBKR reports for this instrument."""
        return "STK"

    @property
    def is_asx(self) -> bool:
        """True for ASX listings (AUD, Sydney hours, XASX calendar)."""
        return self.primary_exchange == "ASX"

    @property
    def calendar_name(self) -> str:
        """The exchange_calendars name of the listing's calendar."""
        if self.is_asx:
            return "XASX"
        return "XNAS" if self.primary_exchange == "NASDAQ" else "XNYS"

    @property
    def time_zone(self) -> str:
        """IANA zone of the listing exchange."""
        return _ASX_HOURS[0] if self.is_asx else _US_HOURS[0]

    @property
    def valid_exchanges(self) -> str:
        """Comma-separated exchanges the contract can be routed to."""
        if self.is_asx:
            return "SMART,ASX,CHIXAU"
        return f"SMART,{self.primary_exchange},AMEX,BATS,IEX,ISLAND,ARCA,NYSE"

    @property
    def min_tick(self) -> float:
        """Smallest price increment (ASX: 0.005 AUD above 2 AUD, simplified)."""
        return 0.005 if self.is_asx else 0.01


class ContractWorld:
    """The set of known contracts and IBKR-like lookup over it."""

    def __init__(self, contracts: list[ContractInfo]) -> None:
        self._all = list(contracts)
        self._by_con_id = {c.con_id: c for c in contracts}
        self._by_symbol: dict[str, list[ContractInfo]] = {}
        for c in contracts:
            self._by_symbol.setdefault(c.symbol, []).append(c)

    def __len__(self) -> int:
        return len(self._all)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._all)

    def by_con_id(self, con_id: int) -> ContractInfo | None:
        """Return the contract with ``con_id``, or None."""
        return self._by_con_id.get(con_id)

    def get(self, symbol: str, *, currency: str = "") -> ContractInfo | None:
        """Return the single contract for ``symbol`` (and ``currency``), or None."""
        found = self.match(symbol=symbol, currency=currency)
        return found[0] if len(found) == 1 else None

    def match(
        self,
        *,
        con_id: int = 0,
        symbol: str = "",
        sec_type: str = "",
        exchange: str = "",
        primary_exchange: str = "",
        currency: str = "",
    ) -> list[ContractInfo]:
        """Return every contract matching a contract-details request.

        Blank fields match anything; ``exchange`` may be SMART, the primary exchange or any
        US venue for US listings.
        """
        if con_id:
            hit = self._by_con_id.get(con_id)
            return [hit] if hit else []
        found = []
        for c in self._by_symbol.get(symbol.upper(), []):
            if sec_type and sec_type.upper() not in ("STK", c.sec_type):
                continue
            if currency and currency.upper() != c.currency:
                continue
            if primary_exchange and primary_exchange.upper() != c.primary_exchange:
                continue
            if exchange and not _routable(c, exchange.upper()):
                continue
            found.append(c)
        return found


def _routable(c: ContractInfo, exchange: str) -> bool:
    if exchange == "SMART" or exchange == c.primary_exchange:
        return True
    if c.is_asx:
        return exchange in ("ASX", "CHIXAU")
    return exchange in _US_DIRECT


def trading_hours(c: ContractInfo, *, dates: list[str], liquid: bool) -> str:
    """Return IBKR's ``tradingHours``/``liquidHours`` string for the given YYYYMMDD dates."""
    _, rth_open, rth_close, ext_open, ext_close = _ASX_HOURS if c.is_asx else _US_HOURS
    start, end = (rth_open, rth_close) if liquid else (ext_open, ext_close)
    return ";".join(f"{d}:{start}-{d}:{end}" for d in dates)


@cache
def default_world() -> ContractWorld:
    """Return the bundled contract world (loaded once)."""
    return load_world(_CSV)


def load_world(path: Path) -> ContractWorld:
    """Load a contract world from a CSV with ibsim's columns."""
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return ContractWorld(
        [
            ContractInfo(
                symbol=r["symbol"],
                sec_type=r["sec_type"],
                exchange=r["exchange"],
                primary_exchange=r["primary_exchange"],
                currency=r["currency"],
                con_id=int(r["con_id"]),
                long_name=r["long_name"],
            )
            for r in rows
        ]
    )
