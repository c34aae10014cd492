# mypy: allow-untyped-defs
"""Numba kernels over a run's bars: the sanity check behind ``strategies.bars`` and the
smallest time step behind ``strategies.sizing.periods_per_year``."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def bars_ok(block):
    """Return True when every bar of ``block`` (open, high, low, close, ... rows) is sane.

    Sane: the four prices are finite and positive, and low <= min(open, close),
    max(open, close) <= high. One branch-free pass (it vectorizes; the caller finds the
    offending bar only when this is False). NaN fails every comparison, so
    ``0 < low <= open, close <= high < inf`` covers all of it.
    """
    ok = True
    for t in range(block.shape[1]):
        o, h, lo, c = block[0, t], block[1, t], block[2, t], block[3, t]
        ok &= (lo > 0.0) & (h < np.inf) & (h >= o) & (h >= c) & (lo <= o) & (lo <= c)
    return ok


@njit(cache=True)
def min_step(stamps):
    """Return the smallest difference between consecutive ``stamps`` (int64; no temporary)."""
    best = np.iinfo(np.int64).max
    for t in range(1, stamps.shape[0]):
        step = stamps[t] - stamps[t - 1]
        if step < best:
            best = step
    return best
