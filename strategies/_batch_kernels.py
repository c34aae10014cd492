# mypy: allow-untyped-defs
"""Numba kernels behind ``run_batch``: many parameter sets of one strategy in one call.

``simulate_batch`` runs the engine's own ``simulate`` loop once per set, in parallel over
blocks of sets, and reduces each set's equity to the batch metrics on the spot, so only one
equity curve per thread is ever held. ``sma_cross_targets`` builds the SMA-crossover targets
of many (fast, slow) pairs from one matrix of distinct SMAs.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from strategies import _metric_kernels as mk
from strategies._kernels import T_PNL, TRADE_COLUMNS, simulate

# Columns of the batch metrics matrix (metrics.BATCH_KEYS order).
BATCH_SLOTS = (
    mk.S_RETURN,
    mk.S_CAGR,
    mk.S_VOL,
    mk.S_SHARPE,
    mk.S_SORTINO,
    mk.S_MAX_DD,
    mk.S_CALMAR,
)


@njit(cache=True, parallel=True)
def simulate_batch(
    o, h, lo, c, tradable, targets_t, scale, size_mode, cash, costs, fill_close, ppy
):
    """Run one single-asset account per row of ``targets_t`` (m, n) and summarize each.

    Returns:
        metrics (m, len(BATCH_SLOTS)) in ``metrics.BATCH_KEYS`` order (inf not yet mapped
        to NaN), trade counts (m,), winning-trade counts (m,), gross profit (m,) and gross
        loss (m,) of closed trades.
    """
    m, n = targets_t.shape
    stats = np.empty((m, len(BATCH_SLOTS)))
    n_trades = np.zeros(m, dtype=np.int64)
    n_wins = np.zeros(m, dtype=np.int64)
    gross_win = np.zeros(m)
    gross_loss = np.zeros(m)
    blocks = min(m, 64)
    for b in prange(blocks):
        # Scratch buffers once per block of sets, not once per set.
        tr = np.empty((2 * n + 2, TRADE_COLUMNS))
        pos_out = np.empty((n, 1))
        eq = np.empty(n)
        out = np.empty(mk.N_STATS)
        for col in range(b, m, blocks):
            nt = simulate(
                o,
                h,
                lo,
                c,
                tradable,
                targets_t[col].reshape((n, 1)),
                scale,
                size_mode,
                cash,
                costs,
                fill_close,
                eq,
                pos_out,
                tr,
            )
            out[:] = np.nan
            mk.core_metrics(mk.simple_returns(eq), ppy, 0.0, out)
            for i in range(len(BATCH_SLOTS)):
                stats[col, i] = out[BATCH_SLOTS[i]]
            n_trades[col] = nt
            for r in range(nt):
                pnl = tr[r, T_PNL]
                if pnl > 0.0:
                    n_wins[col] += 1
                    gross_win[col] += pnl
                else:
                    gross_loss[col] -= pnl
    return stats, n_trades, n_wins, gross_win, gross_loss


@njit(cache=True)
def cross_state(a, b, short, out):
    """Write the latched sma_cross state of ``a`` crossing ``b`` into ``out``; return it.

    Equal to ``state(crosses_above(a, b), crosses_below(a, b), short=short)`` of
    :mod:`strategies.library` in one pass (NaN compares False, as in numpy).
    """
    if out.shape[0] == 0:
        return out
    state = 0.0
    out[0] = 0.0
    for t in range(1, out.shape[0]):
        up = a[t - 1] < b[t - 1] and a[t] > b[t]
        down = b[t - 1] < a[t - 1] and b[t] > a[t]
        if up and state <= 0.0:
            state = 1.0
        elif short and down and state >= 0.0:
            state = -1.0
        elif (state == 1.0 and down) or (state == -1.0 and up):
            state = 0.0
        out[t] = state
    return out


@njit(cache=True, parallel=True)
def sma_cross_targets(smas, fast, slow, short, out_t):
    """Write the sma_cross target of each set into ``out_t`` (m, n).

    Args:
        smas: (w, n) distinct SMAs, one per row.
        fast, slow: (m,) row numbers in ``smas`` of each set's fast and slow SMA.
        short: (m,) bool, True where the set may go short.
        out_t: (m, n) written: the latched -1/0/+1 state, as ``SmaCross.signal`` gives it.
    """
    for col in prange(out_t.shape[0]):
        cross_state(smas[fast[col]], smas[slow[col]], short[col], out_t[col])
    return out_t
