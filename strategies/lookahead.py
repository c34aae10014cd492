"""Look-ahead check: does any past signal change when future bars are appended?

A causal strategy's target at bar ``t`` depends only on bars ``0..t``. ``check_lookahead``
recomputes the targets on truncated histories ``bars[:cut]`` and compares them with the
targets computed on the full history; any difference means the strategy peeked ahead.

Example:
    >>> import numpy as np, pandas as pd, strategies
    >>> idx = pd.date_range("2024-01-01", periods=200, freq="D", tz="UTC")
    >>> close = 100 + np.cumsum(np.random.default_rng(0).normal(0, 1, 200))
    >>> bars = pd.DataFrame({"open": close, "high": close + 1, "low": close - 1,
    ...                      "close": close, "volume": 1.0}, index=idx)
    >>> check_lookahead(strategies.get("sma_cross"), bars, samples=5).passed
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.errors import DataError, ParameterError
from strategies.base import Strategy
from strategies.simulation import prepare


@dataclass(frozen=True, slots=True)
class LookaheadViolation:
    """One bar whose target changed once later bars were known.

    Attributes:
        cut: the last bar of the truncated history.
        bar: the bar whose target differs.
        truncated: its target computed on the truncated history.
        full: its target computed on the full history.
    """

    cut: pd.Timestamp
    bar: pd.Timestamp
    truncated: float
    full: float


@dataclass(frozen=True, slots=True)
class LookaheadReport:
    """The result of :func:`check_lookahead`.

    Attributes:
        strategy: the strategy name.
        checked: how many truncated histories were replayed.
        violations: the first differing bar of every failing cut.
    """

    strategy: str
    checked: int
    violations: tuple[LookaheadViolation, ...]

    @property
    def passed(self) -> bool:
        """Return True when no replay changed a past signal."""
        return not self.violations

    def __str__(self) -> str:
        if self.passed:
            return f"{self.strategy}: no look-ahead in {self.checked} replays"
        first = self.violations[0]
        return (
            f"{self.strategy}: look-ahead in {len(self.violations)} of {self.checked} replays; "
            f"e.g. the target at {first.bar} was {first.truncated} with history up to "
            f"{first.cut} but {first.full} with the full history"
        )


def check_lookahead(
    strategy: Strategy | str,
    bars: pd.DataFrame,
    params: Mapping[str, Any] | None = None,
    *,
    samples: int = 20,
) -> LookaheadReport:
    """Replay ``strategy`` on ``samples`` truncated histories and report changed signals.

    Args:
        strategy: a Strategy or a library name.
        bars: the full bar frame.
        params: strategy parameters (defaults fill the gaps).
        samples: number of truncation points, spread evenly from the 10th bar to the last
            (more samples catch rarer peeking).

    Returns:
        A :class:`LookaheadReport`; ``.passed`` is True when no signal changed.
    """
    if not isinstance(bars, pd.DataFrame) or len(bars) < 2:
        raise DataError("bars must be a DataFrame of at least 2 bars", field="bars")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ParameterError(
            f"samples must be a whole number of replays >= 1, got {samples!r}", field="samples"
        )
    strat, p = prepare(strategy, params, None)
    full = strat.target(bars, p, resolved=True)
    n = len(bars)
    first = min(10, n - 1)
    cuts = np.unique(np.linspace(first, n - 1, num=max(1, samples)).astype(int))
    violations = []
    for cut in cuts:
        part = strat.target(bars.iloc[: cut + 1], p, resolved=True)
        diff = np.flatnonzero(~np.isclose(part, full[: cut + 1], rtol=1e-9, atol=1e-12))
        if diff.size:
            i = int(diff[0])
            violations.append(
                LookaheadViolation(
                    cut=bars.index[cut],
                    bar=bars.index[i],
                    truncated=float(part[i]),
                    full=float(full[i]),
                )
            )
    return LookaheadReport(strategy=strat.name, checked=len(cuts), violations=tuple(violations))
