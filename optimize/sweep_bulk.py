"""Write many finished trials to an Optuna RDB study in one transaction.

``Study.add_trials`` writes each trial in its own transaction with about ten statements
(the trial, then each param, value and attribute, each checked again), ~6 ms a trial on
SQLite and more on PostgreSQL: for a grid of cheap backtests that is 20 to 50 times the
backtests themselves. :func:`add_finished` writes the same rows to Optuna's own tables in
one transaction, one executemany INSERT per table through SQLAlchemy Core (the trials' ids
come back by RETURNING, in order), numbering trials as Optuna does (the driver is the
study's only writer, so a trial's number is the count of trials before it).
About 0.1 ms a trial on SQLite.

It relies on ``optuna.storages._rdb.models`` (private, stable since Optuna 3.2's schema);
when those are not what it expects, or the storage is not an RDBStorage, it falls back to
``Study.add_trials``. Trials written either way read back identically through Optuna's API
(``tests/integration/test_sweep.py`` loads them from another process).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import optuna
from optuna.distributions import distribution_to_json
from optuna.trial import FrozenTrial

try:  # private API: see the module docstring
    from optuna.storages._rdb import models as _models
    from optuna.storages._rdb.storage import _create_scoped_session
except ImportError:  # pragma: no cover - another Optuna layout: add_trials does it
    _models = None  # type: ignore[assignment]
    _create_scoped_session = None  # type: ignore[assignment]


def add_finished(
    study: optuna.Study, rdb: Any, trials: Sequence[FrozenTrial], *, first: int
) -> None:
    """Append finished trials (COMPLETE with values, or FAIL) to ``study``.

    Args:
        study: The study (its storage may cache; it reads new trials back on the next call).
        rdb: The study's :class:`optuna.storages.RDBStorage`, or None for ``add_trials``.
        trials: Finished trials (``finished_trial``), in order.
        first: The number of the first one: the study's trial count (the caller, the only
            writer, keeps it, so the study's trials need not be read back for it).
    """
    if not trials:
        return
    if _models is None or not isinstance(rdb, optuna.storages.RDBStorage):
        study.add_trials(trials)
        return
    m = _models
    study_id = rdb.get_study_id_from_name(study.study_name)
    as_json: dict[str, str] = {}  # a distribution's JSON, once per parameter
    with _create_scoped_session(rdb.scoped_session) as session:
        m.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
        table = m.TrialModel.__table__
        ids = session.execute(
            table.insert().returning(table.c.trial_id, sort_by_parameter_order=True),
            [_trial_row(study_id, first + i, t) for i, t in enumerate(trials)],
        ).scalars()
        params: list[dict[str, Any]] = []
        values: list[dict[str, Any]] = []
        attrs: list[dict[str, Any]] = []
        system: list[dict[str, Any]] = []
        steps: list[dict[str, Any]] = []
        for tid, trial in zip(ids, trials, strict=True):
            for name, value in trial.params.items():
                dist = trial.distributions[name]
                if name not in as_json:
                    as_json[name] = distribution_to_json(dist)
                params.append(
                    {
                        "trial_id": tid,
                        "param_name": name,
                        "param_value": dist.to_internal_repr(value),
                        "distribution_json": as_json[name],
                    }
                )
            for objective, value in enumerate(trial.values or ()):
                stored, kind = m.TrialValueModel.value_to_stored_repr(value)
                values.append(
                    {"trial_id": tid, "objective": objective, "value": stored, "value_type": kind}
                )
            attrs.extend(
                {"trial_id": tid, "key": key, "value_json": json.dumps(value)}
                for key, value in trial.user_attrs.items()
            )
            system.extend(  # samplers' own records (NSGA-II's generations)
                {"trial_id": tid, "key": key, "value_json": json.dumps(value)}
                for key, value in trial.system_attrs.items()
            )
            for step, value in trial.intermediate_values.items():  # pruning's running means
                at, how = m.TrialIntermediateValueModel.intermediate_value_to_stored_repr(value)
                steps.append(
                    {
                        "trial_id": tid,
                        "step": step,
                        "intermediate_value": at,
                        "intermediate_value_type": how,
                    }
                )
        for model, rows in (
            (m.TrialParamModel, params),
            (m.TrialValueModel, values),
            (m.TrialUserAttributeModel, attrs),
            (m.TrialSystemAttributeModel, system),
            (m.TrialIntermediateValueModel, steps),
        ):
            if rows:  # one executemany each, through SQLAlchemy Core (no ORM bookkeeping)
                session.execute(model.__table__.insert(), rows)


def _trial_row(study_id: int, number: int, trial: FrozenTrial) -> dict[str, Any]:
    return {
        "study_id": study_id,
        "number": number,
        "state": trial.state,
        # Optuna stores naive UTC (see its TrialModel)
        "datetime_start": _naive_utc(trial.datetime_start),
        "datetime_complete": _naive_utc(trial.datetime_complete),
    }


def _naive_utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC).replace(tzinfo=None)
