"""Run a study: Optuna in the driver, batches of parameter sets on Ray workers.

:func:`run_sweep` is the whole API. The driver process is the study's only writer: it
draws (grid, random) or asks (tpe, cmaes, nsga2) a batch of parameter sets, sends it to a
Ray task that evaluates it with one ``run_batch`` call per instrument, and stores the
finished trials in the study (in the catalog's database, see :mod:`optimize.sweep_store`).
Each instrument's bars are read once by the driver and put in the object store once per
sweep; every task gets the same references.

* Objective: each metric's mean over the instruments where it is defined (NaN, e.g. no
  trade, is left out); the values per instrument are in the trial's ``per_instrument``
  user attribute. Undefined everywhere: the trial is FAIL.
* Batch size: the driver measures the seconds per set inside ``run_batch`` and sizes each
  task to run ``task_seconds`` (1 s), so Ray's few milliseconds per task stay small; toward
  the end batches shrink (guided self-scheduling) so no worker idles while another finishes,
  but never below ``MIN_SETS`` (a task's fixed costs would dominate). One batch more than
  workers is queued in Ray (when the workers take every CPU), so a worker starts its next
  batch while the driver records.
  Every task runs the engine on the one CPU it reserved (numba's default is every core).
  Model samplers get at most ``MODEL_BATCH`` trials per batch so they keep learning; they
  ask and tell on an in-memory copy of the study, and finished trials are stored a batch
  per transaction (Optuna's per-trial round trips cost 10x the sampler itself).
  ``SweepResult.overhead`` = ``1 - time inside run_batch / (wall x workers in use)``.
* A dead worker (killed, out of memory) or a task error other than a SCIZOR error: the batch
  is resubmitted once; if it fails again its trials are recorded FAIL and drawn or asked
  again, so the study still ends with the requested COMPLETE trials. A SCIZOR error (bad
  bars, bad costs) stops the sweep: it would fail on every batch.
* Constraints: a model sampler's ask that breaks one (the spec's or the strategy's own) is
  stored PRUNED with the reason, never evaluated, and does not count toward ``trials``.
* Resume: a spec whose name exists continues that study (same spec required; ``trials`` may
  grow), counting its COMPLETE trials toward ``trials``; a grid skips the points done.
* ``should_stop()`` true: no more batches are sent; those in flight are finished and
  recorded, then the sweep returns. ``on_progress`` gets a :class:`Progress` after each
  batch starts and ends.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import optuna
import ray

from core.errors import DataError, NotFound, ScizorError, StorageError
from optimize import sweep_space as space
from optimize import sweep_store as store
from optimize.backtest_fanout import workers_available
from optimize.backtest_submit import check_bars, check_currencies, listings
from optimize.backtest_work import no_bars_message
from optimize.study_spec import StudySpec
from optimize.sweep_sources import Job, Source, best_so_far, make_source, seeded_best
from optimize.sweep_task import EvalOutcome, EvalPlan, sweep_task
from storage.bars import BarStore
from strategies.base import Strategy

TASK_SECONDS = 1.0
"""What one task should spend inside run_batch."""
PROBE_SETS = 32
"""Sets in the first batches, before the time per set is known."""
MIN_TASK_SECONDS = 0.1
"""Shortest task worth sending while enough sets are left (Ray and run_batch's fixed cost)."""
MIN_SETS = 16
"""Fewest sets in a batch once sizing starts: a task's fixed costs (bars, one run_batch call
per instrument) must not dominate it; the time per set includes them, so it alone would
shrink batches without end."""
QUEUED = 1
"""Batches queued beyond one per worker."""
GUIDED = 2
"""A batch takes at most 1 / (GUIDED x workers) of the sets still to submit."""
MAX_BATCH = 50_000
"""Most sets in one task."""
MAX_GIVE_UPS = 3
"""Batches that may fail twice before the sweep stops (their cause is not transient)."""
MAX_UNDEFINED_RUN = 5_000
"""Results in a row with an undefined objective after which the sweep stops."""
POLL_SECONDS = 0.2


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """A sweep's progress (for a progress bar).

    Attributes:
        done: Trials in the study that count toward ``total``: COMPLETE ones (and, with
            pruning, the pruned).
        total: Such trials it will have at the end.
        per_second: COMPLETE trials per second in this run.
        best: Each objective's best value so far (None before the first).
        worker_pid: The worker of a batch that just started (0 on other reports).
        batch: The number of sets in that batch.
        failed: FAIL trials in the study (undefined objective, dead workers).
        pruned: Trials the pruner stopped, in the study.
    """

    done: int
    total: int
    per_second: float
    best: tuple[float, ...] | None
    worker_pid: int = 0
    batch: int = 0
    failed: int = 0
    pruned: int = 0


def fold_warmup(spec: StudySpec, strategy: Strategy) -> int:
    """The history every fold of a pruned study is backtested with: the strategy's warm-up
    with each searched parameter at its largest value (the library's warm-ups grow with
    their windows; a rule spec's is an upper bound). One figure for every trial, so a fold's
    score never depends on which trials share its batch; 0 when it cannot be worked out."""
    largest: dict[str, Any] = dict(spec.fixed)
    for name, dim in spec.space.items():
        numbers = [v for v in dim.values if isinstance(v, int | float) and not isinstance(v, bool)]
        if dim.kind == "int":
            largest[name] = int(dim.high)
        elif dim.kind == "float":
            largest[name] = float(dim.high)
        elif numbers:
            largest[name] = max(numbers)
    try:
        return max(0, int(strategy.warmup(largest)))
    except (ScizorError, ValueError, TypeError, KeyError):
        return 0


def run_sweep(
    spec: StudySpec,
    *,
    catalog: Any,
    bar_store: str,
    workers: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    task_seconds: float = TASK_SECONDS,
) -> store.SweepResult:
    """Run (or resume) the study ``spec`` on the cluster this process has joined.

    Args:
        spec: The checked study spec (:func:`optimize.study_spec.parse_study`).
        catalog: The catalog (listings; its database holds the Optuna study).
        bar_store: The bar store root the driver reads the bars from.
        workers: Tasks run at once (default: the cluster's CPUs).
        should_stop: Polled between batches; True ends the sweep early, cleanly.
        on_progress: Called with a :class:`Progress` as batches start and end.
        task_seconds: The time a task should spend inside ``run_batch``.

    Raises:
        ValidationError: instruments without bars, costs the engine refuses, constraints
            that leave no feasible point.
        ConfigError: not joined to Ray, catalog not migrated, cmaes not installed.
        Conflict: a study of that name exists with another spec.
        ScizorError: a task failed with a SCIZOR error, or batches kept failing.
    """
    began = time.perf_counter()
    strategy = spec.backtest.build_strategy()
    instruments, currencies, frames = _bars(spec, catalog, bar_store, strategy)
    storage = store.open_storage(catalog)
    study = _guarded(lambda: store.open_study(spec, storage))
    complete = store.complete_count(study)
    source = make_source(study, spec, strategy, instruments, complete=complete, rdb=storage)
    plan = EvalPlan(
        spec=spec.backtest,
        fixed=dict(spec.fixed),
        metrics=tuple(o.metric for o in spec.objectives),
        instruments=tuple(instruments),
        currencies=currencies,
        folds=0 if spec.pruning is None else spec.pruning.folds,
        fold_warmup=0 if spec.pruning is None else fold_warmup(spec, strategy),
    )
    driver = _Driver(
        source=source,
        plan=plan,
        refs=[ray.put(frame) for frame in frames],
        workers=workers or workers_available(),
        queued=QUEUED if workers is None or workers >= workers_available() else 0,
        directions=spec.directions,
        should_stop=should_stop or (lambda: False),
        on_progress=on_progress,
        task_seconds=task_seconds,
        best=seeded_best(study, spec.directions),
    )
    _guarded(driver.run)
    wall = time.perf_counter() - began
    best_params, best_values, pareto = store.best_of(source.stored, spec.directions)
    table = store.trials_table(source.stored)
    return store.SweepResult(
        study_name=spec.name,
        best_params=best_params,
        best_values=best_values,
        pareto=pareto,
        n_complete=int((table["state"] == "COMPLETE").sum()),
        n_failed=int((table["state"] == "FAIL").sum()),
        n_infeasible=sum(
            t.state is optuna.trial.TrialState.PRUNED and not store.pruned_by_pruner(t)
            for t in source.stored
        ),
        n_pruned=sum(store.pruned_by_pruner(t) for t in source.stored),
        seconds=wall,
        overhead=driver.overhead(wall),
        storage_seconds=driver.storage_seconds,
        retried=driver.retried,
        trials=table,
    )


def _guarded(step: Callable[[], Any]) -> Any:
    """Run ``step``, translating Optuna's storage errors into StorageError."""
    try:
        return step()
    except optuna.exceptions.StorageInternalError as exc:
        raise StorageError(f"the Optuna storage failed: {exc}") from exc


def _bars(
    spec: StudySpec, catalog: Any, bar_store: str, strategy: Any
) -> tuple[list[str], dict[str, str], list[Any]]:
    """The instruments with bars in the spec's range, their currencies and their bars.

    Raises:
        ValidationError: as ``backtest_submit`` refuses a backtest job.
        NotFound: a named instrument (or every one) has no bars in the range.
    """
    backtest = spec.backtest
    chosen = listings(catalog, backtest.selection)
    check_bars(backtest, chosen, bar_store)
    probe = space.sample(
        strategy, spec.space, spec.constraints, spec.fixed, n=1, rng=np.random.default_rng(0)
    )[0]
    check_currencies(replace(backtest, params={**spec.fixed, **probe}), chosen)
    named = not backtest.selection.everything and backtest.selection.universe is None
    bars, ids, frames = BarStore(bar_store), [], []
    for record in chosen:
        try:
            frame = bars.read(record.id, backtest.bar_size, backtest.start, backtest.end)
        except (StorageError, OSError, ValueError) as exc:
            if isinstance(exc, ScizorError) and not isinstance(exc, StorageError):
                raise
            raise DataError(f"the stored bars of {record.id} are unreadable: {exc}") from exc
        if frame.empty and named:
            raise NotFound(no_bars_message(record.id, backtest))
        if not frame.empty:
            ids.append(record.id)
            frames.append(frame)
    if not frames:
        raise NotFound(no_bars_message(chosen[0].id, backtest, others=len(chosen) - 1))
    return ids, {r.id: r.currency for r in chosen}, frames


class _Driver:
    """The ask/evaluate/record loop of one sweep (see the module docstring)."""

    def __init__(
        self,
        *,
        source: Source,
        plan: EvalPlan,
        refs: Sequence[Any],
        workers: int,
        directions: Sequence[str],
        should_stop: Callable[[], bool],
        on_progress: Callable[[Progress], None] | None,
        task_seconds: float,
        best: tuple[float, ...] | None,
        queued: int = QUEUED,
    ) -> None:
        self.source, self.plan, self.refs, self.workers = source, plan, list(refs), workers
        self.directions, self.should_stop, self.on_progress = directions, should_stop, on_progress
        self.task_seconds, self.queued = task_seconds, queued
        self.best = best
        self.in_flight: dict[Any, Job] = {}
        self.per_set: float | None = None
        self.busy = self.storage_seconds = 0.0
        self.sets_done = 0
        self.tasks = self.retried = self.given_up = self.undefined_run = 0
        self.started = time.perf_counter()
        self.first_done = source.counts.complete + source.counts.pruned
        self.stopping = False

    def run(self) -> None:
        """Submit, wait, record, until nothing is left (or ``should_stop``).

        Python's cyclic garbage collector is off meanwhile (as it was, after): recording
        makes hundreds of thousands of small lists and dicts, each wave of which started a
        full collection over the driver's whole heap, 40 % of the time spent recording.
        What the loop allocates has no cycles to speak of; it is collected afterwards."""
        collecting = gc.isenabled()
        gc.disable()
        try:
            while True:
                self._fill()
                if not self.in_flight:
                    return
                ready, _ = ray.wait(list(self.in_flight), num_returns=1, timeout=POLL_SECONDS)
                for gen in ready:
                    self._take(gen)
                self.stopping = self.stopping or self.should_stop()
        finally:
            self._abandon()
            if collecting:
                gc.enable()

    def _fill(self) -> None:
        # One batch more than workers waits queued in Ray, so a worker that finishes starts
        # the next batch at once while the driver records the last one (only when the
        # workers take every CPU: else the extra batch would run as one more worker).
        while not self.stopping and len(self.in_flight) < self.workers + self.queued:
            began = time.perf_counter()
            job = self.source.next_batch(self._batch_size())
            self.storage_seconds += time.perf_counter() - began
            if job is None:
                return
            self._submit(job)

    def _batch_size(self) -> int:
        """Guided: a share of what is left, between ``MIN_TASK_SECONDS`` and
        ``task_seconds`` of work (``PROBE_SETS`` until the time per set is known)."""
        guided = math.ceil(self.source.remaining() / (GUIDED * self.workers))
        if self.per_set is None:
            return max(1, min(PROBE_SETS, guided))
        least = max(MIN_SETS, math.ceil(min(MIN_TASK_SECONDS, self.task_seconds) / self.per_set))
        most = max(least, int(self.task_seconds / self.per_set))
        return max(1, min(MAX_BATCH, most, max(guided, least)))

    def _submit(self, job: Job) -> None:
        self.in_flight[sweep_task.remote(self.plan, job.sets, job.fold, *self.refs)] = job
        self.tasks += 1

    def _take(self, gen: Any) -> None:
        job = self.in_flight[gen]
        try:
            item = ray.get(next(gen))
        except StopIteration:
            del self.in_flight[gen]
            self._failed(job, "the task ended without a result")
            return
        except ray.exceptions.RayTaskError as exc:
            del self.in_flight[gen]
            if isinstance(exc.cause, ScizorError):
                raise exc.cause from None
            self._failed(job, f"the task failed: {exc.cause!r}")
            return
        except ray.exceptions.RayError as exc:  # the worker died
            del self.in_flight[gen]
            self._failed(job, f"the worker died ({type(exc).__name__})")
            return
        if isinstance(item, int):  # the task started on this worker
            job.worker_pid = item
            self._report(worker_pid=item, batch=len(job.sets))
            return
        del self.in_flight[gen]
        self._record(job, item)

    def _record(self, job: Job, outcome: EvalOutcome) -> None:
        self.busy += outcome.seconds
        self.sets_done += len(job.sets)
        self.per_set = max(self.busy / self.sets_done, 1e-7)  # fixed costs included
        began = time.perf_counter()
        results = self.source.record(job, outcome)
        self.storage_seconds += time.perf_counter() - began
        for values in results:
            if values is None:
                self.undefined_run += 1
                continue
            self.undefined_run = 0
            self.best = best_so_far(self.best, values, self.directions)
        if self.undefined_run >= MAX_UNDEFINED_RUN:
            raise ScizorError(
                f"{self.undefined_run} parameter sets in a row have an undefined objective "
                "(NaN on every instrument, e.g. no trades): check the space and the dates"
            )
        self._report()

    def _failed(self, job: Job, reason: str) -> None:
        if job.attempt < 2:  # once more, the same trials
            self.retried += 1
            job.attempt += 1
            job.worker_pid = 0
            self._submit(job)
            return
        self.given_up += 1
        began = time.perf_counter()
        self.source.give_up(job, f"not evaluated: {reason} (twice)")
        self.storage_seconds += time.perf_counter() - began
        if self.given_up > MAX_GIVE_UPS:
            raise ScizorError(f"sweep batches keep failing: {reason}")

    def _abandon(self) -> None:
        """Cancel what is still running (after an error) and leave nothing RUNNING."""
        for gen, job in list(self.in_flight.items()):
            ray.cancel(gen, force=True)
            self.source.abandon(job)
        self.in_flight.clear()

    def _report(self, *, worker_pid: int = 0, batch: int = 0) -> None:
        if self.on_progress is None:
            return
        counts = self.source.counts
        done = counts.complete + counts.pruned
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        self.on_progress(
            Progress(
                done=done,
                total=self.source.total,
                per_second=(done - self.first_done) / elapsed,
                best=self.best,
                worker_pid=worker_pid,
                batch=batch,
                failed=counts.failed,
                pruned=counts.pruned,
            )
        )

    def overhead(self, wall: float) -> float:
        """``1 - busy / (wall x workers in use)``."""
        used = max(1, min(self.workers, self.tasks))
        return 0.0 if wall <= 0 else max(0.0, 1.0 - self.busy / (wall * used))
