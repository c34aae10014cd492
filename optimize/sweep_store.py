"""The Optuna side of a sweep: storage in the catalog's database, the study, its trials.

Storage is :class:`optuna.storages.RDBStorage` on the catalog's own URL (SQLite file or
PostgreSQL): Optuna creates its tables (``studies``, ``trials``, ``trial_params``, ...)
next to the catalog's and keeps its schema version in Alembic's default ``alembic_version``
table, while the catalog keeps its revision in ``scizor_schema_version``; each checks only
its own. Any process (optuna-dashboard, ``optuna.load_study(study_name=name,
storage=url)``) opens the study by the plain URL. The catalog must be at its head revision
first (:func:`open_storage` refuses otherwise): a catalog older than 0006 still has its
revision in ``alembic_version``, where Optuna would read it as its own.

The driver is the only writer, and it writes finished trials only, a batch per transaction
(:mod:`optimize.sweep_bulk`): grid and random trials once evaluated, model samplers' trials
once told on their in-memory copy of the study (:mod:`optimize.sweep_sources`). So the
stored study never holds RUNNING trials of this code, and a killed driver leaves none.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from core.errors import ConfigError, Conflict
from optimize.study_spec import StudySpec
from storage.catalog.migrate import head_revision

SPEC_ATTR = "scizor_spec"
"""Study user attribute: the spec's fingerprint (a resumed study must match it)."""
INSTRUMENT_ATTR = "per_instrument"
"""Trial user attribute: the objective values on each instrument (None where undefined)."""
ERROR_ATTR = "error"
"""Trial user attribute: why a trial failed or was not evaluated."""
PRUNED_ATTR = "pruned_at_fold"
"""Trial user attribute (pruning): the folds a trial ran before the pruner stopped it."""
PER_FOLD_ATTR = "per_fold"
"""Trial user attribute (pruning): the objective of each fold it ran (None: undefined)."""


def pruned_by_pruner(trial: FrozenTrial) -> bool:
    """Whether ``trial`` is PRUNED because the pruner stopped it (not as infeasible)."""
    return trial.state is TrialState.PRUNED and PRUNED_ATTR in trial.user_attrs


