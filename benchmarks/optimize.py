"""Optimization benchmark: SCIZOR's sweeps beside backtesting.py, vectorbt and Optuna, in one run.

The study: ``sma_cross`` over fast 5..100 x slow 10..300 step 5 with fast < slow (4,790
sets), 100,000 cash and a commission of 0.1 % of traded value (the conventions of
``benchmarks/engine.py``'s backtesting.py comparison), on 10 years of daily bars
(2015-06-01 to 2025-06-01) of 40 NASDAQ listings from ibsim's seeded market, written to a
Parquet store and listed in a fresh SQLite catalog for every sweep (so no run resumes
another; Optuna's tables are created in it before the clock starts, as a catalog's first
study does once). A "backtest" below is one parameter set on one instrument; a sweep's set runs on
every instrument, so its time per backtest is wall / (sets x instruments).

1. The grid through :func:`optimize.sweep.run_sweep` with 1 and with 2 Ray workers on a
   2-CPU local Ray (goal: 2 workers at least 1.8x of 1); best of ``--repeat`` rounds, the
   two contenders alternating so a busy moment on the shared machine hits both.
2. Per backtest against backtesting.py's ``Backtest.optimize`` (its own fork pool, one
   process per CPU) on a sub-grid of 125 sets on one instrument, maximizing its Sharpe
   ratio (goal: SCIZOR at least 100x faster); trade counts checked on a few sets. Run
   before Ray starts, so its fork pool never forks a process with Ray's threads.
3. Against vectorbt (``MA.run`` per column + ``Portfolio.from_signals``, fees 0.1 %) on the
   whole grid on one instrument, both filling at the signal bar's close (vectorbt's
   convention); the closed-trade count of every set is compared with ``run_batch``'s.
4. A 2,000-trial TPE study through ``run_sweep`` (2 workers): trials per second, beside
   Optuna's own cost for the same sampler (:func:`optimize.sweep_store.make_sampler`, asked
   in batches of ``MODEL_BATCH`` as the sweep does, a trivial objective): 2,000 trials in
   memory (the sweep's sampler works on an in-memory copy), and the first 100 on SQLite
   through Optuna's own RDBStorage (what the sweep avoids; ~0.1 s a trial here).
5. The share of the grid sweep's wall time outside the engine (goal < 10 %): the sweep's
   own ``overhead`` (``1 - time inside run_batch / (wall x workers)``), its time in Optuna
   (``storage_seconds``), and ours: ``1 - run_batch alone / (wall x workers)``, with
   run_batch timed in this process on one numba thread (what one Ray CPU has).

Numba compilation and Ray's worker start are excluded (warm-up runs first). The TPE study,
Optuna's loops and backtesting.py run once (tens of seconds each); ``--repeat`` applies to
the grid sweeps, run_batch and vectorbt.

Run: ``.venv/bin/python benchmarks/optimize.py [--repeat 3] [--quick] [--numba-threads N]``
(``--numba-threads`` sets ``NUMBA_NUM_THREADS`` in Ray's workers, to compare with the
default: numba's own, one thread per core, though a sweep task reserves one CPU).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bars

import numpy as np  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402
from backtesting import Backtest, Strategy  # noqa: E402
from backtesting.lib import crossover  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from cluster import universe  # noqa: E402
from ibsim.contracts import default_world  # noqa: E402
from ibsim.market import Market  # noqa: E402
from optimize.study_spec import StudySpec, parse_study  # noqa: E402
from optimize.sweep import run_sweep  # noqa: E402
from optimize.sweep_sources import MODEL_BATCH  # noqa: E402
from optimize.sweep_store import make_sampler, open_storage  # noqa: E402
from storage.bars import BarStore  # noqa: E402
from storage.catalog import Catalog, SymbolRecord  # noqa: E402
from strategies.batch import run_batch  # noqa: E402
from strategies.indicators import sma  # noqa: E402

START, END = "2015-06-01", "2025-06-01"
CASH, COMMISSION = 100_000, 0.001
SQLITE_TRIALS = 100
"""Trials of Optuna's own loop on SQLite (tens of ms each)."""
CONSOLE = Console(width=120)


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """The sizes of one run (full or ``--quick``)."""

    instruments: int
    fast: range
    slow: range
    bt_fast: range  # backtesting.py's sub-grid
    bt_slow: range
    tpe_trials: int


