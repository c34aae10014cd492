"""A self-contained HTML report of an optimization: inline SVG, no network, one file.

:func:`render_optimization_report` draws, from an :class:`OptimizationSummary` (plain data,
as the catalog stores it) and the study's trials: the verdict, the best parameters, a
heatmap of the objective over two parameters, the objective by trial number with the
running best, the Pareto front (several objectives), the parameter importances, the
walk-forward (when run), the overfitting statistics, and the top trials. It uses the look
of :mod:`strategies.report`; every text is escaped.

The trials are a DataFrame as :func:`optimize.sweep_store.trials_table` builds it (columns
``number``, ``params`` (a dict), ``values`` (a sequence, one per objective, or None),
``state``, ``seconds``) or as Optuna's ``Study.trials_dataframe()`` does (``params_<name>``
columns, ``value`` or ``values_<k>``, ``state``, ``duration``).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import ValidationError
from optimize import optimization_charts as charts
from optimize.optimization_summary import (
    OptimizationSummary,
    OverfittingSummary,
    WalkForwardSummary,
)
from strategies.report import COLORS, number_text, page, time_chart

__all__ = [
    "TOP_TRIALS",
    "OptimizationSummary",
    "OverfittingSummary",
    "WalkForwardSummary",
    "heatmap_params",
    "render_optimization_report",
    "write_optimization_report",
]

TOP_TRIALS = 50
"""Trials listed in the report's table (the best by the first objective)."""
MAX_TRIAL_CHARTS = 3
"""Objectives drawn against the trial number (the first ones)."""

_CSS = """
.verdict{font-size:17px;font-weight:600;margin:14px 0;padding:10px 14px;background:#f6f8fa;
border-left:5px solid #8b949e}.verdict.good{border-color:#1a7f37}
.verdict.bad{border-color:#d1242f}.note{color:#57606a;font-size:13px}
table.list{width:100%}table.list th{color:#57606a;border-bottom:1px solid #d0d7de}
table.list tr:nth-child(even){background:#f6f8fa}table.list td.text,table.list th.text{
text-align:left}
"""
_EXPLAIN = {
    "sr": "Sharpe ratio of the best trial's returns (mean / std per period).",
    "dsr": "Deflated Sharpe: probability that the true Sharpe beats SR0, the best expected "
    "from this many trials without skill; 0.95 or more is significant.",
    "psr": "Probabilistic Sharpe: probability that the true Sharpe is above 0, given the "
    "track record's length, skew and kurtosis.",
    "sr0": "Expected best per-period Sharpe of this many trials with no skill at all.",
    "pbo": "Probability of backtest overfitting: share of CSCV splits where the in-sample best "
    "ranks in the bottom half out of sample (about 0.5 for noise).",
    "prob_oos_loss": "Share of CSCV splits where the in-sample best loses out of sample.",
    "degradation_slope": "Out-of-sample Sharpe per unit of in-sample Sharpe over the splits; "
    "0 or below means the in-sample ranking says nothing.",
    "min_trl": "Minimum track record: returns needed for the best Sharpe to beat SR0 at 95 %.",
}


def write_optimization_report(
    path: str | Path, summary: OptimizationSummary, trials: pd.DataFrame
) -> Path:
    """Write the report (see :func:`render_optimization_report`) to ``path``; return it."""
    out = Path(path)
    out.write_text(render_optimization_report(summary, trials), encoding="utf-8")
    return out


def render_optimization_report(summary: OptimizationSummary, trials: pd.DataFrame) -> str:
    """Return the report of an optimization as one HTML page.

    Args:
        summary: What the study was and found (plain data; see :class:`OptimizationSummary`).
        trials: The study's trials (see the module's docstring); failed ones are counted.

    Raises:
        ValidationError: a trial with another number of values than there are objectives,
            or trials without params or values columns.
    """
    table = _Trials.of(trials, len(summary.objectives))
    parts = [_header(summary), *_best(summary), *_heatmap(summary, table)]
    for k, (metric, direction) in enumerate(summary.objectives[:MAX_TRIAL_CHARTS]):
        parts.append(f"<h2>{_esc(metric)} by trial</h2>")
        parts.append(_trial_chart(table, k, metric=metric, direction=direction))
    if summary.multi_objective:
        parts += _pareto(summary, table)
    parts += _importance(summary)
    if summary.walk_forward is not None:
        parts += _walk_forward(summary.walk_forward)
    parts += _overfitting(summary.overfitting)
    parts += _top_trials(summary, table)
    return page(title=f"Optimization {summary.study_name}", body="\n".join(parts), css=_CSS)


