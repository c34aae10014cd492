"""Where a sweep's parameter sets come from, and where their results go.

* :class:`BulkSource` (grid, random): points are drawn here in bulk (every feasible grid
  point, or uniform feasible draws), evaluated, and only then written as finished trials
  with ``Study.add_trials``; nothing sits RUNNING in the study.
* :class:`ModelSource` (tpe, cmaes, nsga2): points come from ``ask()`` in small batches
  (the sampler learns only from told trials) and results are told back, on an in-memory
  copy of the study whose finished trials are stored in one transaction per batch. An ask
  that breaks a constraint is told PRUNED at once, never evaluated, and does not count
  toward ``trials``; PRUNED trials rank below every COMPLETE one in TPE, so it learns to
  avoid the infeasible region.

With ``pruning`` (:class:`optimize.study_spec.Pruning`) a model sampler's trial runs fold by
fold: a batch of asked trials is evaluated on fold 0, each trial reports its running mean
(``trial.report``) and asks the pruner (``trial.should_prune``); the pruned are told PRUNED
(``pruned_at_fold`` and ``per_fold`` attributes), the others go on to the next fold as one
batch, sent before any new ask; after the last fold a trial is COMPLETE with the mean of its
folds' objectives.

A set whose metric is undefined on every instrument (NaN: e.g. no trade at all) becomes a
FAIL trial with an ``error`` attribute; a batch whose worker died twice becomes FAIL
trials too, and its sets are drawn again (random, models: fresh points; grid: the same).
"""

from __future__ import annotations

import copy
import math
import warnings
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from core.errors import ValidationError
from optimize import sweep_space as space
from optimize.study_spec import StudySpec
from optimize.sweep_bulk import add_finished
from optimize.sweep_store import (
    ERROR_ATTR,
    INSTRUMENT_ATTR,
    PER_FOLD_ATTR,
    PRUNED_ATTR,
    finished_points,
    finished_trial,
    objective_values,
    per_instrument,
    pruned_by_pruner,
)
from optimize.sweep_task import EvalOutcome
from strategies.base import Strategy

MODEL_BATCH = 16
"""Most trials a model sampler is asked for at once (it learns only from told trials)."""
MAX_INFEASIBLE_RUN = 2_000
"""Infeasible asks in a row after which a sweep gives up (the constraints leave nothing)."""


@dataclass(slots=True, kw_only=True)
class Job:
    """One batch in flight: its sets, their asked trials (model samplers) and attempts."""

    sets: list[dict[str, Any]]
    trials: list[optuna.trial.Trial] | None = None
    fold: int | None = None
    """With pruning: the fold this batch evaluates (None: the whole range)."""
    per_fold: list[list[Any]] = field(default_factory=list)
    """With pruning: each trial's (instruments, objectives) values of the folds so far."""
    attempt: int = 1
    worker_pid: int = 0
    started: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(slots=True, kw_only=True)
class Counts:
    """The study's trials as the source counts them (``in_flight``: in this run)."""

    complete: int = 0
    failed: int = 0
    infeasible: int = 0
    pruned: int = 0
    in_flight: int = 0


