"""The parity check's trades: each side's round trips and how they are compared.

:func:`actors.parity.check_parity` runs a backtest and a paper replay of the same strategy on
the same bars (ibsim's clock driven bar by bar into the real strategy runner and order
manager); this module holds what both sides produce and how they are compared, as plain
functions the unit tests drive.

The backtest side (:func:`backtest_trades`) is the engine's own account loop
(:func:`strategies.simulation.simulate`) with the conventions the live path reproduces:

* ``fill="next_open"``: a bar's changed target is acted on at the next bar's open; the
  replay's ibsim quotes each session at its open (``IBSim(bar_quotes=True)``), so the
  runner's market order, sent after the bar closed, fills there;
* sizing as the runner sizes (:func:`strategies.live.target_shares`): whole shares of the
  capital per instrument at the signal bar's close, ``floor(|target| x capital / close)``,
  not the engine's default fraction of the running equity (which compounds the P&L into
  later sizes: a real difference between ``run_backtest(size=1.0)`` and a deployment);
* the account's cash is the simulated account's, so the buying-power cap never binds where
  the broker would have filled;
* commissions: ``"ibkr"`` (IBKR fixed pricing, what ibsim charges) unless told otherwise.

A position still open after the last bar is a trade without exit on both sides: its entry,
side and quantity are compared, not its commission or P&L.

:func:`compare_trades` pairs the two lists in entry order and reports every difference as a
:class:`Divergence` of one kind: ``signal`` (a trade only one side has, or another side or
exit bar), ``quantity``, ``fill price``, ``commission`` or ``P&L``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from core.types import Fill, Side
from strategies.bars import bar_values, ohlc_columns
from strategies.base import Strategy
from strategies.costs import CommissionSpec
from strategies.results import trades_frame
from strategies.simulation import prepare, run_costs, seeded_cache, simulate

__all__ = [
    "KINDS",
    "Divergence",
    "ParityResult",
    "Trade",
    "backtest_trades",
    "compare_trades",
    "paper_trades",
]

KINDS = ("signal", "quantity", "fill price", "commission", "P&L")
"""The kinds of divergence, in the order they are checked."""
PRICE_TOLERANCE = 1e-9
"""Relative difference under which two fill prices are the same (float noise only)."""
MONEY_TOLERANCE = 0.01
"""Absolute difference (instrument currency) up to which a trade's commission or P&L is
the same: the broker rounds each fill's commission (ibsim, like IB: to the cent on the ASX,
to 1/100 cent in the US), the engine does not, so a round trip may differ by a cent."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Trade:
    """One round trip (or a position still open at the end: ``exit_time`` is None).

    Attributes:
        instrument: the instrument id.
        side: ``long`` or ``short``.
        quantity: shares.
        entry_time, exit_time: the bars whose open filled the entry and the exit.
        entry_price, exit_price: the (average) fill prices.
        commission: entry and exit commissions of these shares (None while open).
        pnl: ``side x (exit - entry) x quantity - commission`` (None while open).
    """

    instrument: str
    side: str
    quantity: float
    entry_time: pd.Timestamp
    entry_price: float
    exit_time: pd.Timestamp | None = None
    exit_price: float | None = None
    commission: float | None = None
    pnl: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return the trade as plain values (times as ISO strings)."""
        return {
            "instrument": self.instrument,
            "side": self.side,
            "quantity": self.quantity,
            "entry_time": self.entry_time.isoformat(),
            "entry_price": self.entry_price,
            "exit_time": None if self.exit_time is None else self.exit_time.isoformat(),
            "exit_price": self.exit_price,
            "commission": self.commission,
            "pnl": self.pnl,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Divergence:
    """One difference between the backtest and the paper deployment.

    Attributes:
        kind: one of :data:`KINDS`.
        instrument: the instrument id.
        at: the entry bar of the trade concerned.
        field: the trade field that differs (``trade`` for a trade one side lacks).
        backtest, paper: the two values (None where a side has no such trade).
        message: one line saying what differs.
    """

    kind: str
    instrument: str
    at: pd.Timestamp
    field: str
    backtest: Any
    paper: Any
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ParityResult:
    """What :func:`check_parity` found.

    Attributes:
        strategy, params, instruments, bar_size, start, end: what was compared.
        backtest, paper: each side's trades.
        matched: trades equal on both sides in every field compared.
        divergences: every difference found.
        problems: what kept the replay from completing (an order not filled, refused).
        orders: order refs the paper deployment sent.
    """

    strategy: str
    params: dict[str, Any]
    instruments: list[str]
    bar_size: str
    start: pd.Timestamp
    end: pd.Timestamp
    backtest: tuple[Trade, ...]
    paper: tuple[Trade, ...]
    matched: int
    divergences: tuple[Divergence, ...]
    problems: tuple[str, ...] = ()
    orders: tuple[str, ...] = field(default=())

    @property
    def identical(self) -> bool:
        """True when both sides traded the same and the replay completed."""
        return not self.divergences and not self.problems

    def summary(self) -> str:
        """One line: ``identical: N trades``, or the divergences counted by kind."""
        if self.identical:
            return f"identical: {self.matched} trades"
        counts = {k: sum(d.kind == k for d in self.divergences) for k in KINDS}
        parts = [f"{n} {k}" for k, n in counts.items() if n]
        parts += [f"{len(self.problems)} replay problems"] if self.problems else []
        return (
            f"divergent: {', '.join(parts)} (backtest {len(self.backtest)} trades, "
            f"paper {len(self.paper)}, {self.matched} matched)"
        )


# --- the backtest side -----------------------------------------------------------------


def backtest_trades(
    bars: pd.DataFrame,
    strategy: str | Strategy,
    params: Mapping[str, Any] | None,
    *,
    instrument: str,
    capital: float,
    cash: float,
    commission: CommissionSpec = "ibkr",
    currency: str = "USD",
) -> list[Trade]:
    """Return the engine's trades of one instrument under the live path's conventions.

    Args:
        bars: the instrument's bars (UTC index; ``open high low close volume``).
        strategy: a library name or a Strategy (a rule spec's included).
        params: the strategy's parameters.
        instrument: the id the trades carry.
        capital: the capital of this instrument (the deployment's, split evenly).
        cash: the account's starting cash (the broker's buying power).
        commission: as :func:`strategies.engine.run_backtest` takes it.
        currency: the instrument's currency.

    Raises:
        DataError: bad bars.
        ParameterError: bad parameters or costs (``field`` names it).
    """
    strat, p = prepare(strategy, params, None)
    frame, values = bar_values(bars)
    target = strat.target(frame, p, indicators=seeded_cache(frame, values), resolved=True)
    costs = run_costs(
        strat,
        commission=commission,
        currencies=[currency.upper()],
        slippage_bps=0.0,
        stop_loss_pct=None,
        take_profit_pct=None,
        margin=1.0,
    )
    shares = capital / values[:, 3]  # the runner's sizing: capital at the signal bar's close
    runs = [
        simulate(
            frame,
            target[:, None],
            shares[:, None],
            1,
            cash=cash,
            costs=costs,
            fill="next_open",
            prices=ohlc_columns(values),
            finalize=finalize,
        )[2]
        for finalize in (False, True)
    ]
    closed = trades_frame(runs[0], frame.index, [instrument])
    final = trades_frame(runs[1], frame.index, [instrument])
    trades = [_engine_trade(row, instrument, open_=False) for row in closed.itertuples()]
    # Rows only the finalized run has are the positions still open after the last bar.
    opened = final.iloc[len(closed) :]
    return trades + [_engine_trade(row, instrument, open_=True) for row in opened.itertuples()]


def _engine_trade(row: Any, instrument: str, *, open_: bool) -> Trade:
    common: dict[str, Any] = {
        "instrument": instrument,
        "side": str(row.side),
        "quantity": float(row.size),
        "entry_time": pd.Timestamp(row.entry_time),
        "entry_price": float(row.entry_price),
    }
    if open_:
        return Trade(**common)
    return Trade(
        **common,
        exit_time=pd.Timestamp(row.exit_time),
        exit_price=float(row.exit_price),
        commission=float(row.commission),
        pnl=float(row.pnl),
    )


# --- the paper side ------------------------------------------------------------------


@dataclass(slots=True)
class _Lot:
    sign: int
    quantity: float
    price: float
    time: pd.Timestamp
    commission: float


def paper_trades(
    fills: Iterable[Fill],
    index: pd.DatetimeIndex,
    *,
    bar_of: Callable[[datetime], pd.Timestamp] | None = None,
) -> list[Trade]:
    """Turn a deployment's executions into round trips, as the engine records them.

    Fills of one order (one ``order_ref``) make one fill at their average price with their
    total commission, dated by the bar whose session it happened in (``bar_of``; by default
    the last bar of ``index`` starting at or before it). An order against the open position
    closes it (or part of it: the entry commission is split by quantity); what goes past
    zero opens the other side, with its share of the order's commission.

    Args:
        fills: the executions, any order.
        index: the bars' times (each fill is placed on one).
        bar_of: the bar of a fill's time, where a session does not start on its bar's date
            (an ASX session opens the evening before in UTC).
    """
    place = bar_of or (lambda when: _bar_of(index, when))
    orders: dict[tuple[str, str], list[Fill]] = {}
    for f in sorted(fills, key=lambda f: (f.time, f.exec_id)):
        orders.setdefault((f.instrument, f.order_ref), []).append(f)
    lots: dict[str, _Lot] = {}
    trades: list[Trade] = []
    for (instrument, _), group in orders.items():
        qty = float(sum((f.quantity for f in group), Decimal(0)))
        value = sum((f.quantity * f.price for f in group), Decimal(0))
        fee = float(sum((f.commission for f in group), Decimal(0)))
        price = float(value / sum((f.quantity for f in group), Decimal(0)))
        sign = 1 if group[0].side == Side.BUY else -1
        at = place(group[-1].time)
        lot = lots.get(instrument)
        if lot is not None and lot.sign != sign:
            closing = min(qty, lot.quantity)
            part = lot.commission * closing / lot.quantity
            exit_fee = fee * closing / qty
            trades.append(
                Trade(
                    instrument=instrument,
                    side="long" if lot.sign > 0 else "short",
                    quantity=closing,
                    entry_time=lot.time,
                    entry_price=lot.price,
                    exit_time=at,
                    exit_price=price,
                    commission=part + exit_fee,
                    pnl=lot.sign * (price - lot.price) * closing - part - exit_fee,
                )
            )
            lot.quantity -= closing
            lot.commission -= part
            qty, fee = qty - closing, fee - exit_fee
            if lot.quantity <= 0:
                del lots[instrument]
                lot = None
        if qty <= 0:
            continue
        if lot is None:
            lots[instrument] = _Lot(sign, qty, price, at, fee)
        else:  # adding to the position: the average entry, as the engine keeps it
            held = lot.quantity
            lot.price = (lot.price * held + price * qty) / (held + qty)
            lot.quantity, lot.commission = held + qty, lot.commission + fee
    for instrument, lot in lots.items():
        side = "long" if lot.sign > 0 else "short"
        trades.append(
            Trade(
                instrument=instrument,
                side=side,
                quantity=lot.quantity,
                entry_time=lot.time,
                entry_price=lot.price,
            )
        )
    return trades


def _bar_of(index: pd.DatetimeIndex, when: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(when).tz_convert("UTC")
    at = int(index.searchsorted(stamp, side="right")) - 1
    return pd.Timestamp(index[max(at, 0)])


# --- the comparison ------------------------------------------------------------------


def compare_trades(
    backtest: Sequence[Trade],
    paper: Sequence[Trade],
    *,
    price_tolerance: float = PRICE_TOLERANCE,
    money_tolerance: float = MONEY_TOLERANCE,
) -> tuple[int, list[Divergence]]:
    """Pair the two sides' trades by instrument and entry bar; return (matched, divergences).

    A trade only one side has is a ``signal`` divergence, as is a pair with another side or
    exit bar; a pair that agrees there is checked for quantity, fill prices, commission and
    P&L (commission and P&L only when both are closed).
    """
    matched, found = 0, []
    instruments = sorted({t.instrument for t in [*backtest, *paper]})
    for instrument in instruments:
        ours = sorted((t for t in backtest if t.instrument == instrument), key=_order)
        theirs = sorted((t for t in paper if t.instrument == instrument), key=_order)
        i = j = 0
        while i < len(ours) or j < len(theirs):
            a = ours[i] if i < len(ours) else None
            b = theirs[j] if j < len(theirs) else None
            if b is None or (a is not None and a.entry_time < b.entry_time):
                assert a is not None
                found.append(_missing(a, on="paper"))
                i += 1
            elif a is None or b.entry_time < a.entry_time:
                found.append(_missing(b, on="backtest"))
                j += 1
            else:
                diffs = _pair(a, b, price_tolerance, money_tolerance)
                matched += not diffs
                found += diffs
                i, j = i + 1, j + 1
    return matched, found


def _order(t: Trade) -> tuple[pd.Timestamp, pd.Timestamp]:
    return t.entry_time, t.exit_time if t.exit_time is not None else pd.Timestamp.max.tz_localize(
        "UTC"
    )


def _missing(t: Trade, *, on: str) -> Divergence:
    has = "backtest" if on == "paper" else "paper"
    return Divergence(
        kind="signal",
        instrument=t.instrument,
        at=t.entry_time,
        field="trade",
        backtest=t.as_dict() if has == "backtest" else None,
        paper=t.as_dict() if has == "paper" else None,
        message=f"{t.instrument} {t.entry_time:%Y-%m-%d}: the {has} has a {t.side} trade of "
        f"{t.quantity:g} the {on} does not",
    )


def _pair(a: Trade, b: Trade, price_tol: float, money_tol: float) -> list[Divergence]:
    out: list[Divergence] = []

    def differ(kind: str, name: str, x: Any, y: Any) -> None:
        out.append(
            Divergence(
                kind=kind,
                instrument=a.instrument,
                at=a.entry_time,
                field=name,
                backtest=x,
                paper=y,
                message=f"{a.instrument} {a.entry_time:%Y-%m-%d}: {name} backtest {_show(x)}, "
                f"paper {_show(y)}",
            )
        )

    for name in ("side", "exit_time"):
        x, y = getattr(a, name), getattr(b, name)
        if x != y:
            differ("signal", name, x, y)
    if out:
        return out
    if a.quantity != b.quantity:
        differ("quantity", "quantity", a.quantity, b.quantity)
    for name in ("entry_price", "exit_price"):
        x, y = getattr(a, name), getattr(b, name)
        if x is not None and y is not None and not math.isclose(x, y, rel_tol=price_tol):
            differ("fill price", name, x, y)
    for kind, name in (("commission", "commission"), ("P&L", "pnl")):
        x, y = getattr(a, name), getattr(b, name)
        if x is not None and y is not None and abs(float(x) - float(y)) > money_tol + 1e-9:
            differ(kind, name, x, y)
    return out


def _show(value: Any) -> str:
    if isinstance(value, pd.Timestamp):
        return f"{value:%Y-%m-%d %H:%M}"
    if isinstance(value, float | np.floating):
        number = float(value)
        return f"{number:.6g}" if abs(number) < 1e6 else f"{number:.2f}"
    return str(value)
