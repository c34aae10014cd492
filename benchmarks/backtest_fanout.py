"""Backtest fan-out: the same per-instrument job sequentially, on multiprocessing.Pool(2) and
as a SCIZOR job on Ray with 2 CPUs, in one run.

The job: ``sma_cross(10, 50)`` with IBKR commissions on every listing of the bundled
universe (428 instruments, 5 years of daily bars from ibsim's seeded market), each
instrument's bars read from the Parquet store and its trades and equity written to a result
store. All three contenders run the same per-instrument code
(:class:`optimize.backtest_work.Worker`); the Ray job is the real service
(:meth:`optimize.backtest_jobs.BacktestService.run`: batching, catalog rows, progress).
Pool and Ray workers are warmed up first (imports, numba's cache), then each contender runs
``--repeat`` times and its best time counts.

Prints the times, the ratios (goals: Ray at least 1.8x sequential and within 10 % of the
pool), the CPU seconds each used (Ray's: its raylet, GCS and workers too), the load average
(on a shared machine other work skews the wall times; the CPU seconds much less) and Ray's
overhead as the job measures it (``1 - time inside tasks / (wall x 2)``).

Run: ``.venv/bin/python benchmarks/backtest_fanout.py [--repeat 3] [--bars DIR]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
import ray  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from cluster import universe  # noqa: E402
from core.settings import Settings  # noqa: E402
from ibsim.contracts import default_world  # noqa: E402
from ibsim.market import Market  # noqa: E402
from optimize.backtest_fanout import batches, estimate_seconds  # noqa: E402
from optimize.backtest_jobs import BacktestService  # noqa: E402
from optimize.backtest_spec import parse_spec  # noqa: E402
from optimize.backtest_work import Outcome, Worker, WorkPlan  # noqa: E402
from storage.bars import BarStore  # noqa: E402
from storage.catalog import Catalog, SymbolRecord  # noqa: E402

START, END = pd.Timestamp("2020-06-01", tz="UTC"), pd.Timestamp("2025-06-01", tz="UTC")
SPEC = {
    "strategy": "sma_cross",
    "params": {"fast": 10, "slow": 50},
    "instruments": "all",
    "costs": {"commission": "ibkr"},
}


def write_bars(root: str) -> list[SymbolRecord]:
    """Write 5 years of daily bars of every bundled listing; return them as catalog rows."""
    world = {(c.symbol, c.primary_exchange): c for c in default_world()}
    members = [m for m in universe.select() if (m.symbol, m.primary_exchange) in world]
    market, store = Market(seed=0), BarStore(root)

    def one(member: Any) -> None:
        bars = market.daily(world[(member.symbol, member.primary_exchange)])
        bars = bars.set_axis(bars.index.tz_localize("UTC"))
        store.write(f"{member.symbol}.{member.primary_exchange}", "1d", bars[START:END])

    if not store.instruments("1d"):
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, members))
    return [
        SymbolRecord(
            symbol=m.symbol, sec_type=m.sec_type, exchange=m.exchange, currency=m.currency,
            primary_exchange=m.primary_exchange, name=m.name, universe=m.universe, valid=True,
        )
        for m in members
    ]  # fmt: skip


def _one_thread() -> None:
    """Pool initializer: one compute thread per process, as Ray gives a 1-CPU task."""
    import numba
    import pyarrow

    pyarrow.set_cpu_count(1)
    numba.set_num_threads(1)


def _pool_batch(args: tuple[WorkPlan, list[str]]) -> list[Outcome]:
    plan, instruments = args
    return list(Worker(plan).run(instruments))


def setup(bars: str, tmp: str) -> tuple[Catalog, Settings, list[SymbolRecord]]:
    """The bar store, and a SQLite catalog holding its listings."""
    began = time.perf_counter()
    listings = write_bars(bars)
    print(f"{len(listings)} instruments, bars ready in {time.perf_counter() - began:.1f} s")
    settings = Settings.from_env({"SCIZOR_HOME": tmp, "SCIZOR_BAR_STORE": bars})
    catalog = Catalog(settings.db.url)
    catalog.upgrade()
    catalog.symbols.upsert_many(listings)
    return catalog, settings, listings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bars", help="a bar store to reuse (written there when empty)")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="scizor-fanout-")
    bars = args.bars or os.path.join(tmp, "bars")
    catalog, settings, listings = setup(bars, tmp)
    ids = sorted(r.id for r in listings)
    plan = WorkPlan(backtest_id=1, spec=parse_spec(SPEC), bar_store=bars,
                    results=os.path.join(tmp, "results-local"),
                    currencies={r.id: r.currency for r in listings})  # fmt: skip
    work = [
        (plan, p) for p in batches(ids, workers=2, seconds_each=estimate_seconds("1d", None, None))
    ]
    spawn = multiprocessing.get_context("spawn")
    pools = [spawn.Pool(2), spawn.Pool(2, initializer=_one_thread)]
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    service = BacktestService(catalog, settings)
    for pool in pools:  # warm up: imports and numba's cache in every process
        pool.map(_pool_batch, [(plan, ids[:20]), (plan, ids[20:40])])
    service.run(service.submit(SPEC).id)
    runs: list[Any] = []
    queued = [service.submit(SPEC).id for _ in range(args.repeat)]  # submitting is not timed
    contenders = {
        "sequential": lambda: list(Worker(plan).run(ids)),
        "pool": lambda: pools[0].map(_pool_batch, work),
        "pool1": lambda: pools[1].map(_pool_batch, work),
        "ray": lambda: runs.append(service.run(queued.pop())),
    }
    # Whose CPU each contender uses: this process, plus its pool's, or plus all of Ray's.
    processes = {
        "sequential": [],
        "pool": [p.pid for p in pools[0]._pool],  # type: ignore[attr-defined]
        "pool1": [p.pid for p in pools[1]._pool],  # type: ignore[attr-defined]
        "ray": _ray_processes(pools),
    }
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    for _ in range(args.repeat):  # round by round, so a busy moment hits every contender
        for name, run in contenders.items():
            cpu, began = _cpu(processes[name]), time.perf_counter()
            run()
            times[name].append((time.perf_counter() - began, _cpu(processes[name]) - cpu))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    for pool in pools:
        pool.close()
    ray.shutdown()
    fastest = min(runs, key=lambda r: r.artifacts["fanout"]["wall_seconds"])
    best = {name: min(values) for name, values in times.items()}
    report(len(ids), best, fastest.artifacts["fanout"])


def _ray_processes(pools: list[Any]) -> list[int]:
    """This process's children that are not pool workers: Ray's raylet, GCS and workers."""
    import psutil  # Ray's own dependency

    mine = {p.pid for pool in pools for p in pool._pool}
    return [c.pid for c in psutil.Process().children(recursive=True) if c.pid not in mine]


def _cpu(pids: list[int]) -> float:
    """CPU seconds used so far by this process and ``pids`` (ended ones count 0)."""
    import psutil

    total = time.process_time()
    for pid in pids:
        try:
            used = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += used.user + used.system
    return total


def report(n: int, best: dict[str, tuple[float, float]], fanout: Any) -> None:
    """Print the table, the ratios and Ray's overhead."""
    table = Table(title=f"Per-instrument backtest of {n} instruments, 5 years daily (best of runs)")
    for column in ("contender", "seconds", "vs sequential", "CPU seconds", "goal"):
        table.add_column(column, justify="left" if column == "contender" else "right")
    names = {
        "sequential": ("sequential, one process", ""),
        "pool": ("multiprocessing.Pool(2)", ""),
        "pool1": ("Pool(2), 1 thread per process", ""),
        "ray": ("SCIZOR job on Ray, 2 CPUs", ">= 1.80x"),
    }
    seq = best["sequential"][0]
    for key, (name, goal) in names.items():
        wall, cpu = best[key]
        table.add_row(name, f"{wall:.2f}", f"{seq / wall:.2f}x", f"{cpu:.2f}", goal)
    Console().print(table)
    pool = min(best["pool"][0], best["pool1"][0])
    print(f"Ray vs the faster Pool(2): {best['ray'][0] / pool:.3f} (goal <= 1.10)")
    print(
        f"Ray overhead: {fanout['ray_overhead'] * 100:.1f} % of worker time "
        f"({fanout['tasks']} tasks; {fanout['busy_seconds']:.2f} s inside tasks over "
        f"{fanout['wall_seconds']:.2f} s x {fanout['workers']} workers; goal < 10 %)"
    )
    print("CPU seconds: this process plus its pool's workers, or plus every Ray process.")


if __name__ == "__main__":
    main()