class BulkSource:
    """Grid or random points, recorded with ``add_trials`` once evaluated."""

    def __init__(
        self,
        study: optuna.Study,
        spec: StudySpec,
        strategy: Strategy,
        instruments: Sequence[str],
        *,
        complete: int,
        rdb: Any = None,
    ) -> None:
        self.study, self.spec, self.strategy, self.rdb = study, spec, strategy, rdb
        self.instruments = tuple(instruments)
        self.dists = {n: d.distribution() for n, d in spec.space.items()}
        self.counts = Counts(complete=complete)
        self.stored: list[FrozenTrial] = list(study.get_trials(deepcopy=False))
        self.counts.failed = sum(t.state is TrialState.FAIL for t in self.stored)
        self.rng = np.random.default_rng(
            None if spec.seed is None else [spec.seed, len(self.stored)]
        )
        self.pool: deque[dict[str, Any]] = deque()
        self.next_number = len(self.stored)
        self.target = spec.trials or 0
        if spec.sampler == "grid":
            self._fill_grid()

    def _fill_grid(self) -> None:
        names = list(self.spec.space)
        done = finished_points(self.study, names)
        every = list(
            space.grid(self.strategy, self.spec.space, self.spec.constraints, self.spec.fixed)
        )
        wanted = len(every) if self.spec.trials is None else self.spec.trials
        if wanted < len(every):  # a seeded subset of the grid, the same on every resume
            order = np.random.default_rng(self.spec.seed or 0).permutation(len(every))
            every = [every[i] for i in order]
        todo = [p for p in every[:wanted] if tuple(p[n] for n in names) not in done]
        self.pool.extend(todo)
        self.target = self.counts.complete + len(todo)

    @property
    def total(self) -> int:
        """COMPLETE trials the study should end with."""
        return self.target

    def remaining(self) -> int:
        """Sets still to submit."""
        if self.spec.sampler == "grid":
            return len(self.pool)
        return max(0, self.target - self.counts.complete - self.counts.in_flight)

    def next_batch(self, n: int) -> Job | None:
        """The next ``n`` sets (fewer at the end), or None when there is nothing to submit."""
        n = min(n, self.remaining())
        if n <= 0:
            return None
        if self.spec.sampler == "random" and len(self.pool) < n:
            self.pool.extend(
                space.sample(
                    self.strategy,
                    self.spec.space,
                    self.spec.constraints,
                    self.spec.fixed,
                    n=n - len(self.pool),
                    rng=self.rng,
                )
            )
        sets = [self.pool.popleft() for _ in range(min(n, len(self.pool)))]
        self.counts.in_flight += len(sets)
        return Job(sets=sets)

    def record(self, job: Job, outcome: EvalOutcome) -> list[list[float] | None]:
        """Write the batch's trials; return each set's objective values (None: undefined)."""
        each = outcome.seconds / max(len(job.sets), 1)
        trials, out = [], []
        by_instrument = per_instrument(self.instruments, outcome.values)
        objectives = objective_values(outcome.values)
        for i, point in enumerate(job.sets):
            values, why = objectives[i]
            attrs: dict[str, Any] = {INSTRUMENT_ATTR: by_instrument[i]}
            if values is None:
                attrs |= {ERROR_ATTR: why, "undefined": True}
            trials.append(
                finished_trial(
                    params=point,
                    distributions=self.dists,
                    values=values,
                    attrs=attrs,
                    started=job.started,
                    seconds=each,
                )
            )
            out.append(values)
        self._write(trials)
        self.counts.in_flight -= len(job.sets)
        done = sum(v is not None for v in out)
        self.counts.complete += done
        self.counts.failed += len(out) - done
        return out

    def give_up(self, job: Job, reason: str) -> None:
        """Record the batch's sets as FAIL trials and draw them again."""
        now = datetime.now(UTC)
        self._write(
            [
                finished_trial(
                    params=p,
                    distributions=self.dists,
                    values=None,
                    attrs={ERROR_ATTR: reason},
                    started=job.started,
                    seconds=(now - job.started).total_seconds(),
                )
                for p in job.sets
            ],
        )
        self.counts.in_flight -= len(job.sets)
        self.counts.failed += len(job.sets)
        if self.spec.sampler == "grid":
            self.pool.extendleft(reversed(job.sets))

    def _write(self, trials: list[Any]) -> None:
        add_finished(self.study, self.rdb, trials, first=self.next_number)
        self.next_number = keep_numbered(self.stored, trials, first=self.next_number)

    def abandon(self, job: Job) -> None:
        """Forget a batch that will not be evaluated (the sweep stopped): nothing was
        written for it, and a resumed study evaluates it then."""
        self.counts.in_flight -= len(job.sets)


