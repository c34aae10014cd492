"""Trading costs: commission schedules, slippage, stops and margin packed for the kernel."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.errors import ParameterError
from strategies import _kernels as k
from strategies.checks import finite_number


@dataclass(frozen=True, slots=True)
class Commission:
    """A commission schedule: ``rate`` x value + ``per_share`` x shares, floored and capped.

    Attributes:
        rate: fraction of traded value (0.002 = 0.2 %), charged on entry and on exit.
        per_share: currency per share.
        minimum: smallest charge per fill.
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

    def __post_init__(self) -> None:
        for name in ("rate", "per_share", "minimum"):
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
        costs = pack(self, slippage_bps=0.0, stop_loss_pct=None, take_profit_pct=None, margin=1.0)
        return float(k.commission(abs(shares), price, costs))


IBKR_FIXED = Commission(per_share=0.005, minimum=1.0, max_pct=0.01)

CommissionSpec = float | str | Commission


def schedule(commission: CommissionSpec) -> Commission:
    """Return the :class:`Commission` that ``commission`` names, validated.

    Raises:
        ParameterError: ``commission`` is not a fraction in [0, 0.1), ``"ibkr"`` or a
            Commission.
    """
    if isinstance(commission, str):
        if commission.lower() != "ibkr":
            raise ParameterError(
                f"commission must be a fraction, 'ibkr' or a Commission; got {commission!r}",
                field="commission",
            )
        return IBKR_FIXED
    if isinstance(commission, Commission):
        return commission
    if isinstance(commission, bool) or not isinstance(commission, int | float | np.number):
        raise ParameterError(
            f"commission must be a fraction, 'ibkr' or a Commission; got {commission!r}",
            field="commission",
        )
    if not 0 <= finite_number(commission, "commission") < 0.1:
        raise ParameterError(
            f"commission is a fraction of value in [0, 0.1), got {commission}",
            field="commission",
        )
    return Commission(rate=float(commission))


def cost_vector(
    commission: CommissionSpec,
    *,
    slippage_bps: float,
    stop_loss_pct: float | None,
    take_profit_pct: float | None,
    margin: float,
) -> np.ndarray:
    """Validate the cost arguments and pack them for the kernel (``k.C_*`` slots).

    Raises:
        ParameterError: naming the argument that is out of range.
    """
    fees = schedule(commission)
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
    return pack(
        fees,
        slippage_bps=slippage_bps,
        stop_loss_pct=stop_loss_pct,
        take_profit_pct=take_profit_pct,
        margin=margin,
    )


def pack(
    c: Commission,
    *,
    slippage_bps: float,
    stop_loss_pct: float | None,
    take_profit_pct: float | None,
    margin: float,
) -> np.ndarray:
    """Return the kernel's cost vector for already validated values."""
    out = [0.0] * 8
    out[k.C_RATE] = c.rate
    out[k.C_PER_SHARE] = c.per_share
    out[k.C_MINIMUM] = c.minimum
    out[k.C_MAX_PCT] = c.max_pct
    out[k.C_SLIP] = slippage_bps / 10_000.0
    out[k.C_SL] = math.nan if stop_loss_pct is None else stop_loss_pct / 100.0
    out[k.C_TP] = math.nan if take_profit_pct is None else take_profit_pct / 100.0
    out[k.C_MARGIN] = margin
    return np.array(out)


def check_account(cash: float, fill: str) -> None:
    """Raise ParameterError unless ``cash`` is finite and > 0 and ``fill`` is known."""
    if fill not in ("next_open", "close"):
        raise ParameterError(f"fill must be 'next_open' or 'close', got {fill!r}", field="fill")
    if not finite_number(cash, "cash") > 0:
        raise ParameterError(f"cash must be positive, got {cash}", field="cash")
