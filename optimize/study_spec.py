"""The study spec: a backtest spec plus what to search, under which constraints, for what.

Plain JSON, like the backtest spec (whose fields it shares and checks with
:func:`optimize.backtest_spec.parse_spec`)::

    {
      "name": "sma-asx-2024",
      "strategy": "sma_cross", "params": {"allow_short": false},
      "instruments": ["BHP.ASX", "CBA.ASX"], "bar_size": "1d",
      "start": "2020-01-01", "end": "2025-01-01",
      "costs": {"commission": "ibkr", "slippage_bps": 2},
      "space": {"fast": {"low": 5, "high": 50, "step": 5}, "slow": {"low": 20, "high": 200}},
      "constraints": ["fast < slow", "slow <= 150"],
      "objectives": [{"metric": "sharpe", "direction": "maximize"}],
      "sampler": "tpe", "trials": 500, "seed": 7
    }

* ``name``: the Optuna study's name; running a spec of an existing name resumes it.
* ``params``: parameters held fixed (defaults fill the rest that are not searched).
* ``space``: per parameter ``{"low", "high", "step"}`` (inside the strategy's typed range;
  ``step`` defaults to the typed step for integers and to continuous for reals),
  ``{"values": [...]}`` (categorical), or a plain value (fixed). Without ``space``, every
  int and float parameter not in ``params`` is searched over its typed range.
* ``constraints``: strings ``NAME|NUMBER OP NAME|NUMBER`` with OP one of
  ``< <= > >= != ==`` (``"fast < slow"``, ``"period >= 5"``); the strategy's own check
  applies too.
* ``objectives``: ``{"metric", "direction"}`` with a metric of ``run_batch``'s table
  (:data:`METRICS`); the direction defaults to maximize (minimize for volatility-like
  metrics). Several objectives make a multi-objective study. Default: maximize sharpe.
* ``sampler``: ``grid`` (every feasible point; ``trials`` takes a seeded subset), ``random``,
  ``tpe`` (default), ``cmaes`` (one objective only), ``nsga2`` (several objectives only).
* ``trials``: COMPLETE trials wanted (default 100; for grid, the feasible points).
* ``seed``: makes samplers and random draws repeatable.
* ``pruning``: ``{"folds": 4, "pruner": "median", "startup_trials": 10, "warmup_folds": 1}``
  (tpe or cmaes, one objective): the date range is cut into ``folds`` consecutive periods of
  equal bars, each backtested with the history before it that the strategy's warm-up needs
  at the space's largest values (its indicators are warm at the fold's first bar and a
  position opened before carries in) and scored on its own bars; a trial's objective is the
  mean over the folds,
  and it runs fold by fold while Optuna's ``MedianPruner`` compares its running mean with
  the other trials' at the same fold, stopping a poor trial (PRUNED, with the folds it ran)
  before its later folds cost anything. ``trials`` then counts COMPLETE and pruned trials,
  as Optuna's ``n_trials`` does.

A sweep runs each instrument on its own account (``run_batch``); ``options.mode`` must be
``per_instrument``. Every bad field is a :class:`~core.errors.ValidationError` whose
``field`` is its path (``space.fast``, ``constraints.0``, ``objectives.1.metric``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from core.errors import ParameterError, ValidationError
from optimize import spec_checks as check
from optimize.backtest_spec import BacktestSpec, parse_spec
from optimize.sweep_space import (
    MAX_GRID,
    Constraint,
    Dimension,
    grid_size,
    parse_constraints,
    parse_space,
)
from strategies.metrics import BATCH_KEYS

STUDY_KEYS = (
    "name", "space", "constraints", "objectives", "sampler", "trials", "seed", "pruning",
)  # fmt: skip
SAMPLERS = ("grid", "random", "tpe", "cmaes", "nsga2")
DIRECTIONS = ("maximize", "minimize")
METRICS = (*BATCH_KEYS, "n_trades", "win_rate_pct", "profit_factor")
"""The metrics an objective may name: the columns of ``run_batch``'s table."""
MINIMIZED = frozenset({"volatility_pct"})
"""Metrics whose objective defaults to minimize."""
MAX_TRIALS = 1_000_000
MAX_NAME = 500
MAX_FOLDS = 20
PRUNERS = ("median",)
PRUNING_KEYS = ("folds", "pruner", "startup_trials", "warmup_folds")