def open_storage(catalog: Any) -> optuna.storages.RDBStorage:
    """Open Optuna's storage in the catalog's database (creating Optuna's tables once).

    Raises:
        ConfigError: the catalog is not at its head revision (migrate it first), or Optuna's
            tables are of another Optuna version (``optuna storage upgrade``).
    """
    revision, head = catalog.revision(), head_revision()
    if revision != head:
        raise ConfigError(
            f"the catalog is at revision {revision}, not {head}: run 'scizor db upgrade' before "
            "a sweep (Optuna's tables share the catalog's database)"
        )
    url = catalog.url.render_as_string(hide_password=False)
    sqlite = catalog.url.get_backend_name() == "sqlite"
    kwargs: dict[str, Any] = (
        {"connect_args": {"timeout": 30}} if sqlite else {"pool_pre_ping": True}
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except RuntimeError as exc:  # Optuna's own schema check
        raise ConfigError(f"Optuna cannot use the catalog's database: {exc}") from exc


def make_sampler(spec: StudySpec, *, offset: int = 0) -> optuna.samplers.BaseSampler:
    """The spec's sampler (grid and random are drawn by the sweep; the study keeps a random
    sampler). ``offset`` shifts the seed, so a resumed study does not redraw its start.
    """
    seed = None if spec.seed is None else (spec.seed + offset) % 2**32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if spec.sampler == "tpe":
            return optuna.samplers.TPESampler(seed=seed, constant_liar=True, multivariate=True)
        if spec.sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed)
        if spec.sampler == "cmaes":  # the cmaes package is a dependency
            return optuna.samplers.CmaEsSampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def open_study(spec: StudySpec, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """Create the study, or load it to resume when one of that name exists.

    Raises:
        Conflict: a study of that name exists with a different spec (``field="name"``).
    """
    try:
        study = optuna.load_study(study_name=spec.name, storage=storage)
    except KeyError:
        study = optuna.create_study(
            study_name=spec.name,
            storage=storage,
            directions=[optuna.study.StudyDirection[d.upper()] for d in spec.directions],
        )
        study.set_user_attr(SPEC_ATTR, spec.fingerprint())
        return _with_sampler(study, spec)
    if study.user_attrs.get(SPEC_ATTR) != spec.fingerprint():
        raise Conflict(
            f"study {spec.name!r} exists with another spec (strategy, instruments, space, "
            "constraints, objectives, sampler or seed differ): give a new name, or run the "
            "same spec to resume it"
        )
    return _with_sampler(study, spec)


def _with_sampler(study: optuna.Study, spec: StudySpec) -> optuna.Study:
    trials = study.get_trials(deepcopy=False)
    study.sampler = make_sampler(spec, offset=len(trials))
    for trial in trials:
        if trial.state is TrialState.RUNNING:  # left by a driver that died
            study.tell(trial.number, state=TrialState.FAIL)
    return study


def complete_count(study: optuna.Study) -> int:
    """COMPLETE trials in the study."""
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def finished_points(study: optuna.Study, names: Sequence[str]) -> set[tuple[Any, ...]]:
    """The searched values of trials that need no new evaluation (COMPLETE, or failed
    because a metric is undefined there)."""
    out = set()
    for t in study.get_trials(deepcopy=False):
        done = t.state is TrialState.COMPLETE or (
            t.state is TrialState.FAIL and t.user_attrs.get("undefined")
        )
        if done and all(n in t.params for n in names):
            out.add(tuple(t.params[n] for n in names))
    return out


def objective_values(values: Any) -> list[tuple[list[float] | None, str | None]]:
    """The objectives of each set of a batch, from its (sets, instruments, objectives)
    array: each metric's mean over the instruments where it is defined; None and why for a
    set where one is undefined everywhere. Vectorized over the batch."""
    matrix = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(matrix)
    counts = finite.sum(axis=1)  # (sets, objectives)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (np.where(finite, matrix, 0.0).sum(axis=1) / counts).tolist()
    out: list[tuple[list[float] | None, str | None]] = []
    for row, count in zip(means, counts, strict=True):
        if count.all():
            out.append((row, None))
        else:
            k = int(np.argmin(count))
            out.append(
                (None, f"objective {k} is undefined (NaN) on every instrument, e.g. no trades")
            )
    return out


def per_instrument(instruments: Sequence[str], values: Any) -> list[dict[str, list[float | None]]]:
    """The user attribute of each set of a batch: its objective values by instrument (None
    for NaN), from the batch's (sets, instruments, objectives) array."""
    matrix = np.asarray(values, dtype=np.float64)
    rows = matrix.tolist()  # one pass, then only the undefined values are patched
    for i, j, k in np.argwhere(~np.isfinite(matrix)).tolist():
        rows[i][j][k] = None
    return [dict(zip(instruments, row, strict=True)) for row in rows]


def finished_trial(
    *,
    params: Mapping[str, Any],
    distributions: Mapping[str, Any],
    values: Sequence[float] | None,
    attrs: Mapping[str, Any],
    started: datetime,
    seconds: float,
) -> FrozenTrial:
    """A COMPLETE trial (FAIL without ``values``) for ``Study.add_trials``."""
    return FrozenTrial(
        number=-1,  # the storage numbers it
        state=TrialState.COMPLETE if values is not None else TrialState.FAIL,
        value=None,
        values=None if values is None else list(values),
        datetime_start=started,
        datetime_complete=started + timedelta(seconds=seconds),
        params=dict(params),
        distributions=dict(distributions),
        user_attrs=dict(attrs),
        system_attrs={},
        intermediate_values={},
        trial_id=-1,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class SweepResult:
    """What a sweep did and found.

    Attributes:
        study_name: The Optuna study (in the catalog's database).
        best_params: The best trial's searched parameters (single objective; None if none).
        best_values: The best trial's objective values (single objective).
        pareto: Multi-objective: the Pareto front, one ``{"number", "params", "values"}``
            per trial (empty for a single objective).
        n_complete: COMPLETE trials in the study.
        n_failed: FAIL trials in the study (a dead worker's, undefined metrics).
        n_infeasible: PRUNED trials: asked by a model sampler but breaking a constraint.
        n_pruned: PRUNED trials the pruner stopped after some folds (``pruning``).
        seconds: Wall time of this run.
        overhead: ``1 - time inside run_batch / (wall x workers in use)``: Ray's, the
            driver's and the storage's share.
        storage_seconds: Driver time spent in Optuna (ask, tell, add_trials) in this run.
        retried: Batches resubmitted after their worker died.
        trials: One row per trial: number, params, values, state, seconds.
    """

    study_name: str
    best_params: dict[str, Any] | None
    best_values: tuple[float, ...] | None
    pareto: tuple[dict[str, Any], ...]
    n_complete: int
    n_failed: int
    n_infeasible: int
    n_pruned: int = 0
    seconds: float
    overhead: float
    storage_seconds: float
    retried: int
    trials: pd.DataFrame


def trials_table(study: optuna.Study | Sequence[FrozenTrial]) -> pd.DataFrame:
    """One row per trial (of a study, or of its trials as read): number, params, values,
    state, seconds."""
    trials = study.get_trials(deepcopy=False) if isinstance(study, optuna.Study) else study
    rows = [
        {
            "number": t.number,
            "params": dict(t.params),
            "values": None if t.values is None else tuple(t.values),
            "state": t.state.name,
            "seconds": None if t.duration is None else t.duration.total_seconds(),
        }
        for t in trials
    ]
    return pd.DataFrame(rows, columns=["number", "params", "values", "state", "seconds"])


def best_of(
    trials: Sequence[FrozenTrial], directions: Sequence[str]
) -> tuple[dict[str, Any] | None, tuple[float, ...] | None, tuple[dict[str, Any], ...]]:
    """(best params, best values, Pareto front) among ``trials`` (a study's, as read).

    One objective: the first best COMPLETE trial. Several: every COMPLETE trial no other
    dominates (at least as good on every objective and better on one), by number.
    """
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None]
    if not complete:
        return None, None, ()
    signs = np.array([1.0 if d == "maximize" else -1.0 for d in directions])
    scores = np.array([t.values for t in complete], dtype=np.float64) * signs  # larger: better
    if len(directions) == 1:
        best = complete[int(np.argmax(scores[:, 0]))]
        return dict(best.params), tuple(best.values), ()
    keep = []
    for i in range(len(complete)):
        at_least = np.all(scores >= scores[i], axis=1)
        better = np.any(scores > scores[i], axis=1)
        if not np.any(at_least & better):
            keep.append(complete[i])
    front = tuple(
        {"number": t.number, "params": dict(t.params), "values": tuple(t.values)}
        for t in sorted(keep, key=lambda t: t.number)
    )
    return None, None, front
