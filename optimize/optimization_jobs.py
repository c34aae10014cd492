"""The optimization job service: what ``scizor optimize`` and ``/optimizations`` call.

::

    service = OptimizationService(catalog, settings)
    job = service.submit({"strategy": "sma_cross", "universe": "etfs", "sampler": "tpe",
                          "trials": 500})                # queued row, nothing run yet
    service.run(job.id, on_progress=print)              # the driver: scizor optimize --run ID
    service.trials(job.id, sort="value").items[0]       # the best trial

``submit`` checks the study spec (:func:`optimize.study_spec.parse_study`, plus
``walk_forward``), resolves the instruments and stores the job; a spec without ``name``
gets ``<strategy>-<UTC time>``. Submitting the name of an ended job queues it again: the
study resumes (its COMPLETE trials count toward ``trials``). ``run`` must execute in a
process that joined the Ray cluster: it runs the sweep (:func:`optimize.sweep.run_sweep`),
records progress, then analyses the result (:mod:`optimize.optimization_analysis`: DSR,
PSR, PBO, the verdict, walk-forward) and finishes the job with its summary, from which the
HTML report is rendered on demand. ``cancel`` works from any process: the driver sends no
more batches, records those in flight and ends the job cancelled.
"""

from __future__ import annotations

import contextlib
import math
import secrets
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import optuna
import pandas as pd

from core.errors import Conflict, NotFound, ValidationError
from core.settings import Settings
from optimize import optimization_analysis as analysis
from optimize import spec_checks as check
from optimize import sweep_space
from optimize import sweep_store as store
from optimize.backtest_fanout import workers_available
from optimize.backtest_submit import check_bars, listings
from optimize.optimization_summary import OptimizationSummary
from optimize.study_spec import StudySpec, parse_study
from optimize.sweep import Progress, run_sweep
from storage.bars import BarStore
from storage.catalog import Catalog
from storage.catalog.records import JobStatus, OptimizationRecord

