"""Sweeps end to end on the session's local Ray (2 CPUs): Optuna studies in SQLite and
PostgreSQL catalogs, seeded synthetic bars in a Parquet store on ``tmp_path``."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest

from core.errors import Conflict, NotFound, ValidationError
from core.types import SecType
from optimize.study_spec import parse_study
from optimize.sweep import Progress, run_sweep
from optimize.sweep_task import fold_window
from storage.bars import BarStore
from storage.catalog import Catalog, SymbolRecord
from storage.catalog.migrate import head_revision
from strategies.batch import run_batch

pytestmark = pytest.mark.integration

INSTRUMENTS = ["AAA.NASDAQ", "BBB.NASDAQ"]
GRID_SPACE = {"fast": {"low": 2, "high": 20, "step": 2}, "slow": {"low": 10, "high": 60, "step": 5}}


def walk(seed: int, n: int, start: str = "2023-01-02") -> pd.DataFrame:
    """A seeded random walk of ``n`` business days (UTC midnight)."""
    idx = pd.date_range(start, periods=n, freq="B", tz="UTC")
    rng = np.random.default_rng(seed)
    close = 40 * np.exp(np.cumsum(rng.normal(0.0003, 0.02, n)))
    opens = close * np.exp(rng.normal(0, 0.004, n))
    return pd.DataFrame(
        {"open": opens, "high": np.maximum(opens, close) * 1.01,
         "low": np.minimum(opens, close) * 0.99, "close": close, "volume": 1e5},
        index=idx,
    )  # fmt: skip


def world(catalog: Catalog, tmp_path: Path, *, n: int = 400, start: str = "2023-01-02") -> str:
    """Two listings in ``catalog`` and their daily bars in a store under ``tmp_path``."""
    root = str(tmp_path / "bars")
    store = BarStore(root)
    records = []
    for seed, instrument in enumerate(INSTRUMENTS):
        symbol, venue = instrument.split(".")
        records.append(
            SymbolRecord(
                symbol=symbol, primary_exchange=venue, exchange="SMART", currency="USD",
                universe="test", valid=True, sec_type=SecType.STOCK, name=symbol,
            )
        )  # fmt: skip
        store.write(instrument, "1d", walk(seed, n, start))
    catalog.symbols.upsert_many(records)
    return root


def spec_of(**fields: Any) -> Any:
    return parse_study({"strategy": "sma_cross", "instruments": INSTRUMENTS, **fields})


def url_of(catalog: Catalog) -> str:
    return catalog.url.render_as_string(hide_password=False)


def brute_force(bars_root: str, points: list[dict[str, Any]]) -> pd.Series:
    """Mean sharpe over the instruments of every point, run here with run_batch."""
    store = BarStore(bars_root)
    tables = [run_batch(store.read(i, "1d"), "sma_cross", points)["sharpe"] for i in INSTRUMENTS]
    return pd.concat(tables, axis=1).mean(axis=1, skipna=True)


def test_a_grid_study_records_every_feasible_point_and_finds_the_brute_force_best(
    ray_session: None, catalog: Catalog, tmp_path: Path
) -> None:
    bars = world(catalog, tmp_path)
    spec = spec_of(name="grid", space=GRID_SPACE, constraints=["slow >= 10", "fast != 4"],
                   sampler="grid")  # fmt: skip
    seen: list[Progress] = []
    result = run_sweep(spec, catalog=catalog, bar_store=bars, on_progress=seen.append)

    points = [{"fast": f, "slow": s} for f in range(2, 21, 2) for s in range(10, 61, 5)]
    points = [p for p in points if p["fast"] < p["slow"] and p["fast"] != 4]
    assert result.n_complete == len(points) == len(result.trials)
    assert result.n_failed == result.n_infeasible == 0
    expected = brute_force(bars, points)
    best = int(expected.idxmax())
    assert result.best_params == points[best]
    assert result.best_values is not None
    assert math.isclose(result.best_values[0], expected[best], rel_tol=1e-9)
    assert seen and seen[-1].done == len(points) and seen[-1].best == result.best_values
    assert 0.0 <= result.overhead <= 1.0
    # Optuna's tables share the database; the catalog is still at its head revision
    assert catalog.revision() == head_revision()
    catalog.upgrade()  # a no-op, not a clash with Optuna's tables


def test_a_tpe_study_ends_with_the_requested_trials_visible_to_another_process(
    ray_session: None, catalog: Catalog, tmp_path: Path
) -> None:
    bars = world(catalog, tmp_path)
    space = {"fast": {"low": 2, "high": 30}, "slow": {"low": 5, "high": 80}}
    spec = spec_of(name="tpe", space=space, sampler="tpe", trials=40, seed=3)
    result = run_sweep(spec, catalog=catalog, bar_store=bars)

    assert result.n_complete == 40 and result.n_failed == 0
    pruned = result.trials[result.trials["state"] == "PRUNED"]
    assert all(p["fast"] >= p["slow"] for p in pruned["params"])  # infeasible, not evaluated
    complete = result.trials[result.trials["state"] == "COMPLETE"]
    assert all(p["fast"] < p["slow"] for p in complete["params"])
    script = (
        "import json, sys, optuna\n"
        "study = optuna.load_study(study_name='tpe', storage=sys.argv[1])\n"
        "print(json.dumps([[t.number, t.state.name, t.user_attrs.get('per_instrument')] "
        "for t in study.trials]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, url_of(catalog)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    seen = json.loads(out.stdout)
    assert [n for n, _, _ in seen] == list(result.trials["number"])
    assert sum(state == "COMPLETE" for _, state, _ in seen) == 40
    assert all(set(attrs) == set(INSTRUMENTS) for _, state, attrs in seen if state == "COMPLETE")


def test_a_pruned_tpe_study_runs_fold_by_fold_and_stops_poor_trials_early(
    ray_session: None, catalog: Catalog, tmp_path: Path
) -> None:
    bars = world(catalog, tmp_path, n=1200, start="2019-01-01")
    space = {"fast": {"low": 2, "high": 30}, "slow": {"low": 35, "high": 120}}
    pruning = {"folds": 4, "startup_trials": 5, "warmup_folds": 1}
    spec = spec_of(name="pruned", space=space, sampler="tpe", trials=48, seed=11,
                   pruning=pruning)  # fmt: skip
    result = run_sweep(spec, catalog=catalog, bar_store=bars)

    assert result.n_complete + result.n_pruned == 48 and result.n_failed == 0
    assert result.n_pruned > 0 and result.n_complete > 0
    storage = optuna.storages.RDBStorage(url_of(catalog))
    study = optuna.load_study(study_name="pruned", storage=storage)  # as Optuna reads it
    storage.engine.dispose()
    store = BarStore(bars)
    frames = {i: store.read(i, "1d") for i in INSTRUMENTS}
    folds_run = 0
    for trial in study.trials:
        if trial.state.name == "COMPLETE":
            per_fold = trial.user_attrs["per_fold"]
            assert len(per_fold) == 4 and set(trial.intermediate_values) <= {0, 1, 2, 3}
            assert math.isclose(trial.value, np.mean([v for v in per_fold if v is not None]))
            assert trial.intermediate_values[3] == trial.value  # the running mean, reported
            folds_run += 4
        elif "pruned_at_fold" in trial.user_attrs:
            ran = trial.user_attrs["pruned_at_fold"]
            assert 2 <= ran <= 3  # warmup_folds=1: never pruned after its first fold
            assert len(trial.user_attrs["per_fold"]) == ran
            assert max(trial.intermediate_values) == ran - 1 == trial.last_step
            folds_run += ran
    assert folds_run < 48 * 4  # the pruned trials' later folds were never run
    best = next(t for t in study.trials if t.state.name == "COMPLETE" and t.value == max(
        x.value for x in study.trials if x.state.name == "COMPLETE"))  # fmt: skip
    mine = []  # the best trial's folds, each backtested with 120 bars of history, here
    for k in range(4):
        windows = [fold_window(frames[i], 4, k, warmup=120) for i in INSTRUMENTS]  # slow<=120
        fold = [run_batch(window, "sma_cross", [best.params], score_from=start)["sharpe"].iloc[0]
                for window, start in windows]  # fmt: skip
        defined = [v for v in fold if math.isfinite(v)]  # NaN: no trade in that fold
        mine.append(np.mean(defined) if defined else math.nan)
    stored = np.array(best.user_attrs["per_fold"], dtype=np.float64)  # None: undefined fold
    assert np.allclose(stored, mine, rtol=1e-9, equal_nan=True)
    assert result.best_values is not None and math.isclose(result.best_values[0], best.value)


def test_a_cmaes_study_completes_its_trials_inside_the_space(
    ray_session: None, catalog: Catalog, tmp_path: Path
) -> None:
    bars = world(catalog, tmp_path)
    space = {"fast": {"low": 2, "high": 30}, "slow": {"low": 35, "high": 80}}
    result = run_sweep(spec_of(name="cmaes", space=space, sampler="cmaes", trials=24, seed=5),
                       catalog=catalog, bar_store=bars)  # fmt: skip
    complete = result.trials[result.trials["state"] == "COMPLETE"]
    assert result.n_complete == len(complete) == 24
    assert all(2 <= p["fast"] <= 30 and 35 <= p["slow"] <= 80 for p in complete["params"])
    best = brute_force(bars, [dict(p) for p in complete["params"]]).max()
    assert result.best_values is not None and math.isclose(result.best_values[0], best)


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_a_stopped_study_resumes_by_name_to_its_total(
    ray_session: None, catalog: Catalog, tmp_path: Path, sampler: str
) -> None:
    bars = world(catalog, tmp_path)
    spec = spec_of(name="resume", space=GRID_SPACE, sampler=sampler, trials=60, seed=5)
    done: list[int] = []

    def stop() -> bool:
        return bool(done) and done[-1] >= 20

    first = run_sweep(
        spec, catalog=catalog, bar_store=bars, should_stop=stop,
        on_progress=lambda p: done.append(p.done), task_seconds=0.001,
    )  # fmt: skip
    assert 20 <= first.n_complete < 60
    assert "RUNNING" not in set(first.trials["state"])
    second = run_sweep(spec, catalog=catalog, bar_store=bars)
    assert second.n_complete == 60
    kept = second.trials.iloc[: len(first.trials)]
    assert list(kept["number"]) == list(first.trials["number"])
    assert list(kept["params"]) == list(first.trials["params"])  # nothing redone or lost
    other = spec_of(name="resume", space=GRID_SPACE, sampler=sampler, trials=60, seed=6)
    with pytest.raises(Conflict, match="another spec"):
        run_sweep(other, catalog=catalog, bar_store=bars)


def test_a_killed_worker_loses_no_trials(
    ray_session: None, catalog: Catalog, tmp_path: Path
) -> None:
    bars = world(catalog, tmp_path, n=6000, start="1995-01-02")  # ~1.5 ms a set: long tasks
    space = {"fast": {"low": 2, "high": 40, "step": 2}, "slow": {"low": 10, "high": 200, "step": 5}}
    spec = spec_of(name="killed", sampler="grid", space=space)
    killed: list[int] = []

    def on_progress(p: Progress) -> None:
        if p.worker_pid and p.batch >= 50 and not killed:
            killed.append(p.worker_pid)
            os.kill(p.worker_pid, signal.SIGKILL)  # mid-batch: it has sets in hand

    result = run_sweep(spec, catalog=catalog, bar_store=bars, on_progress=on_progress)
    assert killed and result.retried >= 1
    trials = result.trials
    assert (
        result.n_complete
        == len(trials)
        == len(set(map(lambda p: tuple(p.items()), trials["params"])))
    )
    feasible = sum(f < s for f in range(2, 41, 2) for s in range(10, 201, 5))
    assert result.n_complete == feasible and result.n_failed == 0


def test_a_multi_objective_nsga2_study_returns_a_pareto_front(
    ray_session: None, catalog: Catalog, tmp_path: Path
) -> None:
    bars = world(catalog, tmp_path)
    objectives = [{"metric": "sharpe"}, {"metric": "max_drawdown_pct", "direction": "maximize"}]
    spec = spec_of(name="pareto", space=GRID_SPACE, objectives=objectives, sampler="nsga2",
                   trials=30, seed=1)  # fmt: skip
    result = run_sweep(spec, catalog=catalog, bar_store=bars)

    assert result.n_complete == 30 and result.best_params is None and result.pareto
    values = [v for v in result.trials[result.trials["state"] == "COMPLETE"]["values"]]
    for point in result.pareto:
        a = point["values"]
        assert not any(b[0] >= a[0] and b[1] >= a[1] and b != a for b in values)  # not dominated


def test_a_grid_with_fewer_trials_takes_the_same_subset_when_resumed(
    ray_session: None, catalog: Catalog, tmp_path: Path
) -> None:
    bars = world(catalog, tmp_path)
    part = run_sweep(spec_of(name="sub", space=GRID_SPACE, sampler="grid", trials=30),
                     catalog=catalog, bar_store=bars)  # fmt: skip
    again = run_sweep(spec_of(name="sub", space=GRID_SPACE, sampler="grid", trials=30),
                      catalog=catalog, bar_store=bars)  # fmt: skip
    assert part.n_complete == again.n_complete == 30 and len(again.trials) == 30


def test_a_sweep_refuses_instruments_without_bars_before_it_starts(
    catalog: Catalog, tmp_path: Path
) -> None:
    bars = world(catalog, tmp_path)
    spec = spec_of(name="none", space=GRID_SPACE, sampler="grid", start="2030-01-01")
    with pytest.raises((NotFound, ValidationError), match=r"scizor collect history AAA\.NASDAQ"):
        run_sweep(spec, catalog=catalog, bar_store=bars)
    spec = parse_study({"name": "x", "strategy": "sma_cross", "instruments": ["ZZZ.NASDAQ"]})
    with pytest.raises(ValidationError) as err:
        run_sweep(spec, catalog=catalog, bar_store=bars)
    assert err.value.field == "instruments"