class ModelSource:
    """Trials asked from the sampler and told back, on an in-memory copy of the study.

    Optuna's RDB storage costs several transactions per trial on ask, on each suggested
    parameter, on each attribute and on tell (~90 % of a TPE sweep's time on SQLite). So the
    sampler works on an in-memory study seeded with the stored trials, and every finished
    trial (COMPLETE, FAIL, PRUNED) is copied to the stored study in one transaction per
    batch. Trials in flight are therefore not in the stored study (no RUNNING rows that a
    dead driver would leave behind); a stored trial's number is its order of finishing.
    """

    def __init__(
        self,
        study: optuna.Study,
        spec: StudySpec,
        strategy: Strategy,
        instruments: Sequence[str],
        *,
        complete: int,
        rdb: Any = None,
    ) -> None:
        self.study, self.spec, self.strategy, self.rdb = study, spec, strategy, rdb
        self.instruments = tuple(instruments)
        self.dists = {n: d.distribution() for n, d in spec.space.items()}
        self.counts = Counts(complete=complete)
        self.target = max(spec.trials or 0, complete)
        self.stored: list[FrozenTrial] = list(study.get_trials(deepcopy=False))
        self.counts.failed = sum(t.state is TrialState.FAIL for t in self.stored)
        self.next_number = len(self.stored)
        self.pruning = spec.pruning
        pruner = None
        if self.pruning is not None:
            pruner = optuna.pruners.MedianPruner(
                n_startup_trials=self.pruning.startup_trials,
                n_warmup_steps=self.pruning.warmup_folds,
            )
            self.counts.pruned = sum(pruned_by_pruner(t) for t in self.stored)
        self.pending: deque[Job] = deque()  # trials going on to their next fold
        self.memory = optuna.create_study(
            directions=study.directions, sampler=study.sampler, pruner=pruner
        )
        self.memory.add_trials(t for t in self.stored if t.state.is_finished())

    @property
    def total(self) -> int:
        """COMPLETE trials the study should end with."""
        return self.target

    def remaining(self) -> int:
        """Sets still to ask for."""
        return max(
            0, self.target - self.counts.complete - self.counts.pruned - self.counts.in_flight
        )

    def next_batch(self, n: int) -> Job | None:
        """Trials going on to their next fold (with pruning), else up to ``n`` new feasible
        trials (infeasible asks are told PRUNED)."""
        if self.pending:
            return self.pending.popleft()
        n = min(n, MODEL_BATCH, self.remaining())
        if n <= 0:
            return None
        trials: list[optuna.trial.Trial] = []
        sets: list[dict[str, Any]] = []
        refused: list[FrozenTrial] = []
        while len(trials) < n:
            trial = self.memory.ask(self.dists)
            point = dict(trial.params)
            why = space.feasible(self.strategy, self.spec.constraints, {**self.spec.fixed, **point})
            if why is None:
                trials.append(trial)
                sets.append(point)
                continue
            trial.set_user_attr(ERROR_ATTR, f"not evaluated: {why}")
            refused.append(self.memory.tell(trial, state=TrialState.PRUNED))
            self.counts.infeasible += 1
            if len(refused) >= MAX_INFEASIBLE_RUN:
                self._store(refused)
                raise ValidationError(
                    f"the sampler proposed {len(refused)} points in a row that break the "
                    "constraints; widen space or loosen constraints",
                    field="constraints",
                )
        self._store(refused)
        self.counts.in_flight += len(sets)
        return Job(sets=sets, trials=trials, fold=None if self.pruning is None else 0)

    def record(self, job: Job, outcome: EvalOutcome) -> list[list[float] | None]:
        """Tell the batch's results; return the objective values of each trial that
        finished (None: undefined)."""
        if self.pruning is not None:
            return self._record_fold(job, outcome)
        out, told = [], []
        by_instrument = per_instrument(self.instruments, outcome.values)
        objectives = objective_values(outcome.values)
        for i, trial in enumerate(job.trials or ()):
            values, why = objectives[i]
            trial.set_user_attr(INSTRUMENT_ATTR, by_instrument[i])
            if values is None:
                trial.set_user_attr(ERROR_ATTR, why)
                told.append(self.memory.tell(trial, state=TrialState.FAIL))
                self.counts.failed += 1
            else:
                told.append(self.memory.tell(trial, values))
                self.counts.complete += 1
            out.append(values)
        self._store(told)
        self.counts.in_flight -= len(job.sets)
        return out

    def _record_fold(self, job: Job, outcome: EvalOutcome) -> list[list[float] | None]:
        """Record one fold of a batch: report, prune, finish, or send on (see the module
        docstring)."""
        assert self.pruning is not None and job.fold is not None
        last = job.fold == self.pruning.folds - 1
        per_fold = job.per_fold or [[] for _ in job.sets]
        out: list[list[float] | None] = []
        told: list[FrozenTrial] = []
        going: list[int] = []
        for i, trial in enumerate(job.trials or ()):
            per_fold[i].append(np.asarray(outcome.values[i], dtype=np.float64))
            folds = np.stack(per_fold[i])  # (folds so far, instruments, objectives)
            scores = [v[0] if v else math.nan for v, _ in objective_values(folds)]
            done = [x for x in scores if math.isfinite(x)]
            running = float(np.mean(done)) if done else None
            if running is not None:
                trial.report(running, step=job.fold)
            if not last and not trial.should_prune():
                going.append(i)
                continue
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
                means = np.nanmean(folds, axis=0)
            trial.set_user_attr(INSTRUMENT_ATTR, per_instrument(self.instruments, [means])[0])
            trial.set_user_attr(PER_FOLD_ATTR, [x if math.isfinite(x) else None for x in scores])
            if not last:
                trial.set_user_attr(PRUNED_ATTR, job.fold + 1)
                told.append(self.memory.tell(trial, state=TrialState.PRUNED))
                self.counts.pruned += 1
            elif running is None:
                trial.set_user_attr(ERROR_ATTR, "the objective is undefined (NaN) in every fold")
                told.append(self.memory.tell(trial, state=TrialState.FAIL))
                self.counts.failed += 1
                out.append(None)
            else:
                told.append(self.memory.tell(trial, [running]))
                self.counts.complete += 1
                out.append([running])
            self.counts.in_flight -= 1
        self._store(told)
        if going:
            trials = job.trials or []
            self.pending.append(
                Job(
                    sets=[job.sets[i] for i in going],
                    trials=[trials[i] for i in going],
                    fold=job.fold + 1,
                    per_fold=[per_fold[i] for i in going],
                    started=job.started,
                )
            )
        return out

    def give_up(self, job: Job, reason: str) -> None:
        """Tell the batch's trials FAIL; the next asks replace them."""
        told = []
        for trial in job.trials or ():
            trial.set_user_attr(ERROR_ATTR, reason)
            told.append(self.memory.tell(trial, state=TrialState.FAIL))
        self._store(told)
        self.counts.in_flight -= len(job.sets)
        self.counts.failed += len(job.sets)

    def abandon(self, job: Job) -> None:
        """Forget a batch that will not be evaluated (the sweep stopped or failed): it was
        never stored, and the resumed study asks again."""
        self.counts.in_flight -= len(job.sets)

    def _store(self, trials: list[FrozenTrial]) -> None:
        add_finished(self.study, self.rdb, trials, first=self.next_number)
        self.next_number = keep_numbered(self.stored, trials, first=self.next_number)