FULL = Plan(instruments=40, fast=range(5, 101), slow=range(10, 301, 5),
            bt_fast=range(5, 101, 10), bt_slow=range(10, 301, 20), tpe_trials=2000)  # fmt: skip
QUICK = Plan(instruments=2, fast=range(5, 31, 5), slow=range(10, 61, 10),
             bt_fast=range(5, 21, 10), bt_slow=range(30, 61, 30), tpe_trials=40)  # fmt: skip


class SmaCross(Strategy):
    """backtesting.py's sma_cross, long only: buy on the cross up, close on the cross down.

    Module level, so backtesting.py's pool can pickle it."""

    fast = 10
    slow = 30

    def init(self) -> None:
        self.a = self.I(sma, self.data.Close, self.fast)
        self.b = self.I(sma, self.data.Close, self.slow)

    def next(self) -> None:
        if crossover(self.a, self.b):
            self.buy()
        elif crossover(self.b, self.a):
            self.position.close()


@dataclass(slots=True, kw_only=True)
class World:
    """The bars, their listings and where everything lives."""

    tmp: str
    bars: str
    listings: list[SymbolRecord]
    frames: dict[str, pd.DataFrame]
    plan: Plan
    catalogs: int = 0

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.listings]

    def catalog(self) -> Catalog:
        """A fresh, migrated SQLite catalog holding the listings."""
        self.catalogs += 1
        catalog = Catalog(f"sqlite:///{self.tmp}/catalog-{self.catalogs}.db")
        catalog.upgrade()
        catalog.symbols.upsert_many(self.listings)
        return catalog

    def spec(self, name: str, **fields: Any) -> StudySpec:
        space = {
            name: {"low": r.start, "high": r[-1], "step": r.step}
            for name, r in (("fast", self.plan.fast), ("slow", self.plan.slow))
        }
        return parse_study({
            "name": name, "strategy": "sma_cross", "instruments": self.ids,
            "start": START, "end": END, "costs": {"cash": CASH, "commission": COMMISSION},
            "space": space, "constraints": ["fast < slow"], "sampler": "grid", **fields,
        })  # fmt: skip


def make_world(plan: Plan) -> World:
    """Write 10 years of daily bars of the first NASDAQ listings of the bundled universe."""
    world = {(c.symbol, c.primary_exchange): c for c in default_world()}
    members = [
        m
        for m in universe.select()
        if (m.symbol, m.primary_exchange) in world and m.primary_exchange == "NASDAQ"
    ][: plan.instruments]
    tmp = tempfile.mkdtemp(prefix="scizor-optimize-")
    bars = os.path.join(tmp, "bars")
    store, market = BarStore(bars), Market(seed=0)
    start, end = pd.Timestamp(START, tz="UTC"), pd.Timestamp(END, tz="UTC")
    for m in members:
        daily = market.daily(world[(m.symbol, m.primary_exchange)])
        daily = daily.set_axis(daily.index.tz_localize("UTC"))
        store.write(f"{m.symbol}.{m.primary_exchange}", "1d", daily[start:end])
    listings = [
        SymbolRecord(
            symbol=m.symbol, sec_type=m.sec_type, exchange=m.exchange, currency=m.currency,
            primary_exchange=m.primary_exchange, name=m.name, universe=m.universe, valid=True,
        )
        for m in members
    ]  # fmt: skip
    # The bars as the sweep reads them (end exclusive), for the peers and run_batch alone.
    frames = {r.id: store.read(r.id, "1d", start, end) for r in listings}
    return World(tmp=tmp, bars=bars, listings=listings, frames=frames, plan=plan)


def grid_sets(fast: range, slow: range) -> list[dict[str, int]]:
    return [{"fast": f, "slow": s} for f in fast for s in slow if f < s]


