# mypy: allow-untyped-defs, allow-untyped-calls
"""Numba kernels behind the backtest engine: one simulation loop shared by every entry point.

``simulate`` is the only place where fills, costs, stops and sizing happen. ``run_backtest``
calls it with one asset, ``run_portfolio`` with several, and ``run_batch`` calls it once per
parameter set from ``simulate_batch``; sharing the loop is what makes their results equal.

State lives in flat arrays (no per-bar Python objects). Trades are written as rows of a
float matrix with the columns below and turned into a DataFrame by the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from numba import njit, prange

# Columns of the trade matrix.
T_SYMBOL, T_SIDE, T_SIZE, T_ENTRY_IDX, T_ENTRY_PX = 0, 1, 2, 3, 4
T_EXIT_IDX, T_EXIT_PX, T_PNL, T_COMMISSION = 5, 6, 7, 8
TRADE_COLUMNS = 9

# The ``costs`` vector: N_COSTS slots shared by every asset of the account, then N_FEES
# slots per asset (asset j's start at fee_slot(j)): its commission schedule, with the fixed
# amounts (per share, minimums) twice: in the asset's own currency (F_PER_SHARE, F_MINIMUM,
# F_MINIMUM_TOTAL) and converted into the account's at the bar being filled (the *_NOW
# slots, which equal them for an asset in the account's currency). Fills read only the
# converted ones, so a fill costs no FX arithmetic. One flat vector, so the helpers take
# one array argument whatever the number of assets.
C_SLIP, C_SL, C_TP, C_MARGIN = range(4)
N_COSTS = 4
F_RATE, F_MAX_PCT, F_PER_SHARE, F_MINIMUM, F_MINIMUM_TOTAL = range(5)
F_PER_SHARE_NOW, F_MINIMUM_NOW, F_MINIMUM_TOTAL_NOW = range(5, 8)
N_FEES = 8

# The fill helpers only read and write arrays their caller owns and never allocate, so they
# are compiled without the runtime's reference counting (numba's ``_nrt`` option; numba
# refuses to compile such a helper if it ever allocates). With it, every call increfs and
# decrefs each array argument: that was ~200 ns per rebalance and 80 % of a daily backtest's
# fills (51 -> 11 us on 2,520 bars, measured with benchmarks/engine.py's data).
_F = TypeVar("_F", bound=Callable[..., Any])
_HELPER = njit(cache=True, _nrt=False)  # type: ignore[call-overload]


def helper(fn: _F) -> _F:
    """Compile ``fn`` as a numba helper without reference counting (see above)."""
    compiled: _F = _HELPER(fn)
    return compiled


@njit(cache=True, inline="always")
def fee_slot(j):
    """Return where asset ``j``'s N_FEES slots start in the ``costs`` vector."""
    return N_COSTS + j * N_FEES


@helper
def commission(shares: float, price: float, costs: np.ndarray, j: int) -> float:
    """Return the commission for ``shares`` (> 0) of asset ``j`` at ``price``.

    max(per share x shares, minimum) + rate x value, floored at the order minimum and
    capped at ``max_pct`` x value; ``price``, the fixed amounts read (the *_NOW slots) and
    the result are in the account's currency.
    """
    if shares <= 0.0:
        return 0.0
    at = fee_slot(j)
    value = shares * price
    fee = shares * costs[at + F_PER_SHARE_NOW]
    if fee < costs[at + F_MINIMUM_NOW]:
        fee = costs[at + F_MINIMUM_NOW]
    fee += value * costs[at + F_RATE]
    if fee < costs[at + F_MINIMUM_TOTAL_NOW]:
        fee = costs[at + F_MINIMUM_TOTAL_NOW]
    cap = value * costs[at + F_MAX_PCT]
    if fee > cap:
        fee = cap
    return float(fee)


