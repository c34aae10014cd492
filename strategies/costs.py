"""Trading costs: commission schedules by venue and currency, slippage, stops and margin.

``commission="ibkr"`` picks Interactive Brokers' fixed pricing for the instrument's
currency (``USD`` -> :data:`IBKR_US`, ``AUD`` -> :data:`IBKR_ASX`); ``"ibkr_us"`` and
``"ibkr_asx"`` name one schedule outright. A schedule's fixed amounts (per share, minimums)
are in the instrument's own currency.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.errors import ParameterError
from strategies import _kernels as k
from strategies.checks import finite_number

_CURRENCY = re.compile(r"[A-Z]{3}")


@dataclass(frozen=True, slots=True)
class Commission:
    """A commission schedule per fill (order).

    The charge is ``max(per_share x shares, minimum) + rate x value``, raised to
    ``minimum_total`` and capped at ``max_pct`` x value. Amounts are in the instrument's
    currency.

    Attributes:
        rate: fraction of traded value (0.002 = 0.2 %), charged on entry and on exit.
        per_share: currency per share.
        minimum: smallest per-share part of a charge (IBKR US: 1.00 per order), before
            ``rate`` is added.
        minimum_total: smallest whole charge (IBKR ASX: AUD 6.00 per order).
        max_pct: largest charge per fill as a fraction of traded value (> 0; math.inf
            for no cap).

    Raises:
        ParameterError: a field is not a number, negative or non-finite (``max_pct`` may
            be inf), or ``max_pct`` is 0.
    """

    rate: float = 0.0
    per_share: float = 0.0
    minimum: float = 0.0
    max_pct: float = math.inf
    minimum_total: float = 0.0

    def __post_init__(self) -> None:
        for name in ("rate", "per_share", "minimum", "minimum_total"):
            value = finite_number(getattr(self, name), f"Commission.{name}", field="commission")
            if value < 0:
                raise ParameterError(
                    f"Commission.{name} must be >= 0, got {value}; pass 0 for none",
                    field="commission",
                )
        cap = self.max_pct
        if isinstance(cap, bool) or not isinstance(cap, int | float) or not cap > 0:
            raise ParameterError(
                f"Commission.max_pct must be a fraction of value > 0 (math.inf for no cap), "
                f"got {cap!r}",
                field="commission",
            )

    def of(self, shares: float, price: float) -> float:
        """Return the commission for one fill of ``shares`` at ``price``."""
        costs = cost_vector(
            [self], slippage_bps=0.0, stop_loss_pct=None, take_profit_pct=None, margin=1.0
        )
        return float(k.commission(abs(shares), price, costs, 0))


# IBKR Pro fixed pricing, US stocks and ETFs: USD 0.005 per share, minimum USD 1.00 and
# maximum 1 % of trade value per order ("Fixed" column of interactivebrokers.co.uk
# /en/pricing/commissions-stocks.php?re=amer; its examples: 100 shares at USD 25 = 1.00,
# 1,000 at USD 25 = 5.00, 1,000 at USD 0.25 = 2.50). Exchange and regulatory fees extra.
IBKR_US = Commission(per_share=0.005, minimum=1.0, max_pct=0.01)
# IBKR Pro fixed pricing, ASX stocks and ETFs: 0.08 % of trade value, minimum AUD 6.00 per
# order, no maximum ("Fixed" column for Australia on interactivebrokers.co.uk
# /en/index.php?f=1590&p=stocks1; the same table as republished on worldtrader.hsbc.ae
# /en/pricing/commissions-stocks-asia-pacific.php adds "400 Shares @ AUD 50 = AUD 16.00").
# The rate excludes the 10 % GST charged to Australian residents (RealTest's IB formula,
# mhptrading.com/docs/topics/idh-topic1590.htm: 1.1 x max(6.00, 0.0008 x value)); pass
# Commission(rate=0.00088, minimum_total=6.6) to include it.
IBKR_ASX = Commission(rate=0.0008, minimum_total=6.0)
IBKR_FIXED = IBKR_US  # the name this schedule had before it had an ASX sibling
IBKR_BY_CURRENCY = {"USD": IBKR_US, "AUD": IBKR_ASX}
_NAMED = {"ibkr_us": ("USD", IBKR_US), "ibkr_asx": ("AUD", IBKR_ASX)}

CommissionSpec = float | str | Commission


def check_currency(currency: str, *, field: str = "currency") -> str:
    """Return ``currency`` as an upper-case ISO 4217 code, or raise ParameterError."""
    code = currency.upper() if isinstance(currency, str) else ""
    if not _CURRENCY.fullmatch(code):
        raise ParameterError(
            f"{field} must be a three-letter currency code such as 'USD' or 'AUD', "
            f"got {currency!r}",
            field=field,
        )
    return code


def schedule(commission: CommissionSpec, *, currency: str = "USD") -> Commission:
    """Return the :class:`Commission` that ``commission`` names for an instrument in
    ``currency`` (an upper-case code, see :func:`check_currency`).

    Raises:
        ParameterError: ``commission`` is not a fraction in [0, 0.1), a known name or a
            Commission; ``"ibkr"`` with a currency it has no schedule for
            (``field="currency"``); or a named schedule of another currency.
    """
    if isinstance(commission, Commission):
        return commission
    if isinstance(commission, str):
        return _named(commission.lower(), currency)
    if isinstance(commission, bool) or not isinstance(commission, int | float | np.number):
        raise ParameterError(
            f"commission must be a fraction, 'ibkr', 'ibkr_us', 'ibkr_asx' or a Commission; "
            f"got {commission!r}",
            field="commission",
        )
    if not 0 <= finite_number(commission, "commission") < 0.1:
        raise ParameterError(
            f"commission is a fraction of value in [0, 0.1), got {commission}",
            field="commission",
        )
    return Commission(rate=float(commission))


def _named(name: str, currency: str) -> Commission:
    if name == "ibkr":
        if currency not in IBKR_BY_CURRENCY:
            raise ParameterError(
                f"commission='ibkr' has fixed-pricing schedules for currencies "
                f"{', '.join(sorted(IBKR_BY_CURRENCY))}; got currency={currency!r}. Pass a "
                f"supported currency or a Commission(...) for that market",
                field="currency",
            )
        return IBKR_BY_CURRENCY[currency]
    if name not in _NAMED:
        raise ParameterError(
            f"commission must be a fraction, 'ibkr', 'ibkr_us', 'ibkr_asx' or a Commission; "
            f"got {name!r}",
            field="commission",
        )
    own, fees = _NAMED[name]
    if currency != own:
        raise ParameterError(
            f"commission={name!r} is priced in {own} but currency={currency!r}; use "
            f"commission='ibkr' to pick the schedule by currency",
            field="currency",
        )
    return fees


def cost_vector(
    schedules: Sequence[Commission],
    *,
    slippage_bps: float,
    stop_loss_pct: float | None,
    take_profit_pct: float | None,
    margin: float,
) -> np.ndarray:
    """Validate the account's cost arguments and pack them with one commission schedule per
    instrument into the kernel's cost vector (``k.C_*`` slots, then ``k.F_*`` slots per
    instrument at ``k.fee_slot(j)``; the *_NOW slots hold the amounts unconverted, which
    the kernel replaces bar by bar when it is given FX rates).

    Raises:
        ParameterError: naming the argument that is out of range.
    """
    if not 0 <= finite_number(slippage_bps, "slippage_bps") < 1000:
        raise ParameterError(
            f"slippage_bps must be in [0, 1000), got {slippage_bps}", field="slippage_bps"
        )
    if not 0 < finite_number(margin, "margin") <= 1:
        raise ParameterError(f"margin must be in (0, 1], got {margin}", field="margin")
    for name, value, top in (
        ("stop_loss_pct", stop_loss_pct, 100),
        ("take_profit_pct", take_profit_pct, 10_000),
    ):
        if value is not None and not 0 < finite_number(value, name) < top:
            raise ParameterError(f"{name} must be a positive percent, got {value}", field=name)
    out = [0.0] * (k.N_COSTS + k.N_FEES * len(schedules))
    out[k.C_SLIP] = slippage_bps / 10_000.0
    out[k.C_SL] = math.nan if stop_loss_pct is None else stop_loss_pct / 100.0
    out[k.C_TP] = math.nan if take_profit_pct is None else take_profit_pct / 100.0
    out[k.C_MARGIN] = margin
    for j, c in enumerate(schedules):
        at = k.N_COSTS + k.N_FEES * j
        out[at + k.F_RATE] = c.rate
        out[at + k.F_PER_SHARE] = c.per_share
        out[at + k.F_MINIMUM] = c.minimum
        out[at + k.F_MINIMUM_TOTAL] = c.minimum_total
        out[at + k.F_MAX_PCT] = c.max_pct
        out[at + k.F_PER_SHARE_NOW] = c.per_share
        out[at + k.F_MINIMUM_NOW] = c.minimum
        out[at + k.F_MINIMUM_TOTAL_NOW] = c.minimum_total
    return np.array(out)


def check_account(cash: float, fill: str) -> None:
    """Raise ParameterError unless ``cash`` is finite and > 0 and ``fill`` is known."""
    if fill not in ("next_open", "close"):
        raise ParameterError(f"fill must be 'next_open' or 'close', got {fill!r}", field="fill")
    if not finite_number(cash, "cash") > 0:
        raise ParameterError(f"cash must be positive, got {cash}", field="cash")
