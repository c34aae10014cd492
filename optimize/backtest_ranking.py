"""Ranking a job's results, its summary stats, and a strategy's record over many jobs."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from optimize.spec_checks import LOWER_IS_BETTER

KEY_METRICS = (
    "return_pct",
    "cagr_pct",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown_pct",
    "win_rate_pct",
    "profit_factor",
    "n_trades",
    "final_equity",
)
"""The metrics summarized per job and per strategy (plus the job's ranking metric)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RankedResult:
    """One row of a job's ranked results.

    Attributes:
        rank: 1 for the best by the job's metric; None for rows without a value (an error,
            or the metric undefined, e.g. a Sharpe ratio without trades), listed last.
        instrument: The canonical id, or ``"portfolio"``.
        value: The ranking metric's value (None when undefined).
        stats: Every metric (undefined ones None).
        error: Why the instrument has no result, or None.
    """

    rank: int | None
    instrument: str
    value: float | None
    stats: dict[str, Any]
    error: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class StrategyPerformance:
    """How a strategy did over every finished (``done``) backtest of it.

    Attributes:
        strategy: The strategy name.
        backtests: Finished backtests.
        results: Result rows with stats (one per instrument, or per portfolio).
        failed: Result rows with an error instead.
        instruments: Distinct instruments tested (a portfolio counts its instruments).
        metrics: Per metric of :data:`KEY_METRICS`: ``mean``, ``median``, ``min``, ``max``
            and ``count`` over the rows where it is defined.
        best: The best row by Sharpe ratio: ``backtest_id``, ``instrument``, ``sharpe``.
        last_run: When the newest of those backtests finished.
    """

    strategy: str
    backtests: int
    results: int
    failed: int
    instruments: int
    metrics: dict[str, dict[str, float | None]]
    best: dict[str, Any] | None
    last_run: datetime | None


def _value(stats: dict[str, Any], metric: str) -> float | None:
    value = stats.get(metric)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def rank(rows: Iterable[Any], metric: str) -> list[RankedResult]:
    """Rank result rows (``instrument``, ``stats``, ``error``) by ``metric``, best first.

    Larger is better except for :data:`~optimize.spec_checks.LOWER_IS_BETTER` metrics;
    ties keep the instruments' order; rows without a value come last, unranked.
    """
    sign = 1.0 if metric in LOWER_IS_BETTER else -1.0
    scored = [(r, None if r.error else _value(r.stats, metric)) for r in rows]
    valued = sorted(((r, v) for r, v in scored if v is not None), key=lambda p: sign * p[1])
    rest = [p for p in scored if p[1] is None]
    out = [
        RankedResult(rank=i, instrument=r.instrument, value=v, stats=r.stats, error=r.error)
        for i, (r, v) in enumerate(valued, start=1)
    ]
    out += [
        RankedResult(rank=None, instrument=r.instrument, value=None, stats=r.stats, error=r.error)
        for r, _ in rest
    ]
    return out


def aggregate(stats: Sequence[dict[str, Any]], metrics: Iterable[str]) -> dict[str, Any]:
    """Return ``{metric: {mean, median, min, max, count}}`` over the defined values."""
    out: dict[str, Any] = {}
    for metric in dict.fromkeys(metrics):
        values = [v for s in stats if (v := _value(s, metric)) is not None]
        out[metric] = {
            "mean": statistics.fmean(values) if values else None,
            "median": statistics.median(values) if values else None,
            "min": min(values, default=None),
            "max": max(values, default=None),
            "count": len(values),
        }
    return out


def summary(rows: Sequence[Any], *, mode: str, metric: str, instruments: int) -> dict[str, Any]:
    """Return a job's summary stats (``backtests.stats``).

    A portfolio job's summary is its portfolio's metrics plus ``mode`` and the counts; a
    per-instrument job's has the counts, the best and worst instrument by ``metric`` and
    the :func:`aggregate` of the key metrics.
    """
    ok = [r for r in rows if not r.error]
    head = {
        "mode": mode,
        "sort": metric,
        "instruments": instruments,
        "ok": len(ok),
        "failed": len(rows) - len(ok),
    }
    if mode == "portfolio":
        return head | (dict(ok[0].stats) if ok else {})
    ranked = [r for r in rank(rows, metric) if r.rank is not None]
    best, worst = (ranked[0], ranked[-1]) if ranked else (None, None)
    return head | {
        "best": None if best is None else {"instrument": best.instrument, metric: best.value},
        "worst": None if worst is None else {"instrument": worst.instrument, metric: worst.value},
        "metrics": aggregate([r.stats for r in ok], (*KEY_METRICS, metric)),
    }


def performance(strategy: str, jobs: Sequence[tuple[Any, Sequence[Any]]]) -> StrategyPerformance:
    """Return :class:`StrategyPerformance` from (backtest record, its result rows) pairs."""
    ok = [(job, r) for job, rows in jobs for r in rows if not r.error]
    failed = sum(1 for _, rows in jobs for r in rows if r.error)
    instruments = {i for job, _ in jobs for i in job.instruments}
    scored = [(job, r, v) for job, r in ok if (v := _value(r.stats, "sharpe")) is not None]
    top = max(scored, key=lambda t: t[2], default=None)
    best = None
    if top is not None:
        best = {"backtest_id": top[0].id, "instrument": top[1].instrument, "sharpe": top[2]}
    finished = [job.finished_at for job, _ in jobs if job.finished_at is not None]
    return StrategyPerformance(
        strategy=strategy,
        backtests=len(jobs),
        results=len(ok),
        failed=failed,
        instruments=len(instruments),
        metrics=aggregate([r.stats for _, r in ok], KEY_METRICS),
        best=best,
        last_run=max(finished, default=None),
    )