@helper
def affordable(budget: float, price: float, costs: np.ndarray, j: int) -> float:
    """Return the most whole shares of asset ``j`` whose price plus commission fits in
    ``budget``."""
    if budget <= 0.0 or price <= 0.0:
        return 0.0
    at = fee_slot(j)
    rate = costs[at + F_RATE]
    shares = np.floor(budget / (price * (1.0 + rate) + costs[at + F_PER_SHARE_NOW]))
    if shares > 0.0 and shares * price + commission(shares, price, costs, j) > budget:
        # A minimum commission bites: take it out of the budget first.
        shares = np.floor((budget - costs[at + F_MINIMUM_NOW]) / (price * (1.0 + rate)))
        floor = costs[at + F_MINIMUM_TOTAL_NOW]
        if floor > 0.0:
            # Where the order minimum is the whole fee (ASX-style), this is exact.
            shares = min(shares, np.floor((budget - floor) / price))
    while shares > 0.0 and shares * price + commission(shares, price, costs, j) > budget:
        shares -= 1.0
    return float(max(shares, 0.0))


@helper
def _rates_at(costs, fx, t):
    """Convert every asset's fixed amounts at its rate on bar ``t`` into the *_NOW slots.

    Called only with per-bar rates and only before a helper that may fill, so the per-bar
    loop of a one-currency account does no extra work (1 % fewer instructions than an
    unconditional call in a fill-heavy batch, measured with callgrind).
    """
    for j in range(fx.shape[1]):
        at = fee_slot(j)
        costs[at + F_PER_SHARE_NOW] = costs[at + F_PER_SHARE] * fx[t, j]
        costs[at + F_MINIMUM_NOW] = costs[at + F_MINIMUM] * fx[t, j]
        costs[at + F_MINIMUM_TOTAL_NOW] = costs[at + F_MINIMUM_TOTAL] * fx[t, j]


@helper
def _record_close(tr, nt, j, qty, price, t, pos, avg, eidx, ecomm, fee):
    """Close ``qty`` shares of asset ``j`` at ``price``; write one trade row; return count."""
    side = 1.0 if pos[j] > 0 else -1.0
    part = ecomm[j] * qty / abs(pos[j])
    tr[nt, T_SYMBOL] = j
    tr[nt, T_SIDE] = side
    tr[nt, T_SIZE] = qty
    tr[nt, T_ENTRY_IDX] = eidx[j]
    tr[nt, T_ENTRY_PX] = avg[j]
    tr[nt, T_EXIT_IDX] = t
    tr[nt, T_EXIT_PX] = price
    tr[nt, T_PNL] = side * (price - avg[j]) * qty - part - fee
    tr[nt, T_COMMISSION] = part + fee
    ecomm[j] -= part
    pos[j] -= side * qty
    if pos[j] == 0.0:
        avg[j] = 0.0
        ecomm[j] = 0.0
    return nt + 1


@helper
def _add(j, qty, price, t, pos, avg, eidx, ecomm, fee):
    """Add signed ``qty`` shares (same direction as the position, or from flat)."""
    held = abs(pos[j])
    if held == 0.0:
        avg[j] = price
        eidx[j] = t
        ecomm[j] = fee
    else:
        avg[j] = (avg[j] * held + price * abs(qty)) / (held + abs(qty))
        ecomm[j] += fee
    pos[j] += qty


@helper
def _fill_price(price: float, buy: bool, slip: float) -> float:
    return price * (1.0 + slip) if buy else price * (1.0 - slip)


@helper
def _check_stops(t, o, h, lo, tradable, pos, avg, eidx, ecomm, costs, tr, nt, cash):
    """Exit positions whose stop loss or take profit was touched intrabar on bar ``t``."""
    sl, tp, slip = costs[C_SL], costs[C_TP], costs[C_SLIP]
    for j in range(pos.shape[0]):
        if pos[j] == 0.0 or not tradable[t, j]:
            continue
        long = pos[j] > 0
        sgn = 1.0 if long else -1.0
        stop = avg[j] * (1.0 - sgn * sl)
        take = avg[j] * (1.0 + sgn * tp)
        open_signed = o[t, j] * sgn
        adverse_extreme = (lo[t, j] if long else h[t, j]) * sgn
        favour_extreme = (h[t, j] if long else lo[t, j]) * sgn
        price = np.nan
        if not np.isnan(sl) and open_signed <= stop * sgn:
            price = _fill_price(o[t, j], not long, slip)  # gapped through the stop
        elif not np.isnan(sl) and adverse_extreme <= stop * sgn:
            price = _fill_price(stop, not long, slip)
        elif not np.isnan(tp) and open_signed >= take * sgn:
            price = o[t, j]  # gapped through the target: filled at the better open
        elif not np.isnan(tp) and favour_extreme >= take * sgn:
            price = take
        if np.isnan(price):
            continue
        qty = abs(pos[j])
        fee = commission(qty, price, costs, j)
        cash += sgn * qty * price - fee
        nt = _record_close(tr, nt, j, qty, price, t, pos, avg, eidx, ecomm, fee)
    return cash, nt


