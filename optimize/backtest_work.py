"""What one worker does for a backtest job: read bars, run the engine, store trades and equity.

Plain Python (no Ray): the Ray tasks of :mod:`optimize.backtest_fanout` call these, and so do
the benchmark's sequential and ``multiprocessing`` runs, so every contender does the same
work. Bars are read on the worker straight from the Parquet store; trades and equity go to
the result store (:class:`storage.results.ResultStore`); only the small stats dict travels
back to the driver, which writes it to the catalog.

A problem of one instrument (no bars in the range, unreadable or invalid bars, a rule period
longer than the data) is that instrument's error and never stops the others. A failing
result store is not: it raises, and the job fails.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.errors import DataError, NotFound, ScizorError, StorageError
from optimize.backtest_spec import BacktestSpec
from storage.bars import BarStore
from storage.results import PORTFOLIO, ResultStore
from strategies.base import Strategy
from strategies.engine import run_backtest, run_portfolio


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkPlan:
    """Everything a worker needs for its part of one job (small: it travels to every task).

    Attributes:
        backtest_id: The job.
        spec: The job's spec.
        bar_store: The bar store root (path or URI) the workers read.
        results: The result store root (path or URI) the workers write.
        currencies: Each instrument's currency (what ``commission="ibkr"`` prices by).
    """

    backtest_id: int
    spec: BacktestSpec
    bar_store: str
    results: str
    currencies: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """One instrument's (or the portfolio's) result, as a worker reports it.

    Attributes:
        instrument: The canonical id, or ``"portfolio"``.
        stats: The engine's metrics ({} when ``error`` is set).
        error: Why there is no result, or None.
        seconds: Time spent on it inside the worker (read, backtest, write).
        worker_pid: The worker process.
    """

    instrument: str
    stats: dict[str, Any]
    error: str | None = None
    seconds: float = 0.0
    worker_pid: int = 0


class Worker:
    """Runs instruments of one job in one process (stores and strategy built once)."""

    def __init__(self, plan: WorkPlan) -> None:
        self.plan = plan
        self.bars = BarStore(plan.bar_store)
        self.results = ResultStore(plan.results)
        self.strategy: Strategy = plan.spec.build_strategy()

    def run(self, instruments: Iterable[str]) -> Iterator[Outcome]:
        """Yield one outcome per instrument, in order, each stored before it is yielded."""
        for instrument in instruments:
            yield self.one(instrument)

    def one(self, instrument: str) -> Outcome:
        """Backtest one instrument and store its trades and equity.

        Raises:
            StorageError: the result store refused the write.
        """
        began = time.perf_counter()
        try:
            stats = self._backtest(instrument)
            error = None
        except StorageError:
            raise
        except ScizorError as exc:
            stats, error = {}, str(exc)
        return Outcome(
            instrument=instrument,
            stats=stats,
            error=error,
            seconds=time.perf_counter() - began,
            worker_pid=os.getpid(),
        )

    def _backtest(self, instrument: str) -> dict[str, Any]:
        spec = self.plan.spec
        bars = self._bars(instrument)
        check_bars = getattr(self.strategy, "check_bars", None)
        if check_bars is not None:  # a rule period longer than the data can never fire
            check_bars(len(bars))
        currency = self.plan.currencies.get(instrument, "USD")
        result = run_backtest(
            bars,
            self.strategy,
            spec.params,
            symbol=instrument,
            **spec.engine_kwargs(currency=currency),
        )
        self.results.write(
            self.plan.backtest_id,
            instrument,
            trades=result.trades,
            equity=result.equity,
            benchmark=result.benchmark,
        )
        return dict(result.stats)

    def _bars(self, instrument: str) -> Any:
        spec = self.plan.spec
        try:
            bars = self.bars.read(instrument, spec.bar_size, spec.start, spec.end)
        except (StorageError, OSError, ValueError) as exc:
            # That instrument's files, not the job: a corrupt partition reaches us as
            # pyarrow's own error (ArrowInvalid is a ValueError, ArrowIOError an OSError).
            if isinstance(exc, ScizorError) and not isinstance(exc, StorageError):
                raise
            raise DataError(f"the stored bars of {instrument} are unreadable: {exc}") from exc
        if bars.empty:
            raise NotFound(no_bars_message(instrument, spec))
        return bars

    def portfolio(self, instruments: list[str]) -> Outcome:
        """Run one account over every instrument (``run_portfolio``) and store it.

        Raises:
            StorageError: the result store refused the write.
        """
        began = time.perf_counter()
        spec = self.plan.spec
        try:
            stats = self._portfolio(instruments, spec)
            error = None
        except StorageError:
            raise
        except ScizorError as exc:
            stats, error = {}, str(exc)
        seconds = time.perf_counter() - began
        return Outcome(
            instrument=PORTFOLIO, stats=stats, error=error, seconds=seconds, worker_pid=os.getpid()
        )

    def _portfolio(self, instruments: list[str], spec: BacktestSpec) -> dict[str, Any]:
        frames = self.bars.read_many(instruments, spec.bar_size, spec.start, spec.end)
        empty = [i for i, f in frames.items() if f.empty]
        if empty:
            raise NotFound(no_bars_message(empty[0], spec, others=len(empty) - 1))
        result = run_portfolio(
            frames,
            self.strategy,
            spec.params,
            currencies={i: self.plan.currencies.get(i, "USD") for i in instruments},
            **spec.engine_kwargs(),
        )
        self.results.write(
            self.plan.backtest_id,
            PORTFOLIO,
            trades=result.trades,
            equity=result.equity,
            benchmark=result.benchmark,
        )
        return dict(result.stats)


def no_bars_message(instrument: str, spec: BacktestSpec, *, others: int = 0) -> str:
    """Say that ``instrument`` has no bars for the job, and how to collect them."""
    window = ""
    command = f"scizor collect history {instrument} --bar-size {spec.bar_size}"
    if spec.start is not None:
        window += f" from {spec.start:%Y-%m-%d}"
        command += f" --start {spec.start:%Y-%m-%d}"
    if spec.end is not None:
        window += f" before {spec.end:%Y-%m-%d}"
        command += f" --end {spec.end:%Y-%m-%d}"
    more = f" (and {others} more instruments)" if others else ""
    return (
        f"no {spec.bar_size} bars of {instrument}{more} are stored{window}; collect them "
        f"with: {command}"
    )
