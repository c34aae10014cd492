"""What one sweep task does: evaluate a batch of parameter sets on every instrument.

Plain Python (:func:`evaluate`) plus its Ray task (:data:`sweep_task`). The bars come from
the object store (the driver ``ray.put``\\ s each instrument's frame once per sweep and every
task gets the references), so a task reads nothing from disk. For each instrument one
``run_batch`` call evaluates the whole batch; the task returns only the objective metrics,
shaped (sets, instruments, objectives), and the time spent inside ``run_batch``.

The task is a generator: it first reports its worker's pid (so the driver can tell which
process runs it, and a test can kill it mid-batch), then its result.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import ray

from optimize.backtest_spec import BacktestSpec
from strategies.batch import run_batch
from strategies.threads import use_threads

TASK_CPUS = 1.0
"""CPUs a sweep task reserves: run_batch is CPU-bound."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EvalPlan:
    """What every task of one sweep needs (small: it travels with each task).

    Attributes:
        spec: The study's backtest fields (strategy, costs, options).
        fixed: Parameters held fixed; each set adds the searched ones.
        metrics: The objective metrics, in order.
        instruments: The instruments, in the order of the bar references.
        currencies: Each instrument's currency (what ``commission="ibkr"`` prices by).
        folds: With pruning, the consecutive periods each instrument's bars are cut into
            (equal numbers of bars, :func:`fold_bars`); 0: the whole range at once.
        fold_warmup: The bars of history before its fold each fold is backtested with (the
            strategy's warm-up at the space's largest values, :func:`fold_window`).
    """

    spec: BacktestSpec
    fixed: Mapping[str, Any]
    metrics: tuple[str, ...]
    instruments: tuple[str, ...]
    currencies: Mapping[str, str] = field(default_factory=dict)
    folds: int = 0
    fold_warmup: int = 0


def fold_bars(bars: pd.DataFrame, folds: int, fold: int) -> pd.DataFrame:
    """Fold ``fold`` (from 0) of ``folds`` consecutive slices of ``bars`` of (nearly) equal
    length; every bar is in exactly one fold."""
    return fold_window(bars, folds, fold, warmup=0)[0]


def fold_window(
    bars: pd.DataFrame, folds: int, fold: int, *, warmup: int
) -> tuple[pd.DataFrame, int]:
    """Fold ``fold``'s bars (:func:`fold_bars`) preceded by up to ``warmup`` bars of the
    history before it, and the position of the fold's first bar in that window: what
    ``run_batch(window, ..., score_from=start)`` scores, so a fold's indicators are warm at
    its first bar and a position the history opened carries into it, as in one backtest
    over the whole range. The first fold has no history before it."""
    edges = np.linspace(0, len(bars), folds + 1).astype(int)
    first = max(0, int(edges[fold]) - max(0, warmup))
    return bars.iloc[first : edges[fold + 1]], int(edges[fold]) - first


@dataclass(frozen=True, slots=True, kw_only=True)
class EvalOutcome:
    """A batch's result: ``values[i, j, k]`` is metric k of set i on instrument j (NaN
    where undefined, e.g. no trades), ``seconds`` the time inside ``run_batch``."""

    values: np.ndarray
    seconds: float
    worker_pid: int


def evaluate(
    plan: EvalPlan,
    sets: Sequence[Mapping[str, Any]],
    frames: Sequence[Any],
    *,
    fold: int | None = None,
) -> EvalOutcome:
    """Run ``sets`` (searched parameters) on every instrument's bars with ``run_batch``
    (only fold ``fold`` of each instrument's bars, with its history, when given)."""
    strategy = plan.spec.build_strategy()
    full = [{**plan.fixed, **s} for s in sets]
    values = np.full((len(sets), len(frames), len(plan.metrics)), np.nan)
    busy = 0.0
    for j, (instrument, bars) in enumerate(zip(plan.instruments, frames, strict=True)):
        kwargs = plan.spec.engine_kwargs(currency=plan.currencies.get(instrument, "USD"))
        start = 0
        if fold is not None:
            bars, start = fold_window(bars, plan.folds, fold, warmup=plan.fold_warmup)
        began = time.perf_counter()
        table: pd.DataFrame = run_batch(bars, strategy, full, **kwargs, score_from=start)
        busy += time.perf_counter() - began
        values[:, j, :] = table[list(plan.metrics)].to_numpy(np.float64)
    return EvalOutcome(values=values, seconds=busy, worker_pid=os.getpid())


def _task(
    plan: EvalPlan, sets: list[dict[str, Any]], fold: int | None, *frames: Any
) -> Iterator[Any]:
    """Ray generator task: the worker's pid, then the batch's :class:`EvalOutcome`."""
    use_threads(int(TASK_CPUS))  # the CPUs it reserved, not every core of the node
    yield os.getpid()
    yield evaluate(plan, sets, frames, fold=fold)


sweep_task: Any = ray.remote(num_cpus=TASK_CPUS, max_retries=0)(_task)
"""The Ray task; the driver resubmits a batch whose worker died (see optimize.sweep)."""