@dataclass(frozen=True, slots=True, kw_only=True)
class Pruning:
    """Fold-by-fold evaluation with a pruner (see the module docstring).

    Attributes:
        folds: Consecutive periods of the date range, each backtested on its own bars.
        pruner: ``median``: Optuna's MedianPruner.
        startup_trials: Trials that always run every fold (the pruner's reference).
        warmup_folds: Folds every trial runs before it may be pruned.
    """

    folds: int = 4
    pruner: str = "median"
    startup_trials: int = 10
    warmup_folds: int = 1

    def to_json(self) -> dict[str, Any]:
        return {
            "folds": self.folds,
            "pruner": self.pruner,
            "startup_trials": self.startup_trials,
            "warmup_folds": self.warmup_folds,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Objective:
    """One metric to optimize, averaged over the instruments."""

    metric: str
    direction: str = "maximize"


@dataclass(frozen=True, slots=True, kw_only=True)
class StudySpec:
    """A checked study spec (build it with :func:`parse_study`).

    Attributes:
        name: The Optuna study name (resumable).
        backtest: The shared fields as a backtest spec; its ``params`` are the fixed ones
            plus defaults.
        fixed: The parameters held fixed (given in ``params`` or as plain values in
            ``space``), every non-searched parameter resolved.
        space: The searched dimensions by parameter name.
        constraints: The spec's constraints (the strategy's own check is separate).
        objectives: What to optimize; several make a multi-objective study.
        sampler: ``grid``, ``random``, ``tpe``, ``cmaes`` or ``nsga2``.
        trials: COMPLETE trials wanted in the study (None for grid: every feasible point);
            with ``pruning``, COMPLETE and pruned trials.
        seed: Seed of samplers and random draws.
        pruning: Fold-by-fold evaluation with a pruner, or None (one run over the range).
    """

    name: str
    backtest: BacktestSpec
    fixed: dict[str, Any] = field(default_factory=dict)
    space: dict[str, Dimension] = field(default_factory=dict)
    constraints: tuple[Constraint, ...] = ()
    objectives: tuple[Objective, ...] = (Objective(metric="sharpe"),)
    sampler: str = "tpe"
    trials: int | None = 100
    seed: int | None = None
    pruning: Pruning | None = None

    @property
    def directions(self) -> list[str]:
        """Optuna's study directions, one per objective."""
        return [o.direction for o in self.objectives]

    def to_json(self) -> dict[str, Any]:
        """The spec as JSON data; ``parse_study(spec.to_json()) == spec``."""
        out = self.backtest.to_json()
        if "params" in out:
            out["params"] = dict(self.fixed)
        out |= {
            "name": self.name,
            "space": {n: d.to_json() for n, d in self.space.items()},
            "constraints": [str(c) for c in self.constraints],
            "objectives": [{"metric": o.metric, "direction": o.direction} for o in self.objectives],
            "sampler": self.sampler,
            "trials": self.trials,
            "seed": self.seed,
        }
        if self.pruning is not None:  # absent otherwise: older studies keep their fingerprint
            out["pruning"] = self.pruning.to_json()
        return out

    def fingerprint(self) -> str:
        """What must match for a run to resume a study (everything but ``trials``)."""
        data = self.to_json()
        data.pop("trials")
        return json.dumps(data, sort_keys=True, default=str)


def parse_study(data: Mapping[str, Any] | str | bytes) -> StudySpec:
    """Check a study spec (a mapping or JSON text) and return it; nothing is stored.

    Raises:
        ValidationError: a bad field, named by its path, with the fix in the message.
        ParameterError: a strategy parameter unknown (with "did you mean") or out of range.
    """
    spec = check.json_object(
        data, what="study spec", holds="name, strategy, instruments, space, ..."
    )
    check.check_json(spec, what="the study spec", field="spec", limit=check.MAX_SPEC_BYTES)
    shared = {k: v for k, v in spec.items() if k not in STUDY_KEYS}
    given = check.section(spec, "params")
    backtest = parse_spec({**shared, "params": {}})
    if backtest.options.mode != "per_instrument":
        raise ValidationError(
            "a study runs each instrument on its own account (run_batch): leave out "
            "options.mode or write per_instrument",
            field="options.mode",
        )
    strategy = backtest.build_strategy()
    params = _fixed(strategy, given)
    space, also_fixed = parse_space(strategy, spec.get("space"), fixed=params)
    fixed = {
        name: {**params, **also_fixed}.get(name, p.default)
        for name, p in strategy.params.items()
        if name not in space
    }
    if not space:
        raise ValidationError(
            f"nothing to search: {strategy.name} has no int or float parameter left out of "
            "params (a rule spec's numbers are part of its rules); name one in space",
            field="space",
        )
    objectives = _objectives(spec.get("objectives"))
    sampler = check.choice(spec.get("sampler", "tpe"), SAMPLERS, field="sampler")
    _check_sampler(sampler, objectives, space)
    pruning = _pruning(spec.get("pruning"), sampler, objectives)
    return StudySpec(
        name=_name(spec.get("name")),
        backtest=replace(backtest, params=dict(fixed)),
        fixed=fixed,
        space=space,
        constraints=parse_constraints(spec.get("constraints"), names=list(strategy.params)),
        objectives=objectives,
        sampler=sampler,
        trials=_trials(spec.get("trials"), sampler),
        seed=_seed(spec.get("seed")),
        pruning=pruning,
    )


def _fixed(strategy: Any, given: Mapping[str, Any]) -> dict[str, Any]:
    """Check each fixed parameter on its own (the searched ones are not known yet, so the
    strategy's constraint is checked per trial, not here)."""
    out = {}
    for name, value in given.items():
        if name not in strategy.params:
            try:
                strategy.resolve({name: value})
            except ValidationError as exc:
                raise check.remap(exc) from None
        try:
            out[name] = strategy.params[name].validate(strategy.name, name, value)
        except ValidationError as exc:
            raise ParameterError(exc.message, field=f"params.{name}") from None
    return out


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(
            "name the study (name: e.g. 'sma-asx-2024'); running it again resumes it",
            field="name",
        )
    if len(value.strip()) > MAX_NAME:
        raise ValidationError(f"name is longer than {MAX_NAME} characters", field="name")
    return value.strip()


def _objectives(raw: Any) -> tuple[Objective, ...]:
    if raw is None:
        return (Objective(metric="sharpe"),)
    if not isinstance(raw, list) or not raw:
        raise ValidationError(
            'objectives must be a non-empty list like [{"metric": "sharpe", "direction": '
            '"maximize"}]',
            field="objectives",
        )
    out: list[Objective] = []
    for i, entry in enumerate(raw):
        where = f"objectives.{i}"
        if not isinstance(entry, Mapping):
            raise ValidationError(f'{where} must be {{"metric": .., "direction": ..}}', field=where)
        check.known_keys(entry, ("metric", "direction"), prefix=f"{where}.")
        metric = check.choice(entry.get("metric"), METRICS, field=f"{where}.metric")
        default = "minimize" if metric in MINIMIZED else "maximize"
        direction = check.choice(
            entry.get("direction", default), DIRECTIONS, field=f"{where}.direction"
        )
        if any(o.metric == metric for o in out):
            raise ValidationError(f"{where} repeats metric {metric}", field=f"{where}.metric")
        out.append(Objective(metric=metric, direction=direction))
    return tuple(out)


def _check_sampler(
    sampler: str, objectives: tuple[Objective, ...], space: Mapping[str, Dimension]
) -> None:
    many = len(objectives) > 1
    if sampler == "cmaes" and many:
        raise ValidationError(
            "cmaes optimizes one objective; use nsga2 (or tpe) for several", field="sampler"
        )
    if sampler == "nsga2" and not many:
        raise ValidationError(
            "nsga2 is for several objectives; use tpe or cmaes for one", field="sampler"
        )
    if sampler != "grid":
        return
    for name, dim in space.items():
        if dim.kind == "float" and not dim.step:
            raise ValidationError(
                f"a grid needs a step for real parameter {name}: add space.{name}.step, or "
                "give values",
                field=f"space.{name}",
            )
    size = grid_size(space)
    if size > MAX_GRID:
        raise ValidationError(
            f"the grid has {size:,.0f} points; the limit is {MAX_GRID:,}: use larger steps, "
            "or sampler random/tpe",
            field="space",
        )


def _trials(value: Any, sampler: str) -> int | None:
    if value is None:
        return None if sampler == "grid" else 100
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TRIALS:
        raise ValidationError(
            f"trials must be a whole number in [1, {MAX_TRIALS:,}], got {value!r}",
            field="trials",
        )
    return value


def _seed(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise ValidationError(
            f"seed must be a whole number in [0, 2**32), got {value!r}", field="seed"
        )
    return value


def _pruning(raw: Any, sampler: str, objectives: tuple[Objective, ...]) -> Pruning | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ValidationError(
            'pruning must be an object, e.g. {"folds": 4, "pruner": "median"}', field="pruning"
        )
    check.known_keys(raw, PRUNING_KEYS, prefix="pruning.")
    if sampler not in ("tpe", "cmaes"):
        raise ValidationError(
            f"pruning stops trials a model sampler asked for; sampler {sampler} draws its "
            "points up front: use sampler tpe or cmaes, or leave out pruning",
            field="pruning",
        )
    if len(objectives) > 1:
        raise ValidationError(
            "pruning compares one objective across trials; give one objective, or leave out "
            "pruning",
            field="pruning",
        )
    folds = _whole(raw.get("folds", 4), 2, MAX_FOLDS, "pruning.folds")
    out = Pruning(
        folds=folds,
        pruner=check.choice(raw.get("pruner", "median"), PRUNERS, field="pruning.pruner"),
        startup_trials=_whole(
            raw.get("startup_trials", 10), 0, MAX_TRIALS, "pruning.startup_trials"
        ),
        warmup_folds=_whole(raw.get("warmup_folds", 1), 0, folds - 1, "pruning.warmup_folds"),
    )
    return out


def _whole(value: Any, low: int, high: int, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(
            f"{where} must be a whole number in [{low}, {high}], got {value!r}", field=where
        )
    return value
