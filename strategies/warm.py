"""Compile the engine's numba kernels ahead of the first user backtest.

Every kernel is ``njit(cache=True)``: compiling it once writes the machine code next to its
module, and later processes (CLI commands, Ray workers, Serve replicas) load it from there
instead of compiling again (some 25 s of JIT in a fresh install on 2 cores). :func:`warm_up`
runs each library strategy once through the single backtest and the batch path, on synthetic bars,
with the commission and stop paths the engine has, so every specialisation the platform
uses is in the cache before anyone waits for it.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from strategies.batch import run_batch
from strategies.engine import run_backtest
from strategies.library import LIBRARY

__all__ = ["synthetic_bars", "warm_up"]

WARM_BARS = 400
"""Bars in the synthetic series: enough for every library strategy's default warm-up."""


def synthetic_bars(n: int = WARM_BARS, *, seed: int = 0) -> pd.DataFrame:
    """A daily random walk with consistent OHLCV (UTC index), for compiling kernels."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    spread = close * 0.005
    index = pd.date_range("2020-01-01", periods=n, freq="B", tz="UTC", unit="ns")
    return pd.DataFrame(
        {
            "open": close - spread * 0.5,
            "high": close + spread,
            "low": close - spread,
            "close": close,
            "volume": np.full(n, 1_000_000.0),
        },
        index=index,
    )


def warm_up() -> dict[str, float]:
    """Run every library strategy once per engine path; return the seconds each took.

    The first call in a fresh install compiles (seconds per strategy); once the cache is
    written, a call takes milliseconds, which is how a caller can tell it worked.
    """
    bars = synthetic_bars()
    seconds: dict[str, float] = {}
    for name, strategy in LIBRARY.items():
        began = time.perf_counter()
        defaults = strategy.defaults()
        run_backtest(bars, strategy, defaults, commission="ibkr", symbol="WARM")
        run_backtest(bars, strategy, defaults, stop_loss_pct=5.0, take_profit_pct=10.0)
        run_batch(bars, strategy, [defaults, defaults], commission="ibkr")
        seconds[name] = time.perf_counter() - began
    return seconds