@helper
def _close_all(t, c, pos, avg, eidx, ecomm, costs, tr, nt, cash):
    """Close every position at bar ``t``'s close (slippage and commission as any market
    fill); return the cash after it and the trade count."""
    for j in range(pos.shape[0]):
        if pos[j] == 0.0:
            continue
        long = pos[j] > 0
        qty = abs(pos[j])
        price = _fill_price(c[t, j], not long, costs[C_SLIP])
        fee = commission(qty, price, costs, j)
        cash += (qty if long else -qty) * price - fee
        nt = _record_close(tr, nt, j, qty, price, t, pos, avg, eidx, ecomm, fee)
    return cash, nt


@helper
def _ruin(t, c, pos, avg, eidx, ecomm, costs, tr, nt, equity_out, pos_out):
    """Close every position at bar ``t``'s close and book zero equity from ``t`` on.

    Ruin, as in backtesting.py: equity at a close <= 0 ends the account. The closes pay the
    usual slippage and commission; whatever is left is floored at 0 (backtesting.py sets
    cash to 0). Returns the trade count; the caller stops trading.
    """
    _, nt = _close_all(t, c, pos, avg, eidx, ecomm, costs, tr, nt, 0.0)
    for u in range(t, equity_out.shape[0]):
        equity_out[u] = 0.0
        for j in range(pos.shape[0]):
            pos_out[u, j] = 0.0
    return nt


@helper
def _value(pos, prices):
    """Return the market value of ``pos`` at ``prices`` (a loop: no temporary array)."""
    total = 0.0
    for j in range(pos.shape[0]):
        total += pos[j] * prices[j]
    return total


@helper
def _gross(pos, prices):
    """Return the gross exposure sum(|pos| x prices) without a temporary array."""
    total = 0.0
    for j in range(pos.shape[0]):
        total += abs(pos[j]) * prices[j]
    return total


@njit(cache=True, inline="always")
def _holding(pos):
    """Return True when any asset has a position."""
    for j in range(pos.shape[0]):  # noqa: SIM110 - a plain loop compiles to the tightest code
        if pos[j] != 0.0:
            return True
    return False


@njit(cache=True, inline="always")
def _pending(t, ts, target, tradable, held):
    """Return True when a tradable asset's target at bar ``ts`` differs from the held one."""
    for j in range(held.shape[0]):  # noqa: SIM110 - a plain loop compiles to the tightest code
        if tradable[t, j] and target[ts, j] != held[j]:
            return True
    return False


@helper
def _wanted(j, sig, ts, scale, size_mode, equity, price, costs):
    """Return the whole-share size (unsigned) the signal ``sig`` asks for."""
    if size_mode == 1:
        return np.floor(abs(sig) * scale[ts, j])
    budget = abs(sig) * scale[ts, j] * equity / costs[C_MARGIN]
    return affordable(budget, price, costs, j)