def _esc(text: object) -> str:
    return html.escape(str(text))


def _text(value: Any) -> str:
    """A cell's text: numbers as the metrics table writes them, anything else escaped."""
    if isinstance(value, bool) or value is None:
        return "–" if value is None else str(value)
    if isinstance(value, int | float | np.number):
        return number_text(float(value))
    return _esc(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Trials:
    """The COMPLETE trials with finite values: numbers, params (a column each), values."""

    numbers: np.ndarray
    params: pd.DataFrame
    values: np.ndarray
    seconds: np.ndarray

    @classmethod
    def of(cls, trials: pd.DataFrame, k: int) -> _Trials:
        n = len(trials)
        if "params" in trials:
            params = pd.DataFrame([dict(p or {}) for p in trials["params"]], index=range(n))
        else:
            cols = [c for c in trials.columns if str(c).startswith("params_")]
            params = trials[cols].set_axis([str(c)[7:] for c in cols], axis=1)
        values = _values(trials, k)
        state = trials["state"] if "state" in trials else pd.Series(["COMPLETE"] * n)
        done = np.array([getattr(s, "name", s) == "COMPLETE" for s in state], dtype=bool)
        keep = done & np.isfinite(values).all(axis=1)
        if "seconds" in trials:
            seconds = pd.to_numeric(trials["seconds"], errors="coerce").to_numpy(np.float64)
        elif "duration" in trials:
            seconds = pd.to_timedelta(trials["duration"]).dt.total_seconds().to_numpy()
        else:
            seconds = np.full(n, np.nan)
        numbers = trials["number"].to_numpy() if "number" in trials else np.arange(n)
        return cls(numbers=numbers[keep].astype(np.int64),
                   params=params.reset_index(drop=True)[keep].reset_index(drop=True),
                   values=values[keep], seconds=seconds[keep])  # fmt: skip


def _values(trials: pd.DataFrame, k: int) -> np.ndarray:
    """An n x k float matrix of the trials' objective values (NaN where missing)."""
    if "values" in trials:
        rows = [
            list(v) if isinstance(v, Sequence | np.ndarray) else [math.nan] * k
            for v in trials["values"]
        ]
    elif "value" in trials and k == 1:
        rows = [[v] for v in trials["value"]]
    elif all(f"values_{j}" in trials for j in range(k)):
        rows = trials[[f"values_{j}" for j in range(k)]].to_numpy().tolist()
    else:
        raise ValidationError(
            "trials need a 'values' column (or Optuna's 'value' / 'values_<k>')", field="trials"
        )
    for i, row in enumerate(rows):
        if len(row) != k:
            raise ValidationError(
                f"trial row {i} has {len(row)} values for {k} objectives", field="trials"
            )
    return np.array(rows, dtype=np.float64).reshape(len(rows), k)


def _header(summary: OptimizationSummary) -> str:
    s = summary
    shown = ", ".join(s.instruments[:10])
    if len(s.instruments) > 10:
        shown += f" and {len(s.instruments) - 10} more"
    span = f"{s.start or '…'} to {s.end or '…'}" if s.start or s.end else "all bars"
    goals = ", ".join(f"{d} {m}" for m, d in s.objectives)
    run = [f"{s.n_complete:,} complete, {s.n_failed:,} failed trials"]
    if s.seconds is not None:
        run.append(f"in {s.seconds:,.1f} s")
    if s.trials_per_second is not None:
        run.append(f"({s.trials_per_second:,.1f} trials/s")
        run[-1] += ")" if s.overhead is None else f", overhead {s.overhead * 100:.0f} %)"
    verdict = s.verdict or "No overfitting verdict: the statistics were not computed."
    return (
        f"<h1>{_esc(s.study_name)}</h1><div class='sub'>{_esc(s.strategy)} · "
        f"{len(s.instruments)} instrument{'s' * (len(s.instruments) != 1)}"
        f"{': ' + _esc(shown) if shown else ''} · {_esc(s.bar_size or '?')} bars · "
        f"{_esc(span)} · sampler {_esc(s.sampler or '?')} · {_esc(goals)}</div>"
        f"<div class='verdict {_mood(s.overfitting)}' id='verdict'>{_esc(verdict)}</div>"
        f"<div class='sub' id='run'>{_esc(' '.join(run))}</div>"
    )


def _mood(stats: OverfittingSummary | None) -> str:
    if stats is None or stats.dsr is None:
        return "neutral"
    overfit = stats.pbo is not None and stats.pbo >= 0.5
    return "good" if stats.dsr >= 0.95 and not overfit else "bad"


def _rows(header: Sequence[str], rows: Sequence[Sequence[str]], *, id_: str, text: int = 1) -> str:
    """A list table; the first ``text`` columns are left-aligned. Cells are trusted HTML."""

    def row(cells: Sequence[str], tag: str) -> str:
        left = f"<{tag} class='text'>"
        return "".join(
            f"{left if i < text else f'<{tag}>'}{c}</{tag}>" for i, c in enumerate(cells)
        )

    body = "".join(f"<tr>{row(r, 'td')}</tr>" for r in rows)
    return f"<table class='list' id='{id_}'><tr>{row(header, 'th')}</tr>{body}</table>"


def _best(summary: OptimizationSummary) -> list[str]:
    if summary.multi_objective:
        front = summary.pareto[:TOP_TRIALS]
        names = sorted({k for p in front for k in p["params"]})
        rows = [[str(p.get("number", "")), *(_text(p["params"].get(n)) for n in names),
                 *(_text(v) for v in p["values"])] for p in front]  # fmt: skip
        metrics = [m for m, _ in summary.objectives]
        return [
            f"<h2>Pareto front ({len(summary.pareto)} trials)</h2>",
            _rows(["Trial", *map(_esc, names), *map(_esc, metrics)], rows, id_="best"),
        ]
    if summary.best_params is None:
        return ["<h2>Best parameters</h2><p class='note' id='best'>No complete trial.</p>"]
    rows = [[_esc(k), _text(v)] for k, v in summary.best_params.items()]
    values = zip(summary.objectives, summary.best_values or (), strict=False)
    rows += [[f"<b>{_esc(m)}</b>", f"<b>{_text(v)}</b>"] for (m, _), v in values]
    return ["<h2>Best parameters</h2>", _rows(["Parameter", "Value"], rows, id_="best")]


def heatmap_params(params: pd.DataFrame, importance: Mapping[str, float]) -> list[str]:
    """Return the (up to two) parameters the heatmap draws: the most important numeric ones,
    then the numeric ones in column order. Numeric: numbers (not booleans), finite, with at
    least two distinct values."""
    numeric = [str(c) for c in params.columns if _numeric(params[c])]
    ranked = sorted((p for p in importance if p in numeric), key=lambda p: -importance[p])
    return (ranked + [p for p in numeric if p not in ranked])[:2]


def _numeric(column: pd.Series) -> bool:
    values = column.tolist()
    ok = all(isinstance(v, int | float | np.number) and not isinstance(v, bool | np.bool_)
             and math.isfinite(v) for v in values)  # fmt: skip
    return ok and len(set(values)) >= 2


def _heatmap(summary: OptimizationSummary, table: _Trials) -> list[str]:
    metric, direction = summary.objectives[0]
    names = heatmap_params(table.params, summary.importance)
    if len(names) < 2:
        return [
            "<h2>Objective over two parameters</h2><p class='note' id='heatmap-note'>No "
            "heatmap: it needs two numeric parameters that vary among the complete trials.</p>"
        ]
    x, y = (table.params[n].to_numpy(np.float64) for n in names)
    grid = charts.grid_of(x, y, table.values[:, 0], direction=direction)
    best = "highest" if direction == "maximize" else "lowest"
    return [
        f"<h2>{_esc(metric)} over {_esc(names[0])} and {_esc(names[1])}</h2>"
        f"<p class='note'>Each cell shows the {best} {_esc(metric)} among the trials in it "
        f"({len(grid.cells)} cells of {len(table.numbers)} trials).</p>",
        charts.heatmap(grid, x_name=names[0], y_name=names[1], metric=metric, direction=direction),
    ]


def _trial_chart(table: _Trials, k: int, *, metric: str, direction: str) -> str:
    if not len(table.numbers):
        return "<p class='note'>No complete trial.</p>"
    return charts.trial_chart(
        f"trials-{k}", table.numbers, table.values[:, k], metric=metric, direction=direction
    )


def _pareto(summary: OptimizationSummary, table: _Trials) -> list[str]:
    metrics = [m for m, _ in summary.objectives[:2]]
    front = np.array([p["values"][:2] for p in summary.pareto], dtype=np.float64).reshape(-1, 2)
    front = front[np.isfinite(front).all(axis=1)]
    if not len(table.numbers):
        return ["<h2>Pareto front</h2><p class='note' id='pareto'>No complete trial.</p>"]
    chart = charts.pareto_chart(
        table.values[:, :2],
        front,
        metrics=metrics,
        directions=[d for _, d in summary.objectives[:2]],
    )
    title = f"Pareto front: {_esc(metrics[0])} and {_esc(metrics[1])}"
    return [f"<h2 id='pareto-title'>{title}</h2>", chart]


def _importance(summary: OptimizationSummary) -> list[str]:
    head = "<h2>Parameter importance</h2>"
    if not summary.importance:
        return [head + "<p class='note' id='importance-note'>Not computed.</p>"]
    shares = sorted(summary.importance.items(), key=lambda kv: -kv[1])
    return [head, charts.bars_chart(shares)]


def _walk_forward(wf: WalkForwardSummary) -> list[str]:
    out = ["<h2 id='walk-forward'>Walk-forward</h2>"]
    wfe = "undefined" if wf.wfe is None else f"{wf.wfe:.2f}"
    out.append(f"<p class='note'>{len(wf.folds)} folds · walk-forward efficiency {wfe} "
               "(mean annualized out-of-sample return / in-sample).</p>")  # fmt: skip
    if wf.equity:
        index = pd.DatetimeIndex([pd.Timestamp(t) for t, _ in wf.equity])
        curve = pd.Series([v for _, v in wf.equity], index=index, dtype=np.float64)
        out.append(time_chart("wf-equity", [("Out-of-sample equity", curve, COLORS["equity"])],
                              y_label="Account value"))  # fmt: skip
    if wf.folds:
        keys = list(dict.fromkeys(k for row in wf.folds for k in row))
        rows = [[_fold_cell(k, row.get(k)) for k in keys] for row in wf.folds]
        out.append(_rows([_esc(k) for k in keys], rows, id_="folds", text=0))
    return out


def _fold_cell(key: str, value: Any) -> str:
    if key == "params" and isinstance(value, Mapping):
        return _esc(", ".join(f"{k}={v}" for k, v in value.items()))
    if key.endswith(("_first", "_last")) and isinstance(value, str):
        try:
            t = pd.Timestamp(value)
        except ValueError:
            return _esc(value)
        return _esc(f"{t:%Y-%m-%d}" if t == t.normalize() else f"{t:%Y-%m-%d %H:%M}")
    return _text(value)


def _overfitting(stats: OverfittingSummary | None) -> list[str]:
    head = "<h2>Overfitting statistics</h2>"
    if stats is None:
        return [head + "<p class='note' id='overfitting'>Not computed.</p>"]
    sr = _text(stats.sr) + ("" if stats.sr_annual is None else f" ({stats.sr_annual:.2f} a year)")
    rows = [["Best Sharpe (per period)", sr, _EXPLAIN["sr"]]]
    for key, label in (("dsr", "DSR"), ("psr", "PSR"), ("sr0", "SR0")):
        rows.append([label, _text(getattr(stats, key)), _EXPLAIN[key]])
    rows.append(["Trials", _text(stats.n_trials), "Trials the best was chosen from."])
    for key, label in (("pbo", "PBO"), ("prob_oos_loss", "P(OOS loss)"),
                       ("degradation_slope", "Degradation slope")):  # fmt: skip
        rows.append([label, _text(getattr(stats, key)), _EXPLAIN[key]])
    rows.append(["MinTRL", _min_trl(stats), _EXPLAIN["min_trl"]])
    cells = [[_esc(a), b, _esc(c)] for a, b, c in rows]
    return [head, _rows(["Statistic", "Value", "What it says"], cells, id_="overfitting")]


def _min_trl(stats: OverfittingSummary) -> str:
    seen = "" if stats.n_obs is None else f" (of {stats.n_obs:,} observed)"
    if stats.min_trl is not None:
        return f"{math.ceil(stats.min_trl):,}{seen}"
    if stats.sr is not None and stats.sr0 is not None and stats.sr <= stats.sr0:
        return f"∞: the best Sharpe does not beat SR0{seen}"
    return "–"


def _top_trials(summary: OptimizationSummary, table: _Trials) -> list[str]:
    metric, direction = summary.objectives[0]
    sign = -1.0 if direction == "maximize" else 1.0
    order = np.argsort(sign * table.values[:, 0], kind="stable")[:TOP_TRIALS]
    names = [str(c) for c in table.params.columns]
    rows = [[str(int(table.numbers[i])), *(_text(table.params.iloc[i][n]) for n in names),
             *(_text(v) for v in table.values[i]), _text(table.seconds[i])]
            for i in order]  # fmt: skip
    header = ["Trial", *map(_esc, names), *(_esc(m) for m, _ in summary.objectives), "Seconds"]
    title = f"Top {len(order)} of {len(table.numbers)} complete trials by {_esc(metric)}"
    return [f"<h2>{title}</h2>", _rows(header, rows, id_="top-trials", text=0)]
