"""The look-ahead check catches a strategy that peeks at the next bar."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from strategies.base import IndicatorCache, IntParam, Param, Strategy
from strategies.lookahead import check_lookahead


class PeeksAhead(Strategy):
    """Buys when tomorrow's close is higher: close.shift(-1) is the classic leak."""

    name = "peeks_ahead"

    def signal(self, bars: pd.DataFrame, p: Mapping[str, Any], ind: IndicatorCache) -> Any:
        return (bars.close.shift(-1) > bars.close).astype(float).to_numpy()


class CenteredMean(Strategy):
    """A subtler leak: a centered rolling window uses future bars."""

    name = "centered_mean"
    params: ClassVar[Mapping[str, Param]] = {"window": IntParam(5, 3, 21)}

    def signal(self, bars: pd.DataFrame, p: Mapping[str, Any], ind: IndicatorCache) -> Any:
        mean = bars.close.rolling(p["window"], center=True).mean()
        return (bars.close > mean).astype(float).to_numpy()


def bars() -> pd.DataFrame:
    rng = np.random.default_rng(99)
    close = 30 * np.exp(np.cumsum(rng.normal(0, 0.02, 300)))
    idx = pd.date_range("2020-01-01", periods=300, freq="D", tz="UTC")
    return pd.DataFrame({"open": close, "high": close * 1.01, "low": close * 0.99,
                         "close": close, "volume": 1.0}, index=idx)  # fmt: skip


def test_shift_minus_one_is_caught_with_the_offending_bar():
    data = bars()
    report = check_lookahead(PeeksAhead(), data, samples=20)
    assert not report.passed
    assert len(report.violations) >= 5
    first = report.violations[0]
    assert first.bar == first.cut  # the last bar of each truncated history changed
    assert "look-ahead" in str(report)


def test_centered_window_is_caught_too():
    report = check_lookahead(CenteredMean(), bars(), {"window": 9}, samples=10)
    assert not report.passed


def test_a_causal_strategy_passes_by_name():
    report = check_lookahead("rsi_reversion", bars(), samples=8)
    assert report.passed and report.checked == 8 and "no look-ahead" in str(report)