@helper
def _rebalance(
    t,
    ts,
    px,
    mark,
    target,
    tradable,
    held,
    scale,
    size_mode,
    pos,
    avg,
    eidx,
    ecomm,
    costs,
    tr,
    nt,
    cash,
    changed,
):
    """Act on changed signals of bar ``ts`` at prices ``px`` of bar ``t``: sells, then buys.

    ``changed`` is caller-owned scratch space (k bools), so the common no-change bar
    allocates nothing.
    """
    k = pos.shape[0]
    any_changed = False
    for j in range(k):
        changed[j] = tradable[t, j] and target[ts, j] != held[j]
        any_changed = any_changed or changed[j]
    if not any_changed:
        return cash, nt
    slip = costs[C_SLIP]
    equity = cash + _value(pos, mark)
    for j in range(k):  # reductions and exits first, so their cash funds the buys
        if not changed[j] or pos[j] == 0.0:
            continue
        sig = target[ts, j]
        sgn = 1.0 if pos[j] > 0 else -1.0
        qty = abs(pos[j])
        if sig * sgn > 0.0:
            qty = qty - _wanted(
                j, sig, ts, scale, size_mode, equity, _fill_price(px[j], sgn > 0, slip), costs
            )
        if qty <= 0.0:
            continue
        price = _fill_price(px[j], sgn < 0, slip)
        fee = commission(qty, price, costs, j)
        cash += sgn * qty * price - fee
        nt = _record_close(tr, nt, j, qty, price, t, pos, avg, eidx, ecomm, fee)
    equity = cash + _value(pos, mark)
    avail = equity / costs[C_MARGIN] - _gross(pos, mark)
    for j in range(k):
        if not changed[j]:
            continue
        sig = target[ts, j]
        held[j] = sig
        if sig == 0.0:
            continue
        buy = sig > 0.0
        price = _fill_price(px[j], buy, slip)
        qty = _wanted(j, sig, ts, scale, size_mode, equity, price, costs) - abs(pos[j])
        qty = min(qty, affordable(avail, price, costs, j))
        if qty <= 0.0:
            continue
        fee = commission(qty, price, costs, j)
        signed = qty if buy else -qty
        cash -= signed * price + fee
        avail -= qty * price + fee
        _add(j, signed, price, t, pos, avg, eidx, ecomm, fee)
    return cash, nt


@njit(cache=True)
def simulate(
    o,
    h,
    lo,
    c,
    tradable,
    target,
    scale,
    size_mode,
    cash,
    costs,
    fx,
    fill_close,
    finalize,
    equity_out,
    pos_out,
    tr,
):
    """Run one account over ``n`` bars and ``k`` assets; return the number of trade rows.

    Args:
        o, h, lo, c: (n, k) prices, forward-filled where an asset has no bar.
        tradable: (n, k) bool, False where an asset has no bar (no fills, no stops).
        target: (n, k) signal per bar, NaN-free; acting only when it changes.
        scale: (n, k) sizing multiplier (equity fraction, or shares when size_mode == 1).
        size_mode: 0 for a fraction of equity, 1 for a fixed number of shares.
        cash: starting cash.
        costs: the shared ``C_*`` slots (NaN stop = none), then each asset's ``F_*`` slots
            (see :func:`fee_slot`); never written (with bar rates the loop converts the
            fixed amounts in a copy).
        fx: (n, k) account-currency units per unit of each asset's currency at each bar,
            converting the commissions' fixed amounts (prices are already in the account's
            currency); or (0, k) when the *_NOW slots of ``costs`` already hold them.
        fill_close: fill at the signal bar's close instead of the next bar's open.
        finalize: close what is still open at the last bar's close, so it is a trade.
        equity_out: (n,) account value at each close (written).
        pos_out: (n, k) shares held after each bar (written).
        tr: (capacity, TRADE_COLUMNS) trade rows (written).

    When equity at a bar's close is <= 0 (shorts or leverage can get there), every position
    is closed at that close, equity is 0 from that bar on and nothing trades again.
    """
    n, k = c.shape
    varies = fx.shape[0] > 0
    if varies:
        costs = costs.copy()  # its *_NOW slots follow the bar; the caller's stay as they are
    pos = np.zeros(k)
    avg = np.zeros(k)
    eidx = np.zeros(k)
    ecomm = np.zeros(k)
    held = np.zeros(k)
    mark = np.zeros(k)
    px = np.zeros(k)
    changed = np.zeros(k, dtype=np.bool_)
    has_stops = not (np.isnan(costs[C_SL]) and np.isnan(costs[C_TP]))
    nt = 0
    # Helper calls cost reference counting on every array argument, so the loop only calls
    # them on bars that need them: a pending target change, or stops with a position open.
    for t in range(n):
        if fill_close and has_stops and _holding(pos):
            if varies:
                _rates_at(costs, fx, t)
            cash, nt = _check_stops(
                t, o, h, lo, tradable, pos, avg, eidx, ecomm, costs, tr, nt, cash
            )
        ts = t if fill_close else t - 1
        if ts >= 0 and _pending(t, ts, target, tradable, held):
            for j in range(k):  # into scratch: a row view would be refcounted every bar
                if fill_close:
                    px[j] = c[t, j]
                    mark[j] = c[t, j]
                else:
                    px[j] = o[t, j]
                    mark[j] = o[t, j] if tradable[t, j] else c[t - 1, j]
            if varies:
                _rates_at(costs, fx, t)
            cash, nt = _rebalance(
                t,
                ts,
                px,
                mark,
                target,
                tradable,
                held,
                scale,
                size_mode,
                pos,
                avg,
                eidx,
                ecomm,
                costs,
                tr,
                nt,
                cash,
                changed,
            )
        if not fill_close and has_stops and _holding(pos):
            if varies:
                _rates_at(costs, fx, t)
            cash, nt = _check_stops(
                t, o, h, lo, tradable, pos, avg, eidx, ecomm, costs, tr, nt, cash
            )
        value = 0.0
        for j in range(k):
            value += pos[j] * c[t, j]
            pos_out[t, j] = pos[j]
        value += cash
        equity_out[t] = value
        if value <= 0.0:  # ruin: see _ruin (called outside the loop, which stays tight)
            break
    if n and equity_out[t] <= 0.0:
        if varies:
            _rates_at(costs, fx, t)
        nt = _ruin(t, c, pos, avg, eidx, ecomm, costs, tr, nt, equity_out, pos_out)
    elif finalize and n and _holding(pos):
        if varies:
            _rates_at(costs, fx, n - 1)
        cash, nt = _close_all(n - 1, c, pos, avg, eidx, ecomm, costs, tr, nt, cash)
        equity_out[n - 1] = cash
        for j in range(k):
            pos_out[n - 1, j] = 0.0
    return nt


