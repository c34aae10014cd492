"""The HTML tearsheet of a stored backtest, rendered on demand from what the job stored.

A thin adapter over :func:`strategies.report.render_report`: equity, benchmark and trades
come from the result store, metrics from the catalog, and the price chart from the bar store.
A per-instrument job's own report (no instrument named) shows the equal-weight combination
of its instruments' accounts (each started with the same cash, held side by side), the
job's median metrics, and the ranked table of every instrument.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from optimize.backtest_ranking import RankedResult
from strategies.report import render_report

TOP_ROWS = 50
"""Ranked rows shown in a job's report (the rest are counted)."""


def curve(equity: pd.DataFrame, column: str = "equity") -> pd.Series:
    """Return one instrument's stored curve (long form) as a Series on its timestamps."""
    values = pd.Series(
        equity[column].to_numpy(np.float64), index=pd.DatetimeIndex(equity["ts"]), name=column
    )
    return values.dropna() if column == "benchmark" else values


def combined(equity: pd.DataFrame) -> pd.Series:
    """Return the mean of every instrument's equity, each carried over the days it has no bar.

    Before an instrument's first bar its account counts at its first value (its cash).
    """
    wide = equity.pivot_table(index="ts", columns="instrument", values="equity", aggfunc="last")
    wide = wide.ffill().bfill()
    out = wide.mean(axis=1)
    out.index = pd.DatetimeIndex(out.index)
    return out.rename("equity")


def instrument_report(
    *,
    title: str,
    equity: pd.DataFrame,
    trades: pd.DataFrame,
    stats: Mapping[str, Any],
    bars: pd.DataFrame | None,
) -> str:
    """Render one instrument's (or a portfolio's) tearsheet."""
    bench = curve(equity, "benchmark")
    return render_report(
        equity=curve(equity),
        stats=_numbers(stats),
        trades=trades,
        bars=bars,
        benchmark=bench if len(bench) else None,
        title=title,
    )


def job_report(
    *,
    title: str,
    equity: pd.DataFrame,
    medians: Mapping[str, Any],
    ranked: Sequence[RankedResult],
    metric: str,
) -> str:
    """Render a per-instrument job's tearsheet: combined equity, medians, ranked table."""
    page = render_report(
        equity=combined(equity),
        stats=_numbers(medians),
        title=f"{title}: equal-weight combination of {len(ranked)} instruments",
    )
    return page.replace("<script>", _ranked_table(ranked, metric) + "<script>", 1)


def _numbers(stats: Mapping[str, Any]) -> dict[str, float]:
    """Metrics as floats (the catalog stores undefined ones as null: shown as NaN)."""
    out = {}
    for key, value in stats.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        out[key] = float(value)
    return out


def _ranked_table(ranked: Sequence[RankedResult], metric: str) -> str:
    """The ranked instruments as an HTML table (the best ``TOP_ROWS``)."""
    columns = ("return_pct", "sharpe", "max_drawdown_pct", "n_trades")
    shown = [c for c in dict.fromkeys((metric, *columns))]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ("rank", "instrument", *shown))
    rows = []
    for row in ranked[:TOP_ROWS]:
        cells = [str(row.rank or "–"), html.escape(row.instrument)]
        if row.error:
            cells.append(f"<span class='sub'>{html.escape(row.error[:120])}</span>")
        else:
            cells += [_cell(row.stats.get(c)) for c in shown]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    more = len(ranked) - TOP_ROWS
    note = f"<div class='sub'>… and {more} more</div>" if more > 0 else ""
    return (
        f"<h2>Instruments by {html.escape(metric)}</h2>"
        f"<table class='ranked' id='ranked'><tr>{head}</tr>{''.join(rows)}</table>{note}"
    )


def _cell(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "–"
    return f"{value:,.2f}" if abs(value) >= 100 else f"{value:.4g}"
