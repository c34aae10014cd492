"""What an optimization report shows, as plain data the catalog can store as JSON.

:class:`OptimizationSummary` holds a study's description, its run, its best trial (or Pareto
front), the parameter importances, the overfitting statistics
(:class:`OverfittingSummary`) and an optional walk-forward (:class:`WalkForwardSummary`).
``to_dict()`` gives JSON-able data (NaN and infinities become None) and ``from_dict()``
reads it back, checking every field, so a report can be rendered on demand from what was
stored. The trials themselves travel beside it as a DataFrame (see
:func:`optimize.optimization_report.render_optimization_report`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from core.errors import ValidationError
from optimize import spec_checks as check
from optimize.cscv import PBOResult
from optimize.overfitting import DeflatedSharpe, min_track_record_length, probabilistic_sharpe
from optimize.stat_checks import whole_number
from optimize.walkforward import WalkForwardResult

__all__ = ["OptimizationSummary", "OverfittingSummary", "WalkForwardSummary", "plain"]

DIRECTIONS = ("maximize", "minimize")
_FOLD_COLUMNS = (
    "fold", "is_first", "is_last", "oos_first", "oos_last", "params", "is_metric",
    "oos_metric", "is_return_ann", "oos_return_ann", "trials",
)  # fmt: skip


def plain(value: Any) -> Any:
    """Return ``value`` as JSON-able data: mappings as dicts, sequences as lists, numpy
    scalars as Python ones, timestamps as ISO strings, NaN and infinities as None."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date | pd.Timestamp):
        return value.isoformat()
    return value


def _optional_float(value: Any, *, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ValidationError(f"{field} must be a number or null, got {value!r}", field=field)
    out = float(value)
    return out if math.isfinite(out) else None


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)  # normalising a frozen dataclass in __post_init__


def _floats_in(obj: Any, names: Sequence[str]) -> None:
    for name in names:
        _set(obj, name, _optional_float(getattr(obj, name), field=name))


