"""The kernel warm-up ``scizor prepare`` runs: every library strategy, on sane bars."""

from __future__ import annotations

import numpy as np

from strategies.bars import validate_bars
from strategies.library import LIBRARY
from strategies.warm import synthetic_bars, warm_up


def test_synthetic_bars_are_bars_the_engine_takes() -> None:
    bars = synthetic_bars(300, seed=3)
    assert len(bars) == 300 and str(bars.index.tz) == "UTC"
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    assert not np.array_equal(bars["close"].to_numpy(), synthetic_bars(300, seed=4)["close"])
    validate_bars(bars)  # raises on anything the engine refuses


def test_warm_up_runs_every_library_strategy() -> None:
    seconds = warm_up()
    assert set(seconds) == set(LIBRARY)
    assert all(s >= 0 for s in seconds.values())