def keep_numbered(stored: list[FrozenTrial], trials: Sequence[FrozenTrial], *, first: int) -> int:
    """Append copies of ``trials`` to ``stored`` numbered as they were written (from
    ``first``); return the next number. The driver keeps what it stored, so the study's
    trials need not be read back at the end (seconds for thousands of trials)."""
    for k, trial in enumerate(trials):
        kept = copy.copy(trial)
        kept.number = first + k
        stored.append(kept)
    return first + len(trials)


Source = BulkSource | ModelSource


def best_so_far(
    best: tuple[float, ...] | None, values: Sequence[float], directions: Sequence[str]
) -> tuple[float, ...]:
    """Each objective's best value so far (for progress reports)."""
    if best is None:
        return tuple(values)
    return tuple(
        max(b, v) if d == "maximize" else min(b, v)
        for b, v, d in zip(best, values, directions, strict=True)
    )


def seeded_best(study: optuna.Study, directions: Sequence[str]) -> tuple[float, ...] | None:
    """Each objective's best value among the study's COMPLETE trials (None without any)."""
    best = None
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.values is not None and all(math.isfinite(v) for v in t.values):
            best = best_so_far(best, t.values, directions)
    return best


def make_source(
    study: optuna.Study,
    spec: StudySpec,
    strategy: Strategy,
    instruments: Sequence[str],
    *,
    complete: int,
    rdb: Any = None,
) -> Source:
    """The source for the spec's sampler (``rdb``: the RDBStorage, for bulk writes)."""
    cls = BulkSource if spec.sampler in ("grid", "random") else ModelSource
    return cls(study, spec, strategy, instruments, complete=complete, rdb=rdb)