@dataclass(frozen=True, slots=True, kw_only=True)
class OverfittingSummary:
    """How much of the best result is luck; every statistic may be None (not computed).

    Attributes:
        sr: The best trial's per-period Sharpe ratio.
        sr_annual: The same, annualized.
        dsr: Deflated Sharpe ratio: P(true Sharpe > sr0).
        psr: Probabilistic Sharpe ratio: P(true Sharpe > 0).
        sr0: Expected maximum per-period Sharpe ratio of ``n_trials`` skill-less trials.
        n_trials: Trials the best was chosen from.
        n_obs: Returns behind ``sr``.
        pbo: Probability of backtest overfitting (CSCV).
        prob_oos_loss: Share of CSCV splits where the in-sample best loses out of sample.
        degradation_slope: Slope of out-of-sample on in-sample Sharpe over the splits.
        min_trl: Returns needed for the best Sharpe to beat ``sr0`` at 95 % (None when it
            never would or was not computed).
    """

    sr: float | None = None
    sr_annual: float | None = None
    dsr: float | None = None
    psr: float | None = None
    sr0: float | None = None
    n_trials: float | None = None
    n_obs: int | None = None
    pbo: float | None = None
    prob_oos_loss: float | None = None
    degradation_slope: float | None = None
    min_trl: float | None = None

    def __post_init__(self) -> None:
        _floats_in(self, [f.name for f in dataclasses.fields(self) if f.name != "n_obs"])
        if self.n_obs is not None:
            _set(self, "n_obs", whole_number(self.n_obs, field="n_obs", least=1))

    @classmethod
    def from_results(
        cls,
        deflated: DeflatedSharpe,
        *,
        pbo: PBOResult | None = None,
        periods_per_year: float | None = None,
    ) -> OverfittingSummary:
        """Summarize :func:`~optimize.overfitting.deflated_sharpe` and
        :func:`~optimize.cscv.pbo` results (PSR against 0, MinTRL against SR0 at 95 %)."""
        d = deflated
        moments = {"skew": d.skew, "kurt": d.kurt}
        return cls(
            sr=d.sr,
            sr_annual=None if periods_per_year is None else d.sr * math.sqrt(periods_per_year),
            dsr=d.dsr,
            psr=probabilistic_sharpe(d.sr, 0.0, n_obs=d.n_obs, **moments),
            sr0=d.sr0,
            n_trials=d.n_trials,
            n_obs=d.n_obs,
            pbo=None if pbo is None else pbo.pbo,
            prob_oos_loss=None if pbo is None else pbo.prob_oos_loss,
            degradation_slope=None if pbo is None else pbo.degradation_slope,
            min_trl=min_track_record_length(d.sr, d.sr0, **moments),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class WalkForwardSummary:
    """A walk-forward of the study's choice, as plain data.

    Attributes:
        folds: One row per fold (``fold``, ``is_first`` ... ``oos_last`` as ISO strings,
            ``params``, ``is_metric``, ``oos_metric``, ``is_return_ann``,
            ``oos_return_ann``, ``trials``); any subset of those keys.
        equity: The stitched out-of-sample equity, ``(ISO timestamp, value)`` per bar.
        wfe: Walk-forward efficiency (None when undefined).
        metric: The name of ``is_metric`` and ``oos_metric``.
    """

    folds: tuple[dict[str, Any], ...] = ()
    equity: tuple[tuple[str, float], ...] = ()
    wfe: float | None = None
    metric: str | None = None

    def __post_init__(self) -> None:
        _set(self, "folds", tuple(plain(dict(row)) for row in self.folds))
        points = []
        for k, point in enumerate(self.equity):
            if not isinstance(point, list | tuple) or len(point) != 2:
                raise ValidationError(
                    f"equity.{k} must be a [timestamp, value] pair", field=f"equity.{k}"
                )
            value = _optional_float(point[1], field=f"equity.{k}")
            points.append((str(plain(point[0])), math.nan if value is None else value))
        _set(self, "equity", tuple(points))
        _floats_in(self, ["wfe"])

    @classmethod
    def from_result(cls, result: WalkForwardResult) -> WalkForwardSummary:
        """Summarize a :func:`~optimize.walkforward.walk_forward` result."""
        rows = result.folds[[c for c in _FOLD_COLUMNS if c in result.folds]]
        return cls(
            folds=tuple(plain(row) for row in rows.to_dict("records")),
            equity=tuple(zip(result.equity.index, result.equity.to_numpy(), strict=True)),
            wfe=result.wfe,
            metric=result.metric,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class OptimizationSummary:
    """Everything an optimization report shows besides the trials themselves.

    Attributes:
        study_name: The Optuna study.
        strategy: The strategy searched.
        instruments: The instruments it ran on.
        bar_size: E.g. ``"1d"``.
        start: First date of the bars (ISO), if limited.
        end: Last date of the bars (ISO), if limited.
        sampler: ``grid``, ``random``, ``tpe``, ``cmaes`` or ``nsga2``.
        objectives: ``(metric, direction)`` per objective, in the trials' value order.
        n_complete: COMPLETE trials.
        n_failed: FAIL trials.
        n_pruned: Trials the pruner stopped after some folds (``pruning``).
        seconds: Wall time of the run.
        trials_per_second: Trials evaluated per second of wall time.
        overhead: The share of worker time not spent backtesting (0..1).
        best_params: The best trial's parameters (single objective).
        best_values: Its objective values.
        pareto: Multi-objective: the front, ``{"params", "values"}`` (and ``"number"``) each.
        importance: Share of the objective's variance per parameter (may be empty).
        overfitting: The overfitting statistics, when computed.
        verdict: The one-line verdict (:func:`optimize.overfitting.verdict`).
        walk_forward: A walk-forward of the choice, when run.
    """

    study_name: str
    strategy: str
    instruments: tuple[str, ...] = ()
    bar_size: str = ""
    start: str | None = None
    end: str | None = None
    sampler: str = ""
    objectives: tuple[tuple[str, str], ...] = (("sharpe", "maximize"),)
    n_complete: int = 0
    n_failed: int = 0
    n_pruned: int = 0
    seconds: float | None = None
    trials_per_second: float | None = None
    overhead: float | None = None
    best_params: dict[str, Any] | None = None
    best_values: tuple[float, ...] | None = None
    pareto: tuple[dict[str, Any], ...] = ()
    importance: dict[str, float] = field(default_factory=dict)
    overfitting: OverfittingSummary | None = None
    verdict: str | None = None
    walk_forward: WalkForwardSummary | None = None

    def __post_init__(self) -> None:
        _set(self, "instruments", tuple(str(i) for i in self.instruments))
        _set(self, "objectives", _objectives(self.objectives))
        for name in ("n_complete", "n_failed", "n_pruned"):
            _set(self, name, whole_number(getattr(self, name), field=name, least=0))
        _floats_in(self, ["seconds", "trials_per_second", "overhead"])
        if self.best_params is not None:
            _set(self, "best_params", plain(dict(self.best_params)))
        if self.best_values is not None:
            _set(self, "best_values", _values(self.best_values, field="best_values"))
        _set(self, "pareto", tuple(_point(p, k) for k, p in enumerate(self.pareto)))
        shares = {str(k): _optional_float(v, field=f"importance.{k}") or 0.0
                  for k, v in dict(self.importance).items()}  # fmt: skip
        _set(self, "importance", shares)

    @property
    def multi_objective(self) -> bool:
        """Whether the study has two objectives or more."""
        return len(self.objectives) > 1

    def to_dict(self) -> dict[str, Any]:
        """Return the summary as JSON-able data (``json.dumps`` takes it as is)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in ("overfitting", "walk_forward"):
            if out[name] is not None:
                out[name] = {f.name: getattr(out[name], f.name)
                             for f in dataclasses.fields(out[name])}  # fmt: skip
        result: dict[str, Any] = plain(out)
        return result

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OptimizationSummary:
        """Read what :meth:`to_dict` wrote.

        Raises:
            ValidationError: naming the field: an unknown or missing key, a wrong type.
        """
        if not isinstance(data, Mapping):
            raise ValidationError("the summary must be an object", field="summary")
        names = [f.name for f in dataclasses.fields(cls)]
        check.known_keys(data, names)
        for key in ("study_name", "strategy"):
            if not isinstance(data.get(key), str):
                raise ValidationError(f"{key} must be a string", field=key)
        kwargs = {k: v for k, v in data.items() if v is not None}
        for key in ("instruments", "objectives", "pareto"):
            if key in kwargs and not isinstance(kwargs[key], list | tuple):
                raise ValidationError(f"{key} must be a list", field=key)
        if "overfitting" in kwargs:
            kwargs["overfitting"] = _part(data, "overfitting", OverfittingSummary)
        if "walk_forward" in kwargs:
            kwargs["walk_forward"] = _part(data, "walk_forward", WalkForwardSummary)
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ValidationError(f"the summary does not fit ({exc})", field="summary") from None


def _part(data: Mapping[str, Any], key: str, kind: type[Any]) -> Any:
    part = check.section(data, key)
    check.known_keys(part, [f.name for f in dataclasses.fields(kind)], prefix=f"{key}.")
    if key == "walk_forward" and not isinstance(part.get("folds", ()), list | tuple):
        raise ValidationError("walk_forward.folds must be a list", field="walk_forward.folds")
    return kind(**part)


def _objectives(objectives: Sequence[Any]) -> tuple[tuple[str, str], ...]:
    out = []
    for k, pair in enumerate(objectives):
        metric, direction = (pair, "maximize") if isinstance(pair, str) else tuple(pair)
        if not isinstance(metric, str) or direction not in DIRECTIONS:
            raise ValidationError(
                f"objectives.{k} must be [metric, 'maximize' or 'minimize'], got {pair!r}",
                field=f"objectives.{k}",
            )
        out.append((metric, str(direction)))
    if not out:
        raise ValidationError("objectives is empty: name at least one metric", field="objectives")
    return tuple(out)


def _values(values: Sequence[Any], *, field: str) -> tuple[float, ...]:
    out = []
    for k, v in enumerate(values):
        number = _optional_float(v, field=f"{field}.{k}")
        out.append(math.nan if number is None else number)
    return tuple(out)


def _point(point: Mapping[str, Any], k: int) -> dict[str, Any]:
    if not isinstance(point, Mapping) or not isinstance(point.get("params"), Mapping):
        raise ValidationError(
            f"pareto.{k} must be an object with params and values", field=f"pareto.{k}"
        )
    check.known_keys(point, ("number", "params", "values"), prefix=f"pareto.{k}.")
    out = {"params": plain(dict(point["params"])),
           "values": _values(point.get("values") or (), field=f"pareto.{k}.values")}  # fmt: skip
    if point.get("number") is not None:
        out["number"] = whole_number(point["number"], field=f"pareto.{k}.number", least=0)
    return out
