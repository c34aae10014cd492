"""The Optuna side of a sweep, without Ray: storage in a migrated catalog (SQLite and
PostgreSQL), studies resumed by name, bulk-written trials as Optuna reads them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from core.errors import ConfigError, Conflict
from optimize.study_spec import parse_study
from optimize.sweep_bulk import add_finished
from optimize.sweep_store import (
    finished_points,
    finished_trial,
    make_sampler,
    objective_values,
    open_storage,
    open_study,
    per_instrument,
)
from storage.catalog import Catalog
from storage.catalog.migrate import head_revision

SPEC = {
    "name": "s",
    "strategy": "sma_cross",
    "instruments": ["AAA.NASDAQ"],
    "space": {"fast": {"low": 2, "high": 20}, "slow": {"low": 10, "high": 60}},
    "objectives": [{"metric": "sharpe"}, {"metric": "volatility_pct"}],
    "sampler": "nsga2",
}


def trials(spec: Any, n: int) -> list[Any]:
    dists = {name: d.distribution() for name, d in spec.space.items()}
    now = datetime.now(UTC)
    out = [
        finished_trial(
            params={"fast": 2 + i % 10, "slow": 30 + i % 20},
            distributions=dists,
            values=[0.1 * i, float("inf") if i == 3 else 1.0 + i],
            attrs={"per_instrument": {"AAA.NASDAQ": [0.1 * i, None]}},
            started=now,
            seconds=0.5,
        )
        for i in range(n)
    ]
    out.append(
        finished_trial(
            params={"fast": 5, "slow": 40}, distributions=dists, values=None,
            attrs={"error": "undefined", "undefined": True}, started=now, seconds=0.1,
        )
    )  # fmt: skip
    return out


def test_bulk_written_trials_read_back_as_add_trials_writes_them(catalog: Catalog) -> None:
    spec = parse_study(SPEC)
    rdb = open_storage(catalog)
    bulk = open_study(spec, rdb)
    add_finished(bulk, rdb, trials(spec, 5), first=0)
    add_finished(bulk, rdb, trials(spec, 2), first=6)
    plain = optuna.create_study(study_name="plain", storage=rdb, directions=bulk.directions)
    plain.add_trials(trials(spec, 5) + trials(spec, 2))

    fresh = optuna.load_study(study_name="s", storage=open_storage(catalog))
    got, want = fresh.get_trials(), plain.get_trials()
    assert [t.number for t in got] == list(range(9))
    for a, b in zip(got, want, strict=True):
        assert (a.number, a.state, a.params, a.values) == (b.number, b.state, b.params, b.values)
        assert a.distributions == b.distributions and a.user_attrs == b.user_attrs
        assert a.duration == b.duration
    assert finished_points(fresh, ["fast", "slow"]) == {
        (2 + i % 10, 30 + i % 20) for i in range(5)
    } | {(5, 40)}
    assert catalog.revision() == head_revision()


def test_a_study_resumes_by_name_only_with_the_same_spec(catalog: Catalog) -> None:
    rdb = open_storage(catalog)
    spec = parse_study(SPEC)
    first = open_study(spec, rdb)
    running = first.ask()
    again = open_study(parse_study({**SPEC, "trials": 500}), rdb)  # more trials: same study
    assert again.study_name == "s" and again.get_trials()[0].number == running.number
    assert again.get_trials()[0].state is TrialState.FAIL  # a dead driver's RUNNING trial
    with pytest.raises(Conflict, match="another spec"):
        open_study(parse_study({**SPEC, "seed": 1}), rdb)


def test_storage_refuses_a_catalog_not_at_its_head_revision(db_url: str) -> None:
    with Catalog(db_url) as empty, pytest.raises(ConfigError, match="scizor db upgrade"):
        open_storage(empty)


def test_samplers_are_the_specs() -> None:
    tpe = make_sampler(parse_study({**SPEC, "objectives": None, "sampler": "tpe"}))
    assert isinstance(tpe, optuna.samplers.TPESampler) and tpe._constant_liar
    assert isinstance(make_sampler(parse_study(SPEC)), optuna.samplers.NSGAIISampler)
    cmaes = parse_study({**SPEC, "objectives": None, "sampler": "cmaes"})
    assert isinstance(make_sampler(cmaes), optuna.samplers.CmaEsSampler)


def test_an_objective_is_the_mean_over_the_instruments_where_it_is_defined() -> None:
    values = np.array([[1.0, 3.0], [np.nan, 5.0], [3.0, np.nan]])  # 3 instruments, 2 metrics
    undefined = np.array([[np.nan, 1.0], [np.nan, 2.0], [np.nan, np.nan]])
    got = objective_values(np.stack([values, undefined]))  # a batch of two sets
    assert got[0] == ([2.0, 4.0], None)
    assert got[1][0] is None and "objective 0 is undefined" in str(got[1][1])


def test_per_instrument_values_keep_each_instrument_and_turn_nan_into_none() -> None:
    batch = np.array([[[1.5], [np.nan]], [[np.inf], [2.0]]])  # 2 sets, 2 instruments
    got = per_instrument(["A.NASDAQ", "B.NYSE"], batch)
    assert got == [{"A.NASDAQ": [1.5], "B.NYSE": [None]}, {"A.NASDAQ": [None], "B.NYSE": [2.0]}]
    assert all(type(v[0]) in (float, type(None)) for d in got for v in d.values())
