"""Indicator benchmark: SCIZOR's indicators side by side with TA-Lib, at short and long periods.

Run: ``.venv/bin/python benchmarks/indicators.py``. Rule specs arrive over HTTP with periods
up to 5,000, so every windowed indicator must cost O(bars) whatever its period: the table
shows the time of each at period 20 and 20,000 on 200,000 bars, TA-Lib's time for the same
call, and the ratio (TA-Lib time / SCIZOR time; above 1 means SCIZOR is faster). An O(bars x
period) kernel would show up as a period-20,000 time ~1,000x its period-20 time.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import talib

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from strategies import indicators as ind

Bars = dict[str, np.ndarray]
CASES: list[tuple[str, Callable[[Bars, int], Any], Callable[[Bars, int], Any]]] = [
    ("sma", lambda b, p: ind.sma(b["close"], p), lambda b, p: talib.SMA(b["close"], p)),
    ("wma", lambda b, p: ind.wma(b["close"], p), lambda b, p: talib.WMA(b["close"], p)),
    ("stddev", lambda b, p: ind.stddev(b["close"], p), lambda b, p: talib.STDDEV(b["close"], p)),
    ("highest", lambda b, p: ind.highest(b["close"], p), lambda b, p: talib.MAX(b["close"], p)),
    ("lowest", lambda b, p: ind.lowest(b["close"], p), lambda b, p: talib.MIN(b["close"], p)),
    (
        "willr",
        lambda b, p: ind.willr(b["high"], b["low"], b["close"], p),
        lambda b, p: talib.WILLR(b["high"], b["low"], b["close"], p),
    ),
    (
        "stoch",
        lambda b, p: ind.stoch(b["high"], b["low"], b["close"], p),
        lambda b, p: talib.STOCH(b["high"], b["low"], b["close"], p),
    ),
]


def bars(n: int = 200_000, seed: int = 3) -> Bars:
    """Return ``n`` seeded high/low/close bars."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    return {
        "close": close,
        "high": close * (1 + np.abs(rng.normal(0, 0.001, n))),
        "low": close * (1 - np.abs(rng.normal(0, 0.001, n))),
    }


def median_s(call: Callable[[], Any], runs: int = 5) -> float:
    """Return the median wall time of ``runs`` calls after one warm-up call."""
    call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    data = bars()
    n = len(data["close"])
    print(f"{n:,} bars; median of 5 runs; ratio = TA-Lib time / SCIZOR time\n")
    print(f"{'indicator':10} {'period':>7} {'SCIZOR ms':>10} {'TA-Lib ms':>10} {'ratio':>7}")
    for name, ours, theirs in CASES:
        for period in (20, 20_000):
            mine = median_s(lambda o=ours, p=period: o(data, p))
            peer = median_s(lambda t=theirs, p=period: t(data, p))
            ratio = peer / mine
            print(f"{name:10} {period:>7,} {mine * 1e3:>10.2f} {peer * 1e3:>10.2f} {ratio:>6.2f}x")


if __name__ == "__main__":
    main()