def best_time(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """The best wall time of ``repeat`` calls after one warm-up call, and the last result."""
    result, best = fn(), float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - began)
    return best, result


# ---- 2. backtesting.py ----------------------------------------------------------------


def backtesting_py(world: World) -> dict[str, Any]:
    """Backtest.optimize over the sub-grid on the first instrument; trade counts on 3 sets."""
    frame = world.frames[world.ids[0]]
    data = frame.rename(columns=str.capitalize).tz_localize(None)
    bt = Backtest(data, SmaCross, cash=CASH, commission=COMMISSION)
    plan = world.plan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        began = time.perf_counter()
        bt.optimize(fast=plan.bt_fast, slow=plan.bt_slow, maximize="Sharpe Ratio",
                    constraint=lambda p: p.fast < p.slow)  # fmt: skip
        seconds = time.perf_counter() - began
        every = grid_sets(plan.bt_fast, plan.bt_slow)
        sample = every[:: max(1, len(every) // 3)][:3]
        theirs = [int(bt.run(**p)["# Trades"]) for p in sample]
    ours = run_batch(frame, "sma_cross", sample, cash=CASH, commission=COMMISSION)["n_trades"]
    same = sum(int(a) == b for a, b in zip(ours, theirs, strict=True))
    return {"sets": len(every), "seconds": seconds, "same_trades": f"{same} of {len(sample)}"}


# ---- 3. vectorbt and run_batch alone --------------------------------------------------


def vectorbt_grid(close: pd.Series, sets: list[dict[str, int]]) -> np.ndarray:
    """The grid in vectorbt (one MA column per set); the closed-trade count of each set."""
    import vectorbt as vbt

    fast = vbt.MA.run(close, [p["fast"] for p in sets], short_name="fast")
    slow = vbt.MA.run(close, [p["slow"] for p in sets], short_name="slow")
    pf = vbt.Portfolio.from_signals(close, fast.ma_crossed_above(slow),
                                    fast.ma_crossed_below(slow), init_cash=CASH,
                                    fees=COMMISSION, freq="1D")  # fmt: skip
    return np.asarray(pf.trades.closed.count().to_numpy())


def engine_alone(world: World, sets: list[dict[str, int]], repeat: int) -> dict[str, Any]:
    """run_batch on one numba thread (the whole grid, every instrument; fills as the sweep),
    the same grid with fills at the close beside vectorbt, and their trade counts."""
    import numba

    def batch(frame: pd.DataFrame, **kwargs: Any) -> Callable[[], pd.DataFrame]:
        return lambda: run_batch(frame, "sma_cross", sets, cash=CASH, commission=COMMISSION,
                                 **kwargs)  # fmt: skip

    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        total = sum(best_time(batch(frame), repeat)[0] for frame in world.frames.values())
        frame = world.frames[world.ids[0]]
        ours, table = best_time(batch(frame, fill="close"), repeat)
    finally:
        numba.set_num_threads(threads)
    theirs, counts = best_time(lambda: vectorbt_grid(frame["close"], sets), repeat)
    same = int((table["n_trades"].to_numpy() == counts).sum())
    return {"total": total, "close": ours, "vectorbt": theirs, "same_trades": same}


# ---- 1. and 5. the grid sweep on Ray --------------------------------------------------


def grid_sweeps(world: World, repeat: int) -> dict[int, Any]:
    """The grid with 1 and with 2 workers, alternating; each contender's fastest run."""
    warm = world.spec("warm", trials=200, seed=0)
    run_sweep(warm, catalog=world.catalog(), bar_store=world.bars, workers=2)
    best: dict[int, Any] = {}
    for round_ in range(repeat):
        for workers in (1, 2):
            catalog = world.catalog()  # not timed, nor the creation of Optuna's tables in it
            open_storage(catalog).engine.dispose()  # (a catalog's first study does it, once)
            spec = world.spec(f"grid-{workers}-workers-{round_}")
            result = run_sweep(spec, catalog=catalog, bar_store=world.bars, workers=workers)
            catalog.dispose()
            if workers not in best or result.seconds < best[workers].seconds:
                best[workers] = result
    return best


# ---- 4. TPE ---------------------------------------------------------------------------


def tpe_sweep(world: World) -> Any:
    spec = world.spec("tpe", sampler="tpe", trials=world.plan.tpe_trials, seed=7)
    return run_sweep(spec, catalog=world.catalog(), bar_store=world.bars, workers=2)


def optuna_alone(spec: StudySpec, storage: Any) -> dict[str, float]:
    """Ask/tell ``spec.trials`` COMPLETE trials with the sweep's sampler and a trivial
    objective, asking in batches as the sweep does; infeasible asks are told PRUNED."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = {n: d.distribution() for n, d in spec.space.items()}
    study = optuna.create_study(storage=storage, sampler=make_sampler(spec))
    complete = pruned = 0
    began = time.perf_counter()
    while complete < (spec.trials or 0):
        batch = [study.ask(dists) for _ in range(min(MODEL_BATCH, spec.trials - complete))]
        for trial in batch:
            p = trial.params
            if p["fast"] >= p["slow"]:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                pruned += 1
            else:
                study.tell(trial, (p["fast"] - 20) ** 2 + (p["slow"] / 5 - 20) ** 2)
                complete += 1
    return {"seconds": time.perf_counter() - began, "complete": complete, "pruned": pruned}


# ---- report ---------------------------------------------------------------------------


def table_of(title: str, *columns: str) -> Table:
    table = Table(title=title)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    return table


def report_sweeps(best: dict[int, Any], engine: dict[str, Any], n_sets: int) -> None:
    """Table 1/5: the grid sweep with 1 and 2 workers, where its time went."""
    t = table_of(
        f"1./5. Grid sweep: {n_sets:,} sets on every instrument (best of runs)",
        "run_sweep", "seconds", "sets/s", "vs 1 worker", "in run_batch s", "in Optuna s",
        "overhead (sweep's)", "overhead (ours)", "goal",
    )  # fmt: skip
    for workers, r in best.items():
        busy = (1 - r.overhead) * r.seconds * workers
        t.add_row(
            f"{workers} worker{'s' * (workers > 1)}", f"{r.seconds:.2f}",
            f"{r.n_complete / r.seconds:,.0f}", f"{best[1].seconds / r.seconds:.2f}x",
            f"{busy:.2f}", f"{r.storage_seconds:.2f}", f"{r.overhead:.1%}",
            f"{1 - engine['total'] / (r.seconds * workers):.1%}",
            ">= 1.80x, < 10 %" if workers == 2 else "< 10 %",
        )  # fmt: skip
    CONSOLE.print(t)
    print(
        f"run_batch alone (this process, one numba thread, the grid on every instrument): "
        f"{engine['total']:.2f} s. COMPLETE trials per sweep: "
        f"{', '.join(str(r.n_complete) for r in best.values())}"
    )


def report_peers(
    best: dict[int, Any], engine: dict[str, Any], bt: dict[str, Any], n_sets: int, n: int
) -> None:
    """Table 2/3: time per backtest (one set on one instrument) beside the peers."""
    bt_each, vbt_each = bt["seconds"] / bt["sets"], engine["vectorbt"] / n_sets
    ours = {
        "sweep, 2 Ray workers": best[2].seconds / (n_sets * n),
        "sweep, 1 Ray worker": best[1].seconds / (n_sets * n),
        "run_batch alone, 1 thread": engine["total"] / (n_sets * n),
        "run_batch alone, 1 thread, fill at close": engine["close"] / n_sets,
    }
    t = table_of(
        "2./3. Time per backtest (one set on one instrument, 10 years daily)",
        "contender", "us per backtest", "backtesting.py / it", "vectorbt / it",
    )  # fmt: skip
    for name, each in ours.items():
        t.add_row(name, f"{each * 1e6:,.1f}", f"{bt_each / each:,.0f}x", f"{vbt_each / each:.1f}x")
    t.add_row(f"backtesting.py optimize, {bt['sets']} sets", f"{bt_each * 1e6:,.0f}", "1x", "")
    t.add_row(f"vectorbt, {n_sets:,} sets, fill at close", f"{vbt_each * 1e6:,.1f}", "", "1x")
    CONSOLE.print(t)
    print(
        f"Goal: the sweep (2 workers) >= 100x backtesting.py per backtest. backtesting.py "
        f"optimize: its fork pool of {os.cpu_count()} processes, one instrument. Trade counts "
        f"agree: backtesting.py {bt['same_trades']} sampled sets, vectorbt "
        f"{engine['same_trades']:,} of {n_sets:,} sets."
    )


def report_tpe(r: Any, memory: dict[str, float], sqlite: dict[str, float]) -> None:
    """Table 4: the TPE study, and Optuna's own cost for the same sampler."""
    t = table_of(
        f"4. TPE study of {r.n_complete:,} trials (2 params, constant_liar, seed 7)",
        "what", "trials", "seconds", "trials/s", "ms per trial", "pruned asks",
    )  # fmt: skip
    rows = [
        ("run_sweep, 2 Ray workers, SQLite catalog", r.n_complete, r.seconds, r.n_infeasible),
        ("  of which the driver in Optuna", r.n_complete, r.storage_seconds, None),
        ("Optuna alone, in memory", memory["complete"], memory["seconds"], memory["pruned"]),
        ("Optuna alone, SQLite RDBStorage", sqlite["complete"], sqlite["seconds"],
         sqlite["pruned"]),
    ]  # fmt: skip
    for name, n, seconds, pruned in rows:
        t.add_row(
            name, f"{n:,}", f"{seconds:.2f}", "" if pruned is None else f"{n / seconds:,.1f}",
            f"{seconds / n * 1e3:.2f}", "" if pruned is None else f"{pruned:,}",
        )  # fmt: skip
    CONSOLE.print(t)
    print(f"TPE sweep: overhead (sweep's own) {r.overhead:.1%}, {r.n_failed} failed trials")


def start_ray(numba_threads: int | None) -> None:
    import ray

    env = {} if numba_threads is None else {"NUMBA_NUM_THREADS": str(numba_threads)}
    # address="local": a new cluster of our own, never one a 'ray start' left on the machine.
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING",
             log_to_driver=False, runtime_env={"env_vars": env} if env else None)  # fmt: skip

    @ray.remote(num_cpus=1)
    def threads() -> int:
        import numba

        return int(numba.get_num_threads())

    print(
        f"numba threads in a 1-CPU Ray task by default: {ray.get(threads.remote())} "
        "(sweep tasks set theirs to the one CPU they reserve)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a tiny grid and few trials")
    parser.add_argument("--numba-threads", type=int, help="NUMBA_NUM_THREADS of Ray workers")
    args = parser.parse_args()
    began, load = time.perf_counter(), os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    world = make_world(QUICK if args.quick else FULL)
    sets, plan = grid_sets(world.plan.fast, world.plan.slow), world.plan
    bars = len(next(iter(world.frames.values())))
    print(f"{len(world.ids)} instruments ({', '.join(world.ids)}), {bars:,} daily bars each")
    bt = backtesting_py(world)  # before Ray and numba's threads start: it forks a pool
    engine = engine_alone(world, sets, args.repeat)
    start_ray(args.numba_threads)
    best = grid_sweeps(world, args.repeat)
    tpe = tpe_sweep(world)
    spec = world.spec("alone", sampler="tpe", trials=plan.tpe_trials, seed=7)
    memory = optuna_alone(spec, optuna.storages.InMemoryStorage())
    spec = world.spec("alone", sampler="tpe", trials=min(plan.tpe_trials, SQLITE_TRIALS), seed=7)
    sqlite = optuna_alone(spec, f"sqlite:///{world.tmp}/optuna-alone.db")
    load = os.getloadavg()
    report_sweeps(best, engine, len(sets))
    report_peers(best, engine, bt, len(sets), len(world.ids))
    report_tpe(tpe, memory, sqlite)
    print(
        f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (2 cores, shared); "
        f"{time.perf_counter() - began:.0f} s in all"
    )


if __name__ == "__main__":
    main()
