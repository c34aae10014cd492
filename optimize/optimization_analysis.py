"""What an optimization's best result is worth: overfitting statistics and walk-forward.

After a sweep, :func:`analyse` takes the study's COMPLETE trials and the bars it ran on:

* **Returns of a trial**: each sampled trial's parameters are backtested on every analysed
  instrument (``run_backtest``, the sweep's costs) and its per-bar returns are the
  equal-weight mean over the instruments (bars where an instrument has none count 0). One
  instrument: its returns.
* **Sample**: at most :data:`MAX_TRIALS` trials (all when fewer; else spread evenly over
  the objective's ranking, the best always in) on at most :data:`MAX_INSTRUMENTS`
  instruments (the study's first), so the analysis stays seconds long on big studies.
* **Deflated Sharpe Ratio** of the best trial (Bailey and López de Prado 2014): its
  per-period Sharpe against the best expected from ``n_trials`` skill-less trials, with
  ``n_trials`` the COMPLETE trials actually run and the variance of the sampled trials'
  Sharpe ratios; with the Probabilistic Sharpe Ratio against 0 and the minimum track record.
* **Probability of Backtest Overfitting** by CSCV over the sampled trials' returns matrix
  (16 blocks, fewer on short histories; at most 10,000 of the splits, seeded).
* **Walk-forward** (when asked): on each analysed instrument, rolling or anchored folds
  re-choose the best of the study's candidate parameter sets on the in-sample bars and trade
  it out of sample (:func:`optimize.walkforward.walk_forward`); the stitched out-of-sample
  returns are averaged over the instruments into one equity curve, with the mean
  walk-forward efficiency.

The statistics come as the report's own parts (:mod:`optimize.optimization_summary`), how
they were computed as JSON data beside them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import pandas as pd

from core.errors import ValidationError
from optimize import overfitting
from optimize.cscv import PBOResult
from optimize.optimization_summary import OverfittingSummary, WalkForwardSummary
from optimize.study_spec import StudySpec
from optimize.walkforward import Windows, grid_optimizer, walk_forward
from strategies.engine import run_backtest
from strategies.sizing import bars_per_year

MAX_TRIALS = 200
"""Most trials whose returns are computed for the statistics."""
MAX_INSTRUMENTS = 20
"""Most instruments the statistics and the walk-forward run on."""
MAX_WF_CANDIDATES = 2_000
"""Most candidate parameter sets each walk-forward fold chooses among (the best ones)."""
MAX_SPLITS = 10_000
MAX_BLOCKS = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class WalkForwardSpec:
    """The walk-forward part of a study spec: ``{"in_sample": "2Y", "out_of_sample": "6M",
    "anchored": false}`` (sizes as bar counts or pandas offsets)."""

    in_sample: int | str
    out_of_sample: int | str
    anchored: bool = False

    def to_json(self) -> dict[str, Any]:
        """The spec as JSON data."""
        return {"in_sample": self.in_sample, "out_of_sample": self.out_of_sample,
                "anchored": self.anchored}  # fmt: skip


def parse_walk_forward(raw: Any) -> WalkForwardSpec | None:
    """Check the ``walk_forward`` field of a study spec (None when absent).

    Raises:
        ValidationError: naming ``walk_forward.<key>``.
    """
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ValidationError(
            'walk_forward must be an object, e.g. {"in_sample": "2Y", "out_of_sample": "6M"}',
            field="walk_forward",
        )
    unknown = sorted(set(raw) - {"in_sample", "out_of_sample", "anchored"})
    if unknown:
        raise ValidationError(
            f"walk_forward has no {unknown[0]!r}; it takes in_sample, out_of_sample, anchored",
            field=f"walk_forward.{unknown[0]}",
        )
    sizes: dict[str, int | str] = {}
    for key in ("in_sample", "out_of_sample"):
        value = raw.get(key)
        ok = (isinstance(value, int) and not isinstance(value, bool) and value > 0) or (
            isinstance(value, str) and 0 < len(value) <= 16
        )
        if not ok:
            raise ValidationError(
                f"walk_forward.{key} must be a number of bars (e.g. 504) or a span such as "
                f"'2Y', '6M' or '13W'; got {value!r}",
                field=f"walk_forward.{key}",
            )
        sizes[key] = cast(int | str, value)
    anchored = raw.get("anchored", False)
    if not isinstance(anchored, bool):
        raise ValidationError("walk_forward.anchored must be true or false",
                              field="walk_forward.anchored")  # fmt: skip
    spec = WalkForwardSpec(in_sample=sizes["in_sample"], out_of_sample=sizes["out_of_sample"],
                           anchored=anchored)  # fmt: skip
    try:  # the spans are checked by cutting a ten-year daily index
        Windows(in_sample=spec.in_sample, out_of_sample=spec.out_of_sample,
                anchored=anchored).folds(_TEN_YEARS)  # fmt: skip
    except ValidationError as exc:
        raise ValidationError(str(exc), field=f"walk_forward.{exc.field or 'in_sample'}") from None
    return spec


_TEN_YEARS = pd.date_range("2010-01-01", periods=2520, freq="B", tz="UTC")


def complete_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """The COMPLETE trials of a trials table, with a finite first objective value."""
    done = trials[trials["state"] == "COMPLETE"].copy()
    done["objective"] = [float(v[0]) if v else math.nan for v in done["values"]]
    finite: pd.DataFrame = done[np.isfinite(done["objective"])]
    return finite


def sample(done: pd.DataFrame, direction: str, *, limit: int = MAX_TRIALS) -> pd.DataFrame:
    """At most ``limit`` trials spread evenly over the ranking by the objective; best first."""
    ranked = done.sort_values("objective", ascending=direction == "minimize", kind="stable")
    if len(ranked) <= limit:
        return ranked
    picks = np.unique(np.linspace(0, len(ranked) - 1, limit).round().astype(int))
    return ranked.iloc[picks]


def trial_returns(
    spec: StudySpec,
    params: Sequence[Mapping[str, Any]],
    frames: Mapping[str, pd.DataFrame],
    currencies: Mapping[str, str],
) -> pd.DataFrame:
    """One column per parameter set: its equal-weight mean per-bar returns over ``frames``."""
    strategy = spec.backtest.build_strategy()
    columns = []
    for one in params:
        full = {**spec.fixed, **one}
        per = []
        for instrument, bars in frames.items():
            kwargs = spec.backtest.engine_kwargs(currency=currencies.get(instrument, "USD"))
            result = run_backtest(bars, strategy, full, **kwargs)
            per.append(result.equity.pct_change().fillna(0.0).rename(instrument))
        columns.append(pd.concat(per, axis=1).fillna(0.0).mean(axis=1))
    table: pd.DataFrame = pd.concat(columns, axis=1, ignore_index=True)
    return table.sort_index()


@dataclass(frozen=True, slots=True, kw_only=True)
class Overfitting:
    """The statistics of the best trial among the sampled ones.

    Attributes:
        deflated: The deflated Sharpe ratio (with the best trial's moments).
        pbo: The CSCV result (None with fewer than two trials or too short a history).
        periods_per_year: The bars' annualization factor.
        verdict: The one-line verdict.
        details: How it was computed (trials sampled, blocks, splits), as JSON data.
    """

    deflated: overfitting.DeflatedSharpe
    pbo: PBOResult | None
    periods_per_year: float
    verdict: str
    details: dict[str, Any]


def overfitting_stats(
    returns: pd.DataFrame, *, n_trials: int, periods_per_year: float
) -> Overfitting:
    """DSR and PBO of the first column (the best trial) among ``returns``."""
    matrix = returns.to_numpy(np.float64)
    best = matrix[:, 0]
    sharpes = [overfitting.sharpe(matrix[:, j]) for j in range(matrix.shape[1])]
    variance = float(np.var(sharpes, ddof=1)) if len(sharpes) > 1 else 0.0
    deflated = overfitting.deflated_sharpe(best, n_trials=max(n_trials, 1), var_sharpe=variance)
    details: dict[str, Any] = {"n_trials": n_trials, "sampled_trials": matrix.shape[1],
                               "n_obs": len(best), "var_sharpe": variance}  # fmt: skip
    result = None
    blocks = min(MAX_BLOCKS, (len(best) // 2) // 2 * 2)
    if matrix.shape[1] >= 2 and blocks >= 2:
        result = overfitting.pbo(matrix, n_blocks=blocks, max_splits=MAX_SPLITS, seed=0)
        details |= {"pbo_blocks": blocks, "pbo_splits": result.n_splits}
    line = overfitting.verdict(deflated, pbo=result, periods_per_year=periods_per_year)
    return Overfitting(deflated=deflated, pbo=result, periods_per_year=periods_per_year,
                       verdict=line, details=details)  # fmt: skip


def walk_forward_stats(
    spec: StudySpec,
    wf: WalkForwardSpec,
    candidates: Sequence[Mapping[str, Any]],
    frames: Mapping[str, pd.DataFrame],
    currencies: Mapping[str, str],
) -> tuple[WalkForwardSummary, dict[str, Any]]:
    """Walk-forward on each instrument over the candidate sets; the mean stitched curve
    (and how it was run, as JSON data)."""
    objective = spec.objectives[0]
    strategy = spec.backtest.build_strategy()
    full = [{**spec.fixed, **c} for c in candidates]
    windows = Windows(in_sample=wf.in_sample, out_of_sample=wf.out_of_sample,
                      anchored=wf.anchored)  # fmt: skip
    returns, folds, wfes = [], [], []
    for instrument, bars in frames.items():
        kwargs = spec.backtest.engine_kwargs(currency=currencies.get(instrument, "USD"))
        direction: Literal["maximize", "minimize"] = (
            "minimize" if objective.direction == "minimize" else "maximize"
        )
        optimizer = grid_optimizer(strategy, full, metric=objective.metric, direction=direction)
        result = walk_forward(bars, strategy, optimizer, windows, **kwargs)
        returns.append(result.returns.rename(instrument))
        if math.isfinite(result.wfe):
            wfes.append(result.wfe)
        for row in result.folds.to_dict("records"):
            folds.append({
                "instrument": instrument, "fold": int(row["fold"]),
                "is_first": str(row["is_first"]), "oos_first": str(row["oos_first"]),
                "oos_last": str(row["oos_last"]), "params": json_params(row["params"]),
                "is_metric": _finite(row["is_metric"]), "oos_metric": _finite(row["oos_metric"]),
            })  # fmt: skip
    mean = pd.concat(returns, axis=1).fillna(0.0).mean(axis=1).sort_index()
    equity = spec.backtest.costs.cash * (1.0 + mean).cumprod()
    step = max(1, len(equity) // 1000)
    curve = [(pd.Timestamp(str(ts)).isoformat(), float(v)) for ts, v in equity.iloc[::step].items()]
    summary = WalkForwardSummary(folds=tuple(folds), equity=tuple(curve),
                                 wfe=float(np.mean(wfes)) if wfes else None,
                                 metric=objective.metric)  # fmt: skip
    details = {
        "windows": wf.to_json(), "instruments": list(frames),
        "oos_return_pct": float((equity.iloc[-1] / spec.backtest.costs.cash - 1) * 100),
        "oos_sharpe": overfitting.sharpe(mean.to_numpy()) * math.sqrt(_ppy(mean.index)),
    }  # fmt: skip
    return summary, details


@dataclass(frozen=True, slots=True, kw_only=True)
class Analysis:
    """What :func:`analyse` found; ``details`` says how, as JSON data."""

    overfitting: OverfittingSummary | None
    verdict: str | None
    walk_forward: WalkForwardSummary | None
    details: dict[str, Any]


def analyse(
    spec: StudySpec,
    trials: pd.DataFrame,
    frames: Mapping[str, pd.DataFrame],
    currencies: Mapping[str, str],
    *,
    walk: WalkForwardSpec | None = None,
    pruned: int = 0,
) -> Analysis:
    """The overfitting statistics (and walk-forward) of a finished sweep.

    ``frames`` maps each instrument the sweep ran on to its bars; without a COMPLETE trial
    there is nothing to analyse (every part None). ``pruned``: trials the pruner stopped;
    they were tried, so the deflated Sharpe counts them among its trials.
    """
    done = complete_trials(trials)
    if done.empty:
        return Analysis(overfitting=None, verdict=None, walk_forward=None, details={})
    analysed = dict(list(frames.items())[:MAX_INSTRUMENTS])
    chosen = sample(done, spec.objectives[0].direction)
    returns = trial_returns(spec, list(chosen["params"]), analysed, currencies)
    ppy = _ppy(returns.index)
    found = overfitting_stats(returns, n_trials=len(done) + pruned, periods_per_year=ppy)
    stats = OverfittingSummary.from_results(found.deflated, pbo=found.pbo, periods_per_year=ppy)
    details: dict[str, Any] = {"instruments_analysed": list(analysed), **found.details,
                               "periods_per_year": ppy}  # fmt: skip
    walked = None
    if walk is not None:
        best = done.sort_values("objective", ascending=spec.objectives[0].direction == "minimize")
        candidates = list(best["params"].iloc[:MAX_WF_CANDIDATES])
        walked, wf_details = walk_forward_stats(spec, walk, candidates, analysed, currencies)
        details["walk_forward"] = wf_details
    return Analysis(overfitting=stats, verdict=found.verdict, walk_forward=walked,
                    details=details)  # fmt: skip


def json_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters as JSON values (numpy scalars made plain)."""
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in params.items()}


def _ppy(index: pd.Index) -> float:
    return float(bars_per_year(index)) if len(index) > 2 else 252.0


def _finite(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None