ProgressCallback = Callable[[Progress], None]
SORTS = ("number", "value", "seconds")
POLL_SECONDS = 1.0
"""How often the driver asks the catalog whether its job was cancelled."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OptimizationPage:
    """One page of :meth:`OptimizationService.list`, newest first; ``total`` matches."""

    items: list[OptimizationRecord]
    total: int
    offset: int
    limit: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TrialPage:
    """One page of a study's trials: ``items`` rows of number, params, values, state,
    seconds; ``total`` trials in the study."""

    items: list[dict[str, Any]]
    total: int
    offset: int
    limit: int


class OptimizationService:
    """Optimization jobs over the catalog (and its database's Optuna studies) and the bars.

    Args:
        catalog: The :class:`storage.catalog.Catalog`.
        settings: The platform settings (bar store location).
    """

    def __init__(self, catalog: Catalog, settings: Settings) -> None:
        self.catalog = catalog
        self.bar_store = settings.storage.bar_store

    # -- jobs -------------------------------------------------------------------------------

    def submit(self, body: Mapping[str, Any] | str | bytes) -> OptimizationRecord:
        """Check a study spec, resolve its instruments and queue it.

        Raises:
            ValidationError: a bad field, named by its path; nothing is written.
            ParameterError: a bad strategy parameter.
            Conflict: a job of that name is queued or running.
        """
        raw = dict(
            check.json_object(
                body, what="study spec", holds="name, strategy, instruments, space, ..."
            )
        )
        walk = analysis.parse_walk_forward(raw.pop("walk_forward", None))
        if not raw.get("name"):
            strategy = raw.get("strategy") or (raw.get("rules") or {}).get("name") or "rules"
            raw["name"] = f"{strategy}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
        spec = parse_study(raw)
        chosen = listings(self.catalog, spec.backtest.selection)
        check_bars(spec.backtest, chosen, self.bar_store)
        stored = {**spec.to_json(), "walk_forward": None if walk is None else walk.to_json()}
        objective = ",".join(o.metric for o in spec.objectives)
        trials = spec.trials or _grid_points(spec)
        existing = self.catalog.optimizations.find(spec.name)
        if existing is not None:
            if existing.spec and _fingerprint(existing.spec) != _fingerprint(stored):
                raise ValidationError(
                    f"a study named {spec.name!r} exists with another spec; resume it with the "
                    "same spec (only trials may grow) or choose another name",
                    field="name",
                )
            return self.catalog.optimizations.requeue(existing.id, n_trials=trials, spec=stored)
        return self.catalog.optimizations.create(
            spec.name, strategy=spec.backtest.strategy, space=stored["space"],
            objective=objective, n_trials=trials, spec=stored,
        )  # fmt: skip

    def run_args(self, optimization_id: int) -> tuple[str, ...]:
        """The ``scizor`` arguments of the job's driver (a Ray Job's entrypoint)."""
        return ("optimize", "--run", str(int(optimization_id)))

    def run(
        self, optimization_id: int, *, on_progress: ProgressCallback | None = None
    ) -> OptimizationRecord:
        """Run a queued job (or resume a running one) to the end; return its final record.

        Raises:
            ConfigError: this process has not joined a Ray cluster (the job is untouched).
            Conflict: the job has ended already.
        """
        workers = workers_available()
        job = self.catalog.optimizations.start(optimization_id)
        spec, walk = self.spec_of(job)
        try:
            return self._run(job, spec, walk, workers, on_progress)
        except KeyboardInterrupt:
            with contextlib.suppress(Conflict):
                self.catalog.optimizations.cancel(optimization_id)
            raise
        except Exception as exc:  # the driver's top level: the job must not stay running
            with contextlib.suppress(Conflict):
                self.catalog.optimizations.fail(optimization_id, f"{type(exc).__name__}: {exc}")
            raise

    def _run(
        self,
        job: OptimizationRecord,
        spec: StudySpec,
        walk: analysis.WalkForwardSpec | None,
        workers: int,
        on_progress: ProgressCallback | None,
    ) -> OptimizationRecord:
        total = spec.trials or 0
        stop = _CancelWatch(self.catalog, job.id)

        def progress(p: Progress) -> None:
            with contextlib.suppress(Conflict):  # cancelled: the watch stops the sweep
                self.catalog.optimizations.update_progress(
                    job.id, n_complete=p.done, n_failed=p.failed, total=p.total or total or 1
                )
            if on_progress is not None:
                on_progress(p)

        result = run_sweep(spec, catalog=self.catalog, bar_store=self.bar_store,
                           workers=workers, should_stop=stop, on_progress=progress)  # fmt: skip
        figures = {
            "seconds": result.seconds, "overhead": result.overhead,
            "storage_seconds": result.storage_seconds, "retried": result.retried,
            "n_infeasible": result.n_infeasible, "n_pruned": result.n_pruned,
            "workers": workers,
            "trials_per_second": result.n_complete / result.seconds if result.seconds else 0.0,
        }  # fmt: skip
        self.catalog.optimizations.set_artifacts(job.id, sweep=figures)
        if self.catalog.optimizations.get(job.id).status is JobStatus.CANCELLED:
            return self.catalog.optimizations.get(job.id)
        with contextlib.suppress(Conflict):
            self.catalog.optimizations.update_progress(  # pruned trials count toward trials
                job.id, n_complete=result.n_complete + result.n_pruned, n_failed=result.n_failed,
                total=max(result.n_complete, 1) if spec.trials is None else spec.trials,
            )  # fmt: skip
        frames, currencies = self._frames(spec)
        began = time.perf_counter()
        found = analysis.analyse(spec, result.trials, frames, currencies, walk=walk,
                                 pruned=result.n_pruned)  # fmt: skip
        self.catalog.optimizations.set_artifacts(
            job.id, analysis={**found.details, "seconds": time.perf_counter() - began}
        )
        backtest = spec.backtest
        summary = OptimizationSummary(
            study_name=spec.name, strategy=backtest.strategy, instruments=tuple(frames),
            bar_size=backtest.bar_size,
            start=None if backtest.start is None else backtest.start.date().isoformat(),
            end=None if backtest.end is None else backtest.end.date().isoformat(),
            sampler=spec.sampler,
            objectives=tuple((o.metric, o.direction) for o in spec.objectives),
            n_complete=result.n_complete, n_failed=result.n_failed, n_pruned=result.n_pruned,
            seconds=result.seconds,
            trials_per_second=figures["trials_per_second"], overhead=result.overhead,
            best_params=result.best_params, best_values=result.best_values,
            pareto=tuple({k: p[k] for k in ("number", "params", "values") if k in p}
                         for p in result.pareto),
            importance=_importance(spec, self.catalog), overfitting=found.overfitting,
            verdict=found.verdict, walk_forward=found.walk_forward,
        )  # fmt: skip
        best = result.best_values[0] if result.best_values else None
        return self.catalog.optimizations.finish(
            job.id, best_params={**spec.fixed, **(result.best_params or {})},
            best_value=best if best is None or math.isfinite(best) else None,
            report=summary.to_dict(),
        )  # fmt: skip

    def _frames(self, spec: StudySpec) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
        """The first instruments' bars in the spec's range (for the analysis)."""
        backtest, frames = spec.backtest, dict[str, pd.DataFrame]()
        chosen = listings(self.catalog, backtest.selection)
        store_ = BarStore(self.bar_store)
        for record in chosen:
            if len(frames) == analysis.MAX_INSTRUMENTS:
                break
            with contextlib.suppress(NotFound):
                bars = store_.read(record.id, backtest.bar_size, backtest.start, backtest.end)
                if not bars.empty:
                    frames[record.id] = bars
        return frames, {r.id: r.currency for r in chosen}

    def spec_of(self, job: OptimizationRecord) -> tuple[StudySpec, analysis.WalkForwardSpec | None]:
        """The job's study spec and walk-forward, as submitted."""
        stored = dict(job.spec)
        walk = analysis.parse_walk_forward(stored.pop("walk_forward", None))
        return parse_study(stored), walk

    def cancel(self, optimization_id: int) -> OptimizationRecord:
        """Cancel a queued or running job; its driver ends within a batch.

        Raises:
            Conflict: the job is done or failed.
        """
        return self.catalog.optimizations.cancel(optimization_id)

    def get(self, optimization_id: int) -> OptimizationRecord:
        """Return a job (NotFound if absent)."""
        return self.catalog.optimizations.get(optimization_id)

    def list(
        self,
        *,
        strategy: str | None = None,
        status: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> OptimizationPage:
        """Jobs, newest first, filtered by strategy and status."""
        items = self.catalog.optimizations.list(strategy=strategy, status=status,
                                                offset=offset, limit=limit)  # fmt: skip
        total = self.catalog.optimizations.count(strategy=strategy, status=status)
        return OptimizationPage(items=items, total=total, offset=offset, limit=limit)

    def trials_frame(self, optimization_id: int) -> pd.DataFrame:
        """Every trial of the job's study (empty before its first trial)."""
        job = self.get(optimization_id)
        storage = store.open_storage(self.catalog)
        try:
            study = optuna.load_study(study_name=job.study_name, storage=storage)
        except KeyError:  # queued, no trial yet
            return pd.DataFrame(columns=["number", "params", "values", "state", "seconds"])
        return store.trials_table(study)

    def trials(
        self,
        optimization_id: int,
        *,
        sort: str = "number",
        descending: bool | None = None,
        state: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> TrialPage:
        """A page of the job's trials, sorted by ``number``, ``value`` (the first objective,
        best first by default) or ``seconds``; optionally of one ``state``.

        Raises:
            ValidationError: an unknown ``sort`` or ``state``.
        """
        if sort not in SORTS:
            raise ValidationError(f"sort must be one of {', '.join(SORTS)}", field="sort")
        table = self.trials_frame(optimization_id)
        if state is not None:
            states = ("COMPLETE", "FAIL", "PRUNED", "RUNNING", "WAITING")
            if state.upper() not in states:
                raise ValidationError(f"state must be one of {', '.join(states)}", field="state")
            table = table[table["state"] == state.upper()]
        job = self.get(optimization_id)
        if sort == "value":
            direction = (job.spec.get("objectives") or [{}])[0].get("direction", "maximize")
            key = [v[0] if v else math.nan for v in table["values"]]
            table = table.assign(_key=key)
            best_first = direction == "maximize"
            down = best_first if descending is None else descending
            table = table.sort_values("_key", ascending=not down, na_position="last")
            table = table.drop(columns="_key")
        else:
            table = table.sort_values(sort, ascending=not bool(descending))
        page = table.iloc[offset : offset + limit]
        rows: list[dict[str, Any]] = page.to_dict("records")  # type: ignore[assignment]
        return TrialPage(items=[_trial_row(r) for r in rows],
                         total=len(table), offset=offset, limit=limit)  # fmt: skip

    def report_html(self, optimization_id: int) -> str:
        """The job's HTML report, rendered now from its stored summary and its trials.

        Raises:
            Conflict: the job has not finished (no summary yet).
        """
        from optimize.optimization_report import render_optimization_report

        job = self.get(optimization_id)
        if job.status is not JobStatus.DONE or not job.report:
            raise Conflict(
                f"optimization {optimization_id} is {job.status.value}: its report exists once "
                "it is done"
            )
        summary = OptimizationSummary.from_dict(job.report)
        return str(render_optimization_report(summary, self.trials_frame(optimization_id)))


class _CancelWatch:
    """``should_stop`` for the sweep: True once the job is cancelled (asked once a second)."""

    def __init__(self, catalog: Catalog, optimization_id: int) -> None:
        self._catalog, self._id = catalog, optimization_id
        self._asked, self._stop = 0.0, False

    def __call__(self) -> bool:
        now = time.monotonic()
        if not self._stop and now - self._asked >= POLL_SECONDS:
            self._asked = now
            self._stop = self._catalog.optimizations.get(self._id).status is JobStatus.CANCELLED
        return self._stop


def _grid_points(spec: StudySpec) -> int:
    """The feasible points of a grid study (its trials when ``trials`` is not given)."""
    strategy = spec.backtest.build_strategy()
    return max(1, sum(1 for _ in sweep_space.grid(strategy, spec.space, spec.constraints,
                                                  spec.fixed)))  # fmt: skip


def _fingerprint(stored: Mapping[str, Any]) -> str:
    import json

    data = {k: v for k, v in stored.items() if k != "trials"}
    return json.dumps(data, sort_keys=True, default=str)


def _trial_row(row: Mapping[str, Any]) -> dict[str, Any]:
    values = row.get("values")
    return {
        "number": int(row["number"]),
        "params": analysis.json_params(row.get("params") or {}),
        "values": None if values is None else [_plain(v) for v in values],
        "state": str(row["state"]),
        "seconds": _plain(row.get("seconds")),
    }


def _plain(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _importance(spec: StudySpec, catalog: Catalog) -> dict[str, float]:
    """Each searched parameter's share of the first objective's variance (PED-ANOVA; no
    extra dependency); empty with fewer than two parameters or too few trials."""
    if len(spec.space) < 2:
        return {}
    storage = store.open_storage(catalog)
    study = optuna.load_study(study_name=spec.name, storage=storage)
    with contextlib.suppress(Exception), warnings.catch_warnings():  # too few trials: none
        warnings.filterwarnings("ignore", message="PedAnovaImportanceEvaluator computes")
        evaluator = optuna.importance.PedAnovaImportanceEvaluator()
        sign = -1.0 if spec.objectives[0].direction == "maximize" else 1.0  # it ranks low
        raw = optuna.importance.get_param_importances(
            study, evaluator=evaluator, target=lambda t: sign * t.values[0]
        )
        total = sum(raw.values()) or 1.0
        return {k: float(v) / total for k, v in raw.items()}
    return {}


__all__ = ["OptimizationPage", "OptimizationService", "TrialPage"]