@njit(cache=True, parallel=True)
def simulate_batch(
    o, h, lo, c, tradable, targets_t, scale, size_mode, cash, costs, fx, fill_close,
    finalize, equity_out,
):  # fmt: skip
    """Run one single-asset account per row of ``targets_t`` (m, n), in parallel.

    Kept in this file with ``simulate``: numba's cache only notices edits to a kernel's own
    file, so a kernel calling into another file could keep running stale compiled code.

    Args:
        o, h, lo, c, tradable, scale, size_mode, cash, costs, fx, fill_close, finalize:
            as ``simulate``.
        targets_t: (m, n) one target row per parameter set.
        equity_out: (m, n) each set's equity (written).

    Returns:
        Trade counts (m,), winning-trade counts (m,), gross profit (m,) and gross loss (m,)
        of closed trades.
    """
    m, n = targets_t.shape
    n_trades = np.zeros(m, dtype=np.int64)
    n_wins = np.zeros(m, dtype=np.int64)
    gross_win = np.zeros(m)
    gross_loss = np.zeros(m)
    blocks = min(m, 64)
    for b in prange(blocks):
        tr = np.empty((2 * n + 2, TRADE_COLUMNS))  # scratch once per block of sets
        pos_out = np.empty((n, 1))
        for col in range(b, m, blocks):
            target = targets_t[col].reshape((n, 1))
            nt = simulate(
                o, h, lo, c, tradable, target, scale, size_mode, cash, costs, fx, fill_close,
                finalize, equity_out[col], pos_out, tr,
            )  # fmt: skip
            n_trades[col] = nt
            for r in range(nt):
                pnl = tr[r, T_PNL]
                if pnl > 0.0:
                    n_wins[col] += 1
                    gross_win[col] += pnl
                else:
                    gross_loss[col] -= pnl
    return n_trades, n_wins, gross_win, gross_loss
