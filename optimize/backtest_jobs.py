"""The backtest job service: what the CLI and the HTTP API call.

::

    service = BacktestService(catalog, settings)
    job = service.submit({"strategy": "sma_cross", "universe": "asx200"})   # queued row
    service.run(job.id, on_progress=print)        # the driver (``scizor backtest --run ID``)
    service.results(job.id)[0]                    # the best instrument by the job's metric

``submit`` only checks and stores (it never runs anything): the API answers 202 and starts
the driver as a Ray Job running ``scizor`` with :meth:`BacktestService.run_args`. ``run``
must execute in a process that joined the Ray cluster; it fans the job out
(:mod:`optimize.backtest_fanout`), writes each instrument's stats row as it arrives, and
finishes the job with its summary.
``cancel`` works from any process: the driver notices within a fraction of a second, stops
its tasks and removes what they stored after the cancellation, so nothing of the job is
written once it is cancelled. A job whose driver died stays ``running``; ``run`` on it again
resumes, computing only the instruments without a row.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from core.errors import Conflict, NotFound
from core.settings import Settings
from optimize import backtest_ranking as ranking
from optimize import backtest_report as report
from optimize import backtest_submit as submitting
from optimize.backtest_fanout import FanOutReport, run_fanout, workers_available
from optimize.backtest_ranking import RankedResult, StrategyPerformance
from optimize.backtest_sink import CatalogSink, JobProgress, ProgressCallback
from optimize.backtest_spec import BacktestSpec, parse_spec
from optimize.backtest_work import WorkPlan
from storage.bars import BarStore
from storage.catalog import Catalog
from storage.catalog.records import BacktestRecord, JobStatus
from storage.catalog.research import PORTFOLIO, ResultRow
from storage.results import ResultStore

__all__ = [
    "BacktestPage",
    "BacktestService",
    "JobProgress",
    "ProgressCallback",
    "RankedResult",
    "StrategyPerformance",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestPage:
    """One page of :meth:`BacktestService.list`: ``items`` newest first, ``total`` matches."""

    items: list[BacktestRecord]
    total: int
    offset: int
    limit: int


class BacktestService:
    """Backtest jobs over the catalog, the bar store and the result store.

    Args:
        catalog: The :class:`storage.catalog.Catalog`.
        settings: The platform settings (bar store location).
        results: Where trades and equity go; default ``results`` beside the bar store.
    """

    def __init__(
        self, catalog: Catalog, settings: Settings, *, results: ResultStore | None = None
    ) -> None:
        self.catalog = catalog
        self.bar_store = settings.storage.bar_store
        self.results_store = results or ResultStore.beside(self.bar_store)

    # -- jobs -------------------------------------------------------------------------------

    def submit(self, spec: BacktestSpec | Mapping[str, Any] | str) -> BacktestRecord:
        """Check a job spec, resolve its instruments and queue it (status ``queued``).

        Raises:
            ValidationError: a bad field, named by its spec path; nothing is written.
            ParameterError: a bad strategy parameter (``params.<name>``).
            AmbiguousInstrument: a bare symbol names several listings.
        """
        parsed = spec if isinstance(spec, BacktestSpec) else parse_spec(spec)
        chosen = submitting.listings(self.catalog, parsed.selection)
        submitting.check_bars(parsed, chosen, self.bar_store)
        submitting.check_currencies(parsed, chosen)
        return self.catalog.backtests.create(**submitting.record_fields(parsed, chosen))

    def run_args(self, backtest_id: int) -> tuple[str, ...]:
        """The ``scizor`` arguments that run a queued job (a Ray Job's entrypoint is
        ``scizor backtest --run ID``)."""
        return ("backtest", "--run", str(int(backtest_id)))

    def run(
        self, backtest_id: int, *, on_progress: ProgressCallback | None = None
    ) -> BacktestRecord:
        """Run a queued job (or resume a running one) to the end; return its final record.

        Needs a joined Ray cluster. A cancellation ends it early (status ``cancelled``);
        an interrupt (Ctrl-C) cancels the job; any other error marks it ``failed`` and is
        raised again.

        Raises:
            ConfigError: this process has not joined a Ray cluster (the job is untouched).
            Conflict: the job is done, failed or cancelled already.
            NotFound: no such job.
        """
        workers = workers_available()
        job = self.catalog.backtests.start(backtest_id)
        spec, currencies = submitting.spec_of(job)
        try:
            fanned = self._fan_out(job, spec, currencies, on_progress, workers=workers)
            return self._finish(job, spec, fanned)
        except KeyboardInterrupt:  # Ctrl-C: the tasks were stopped on the way out
            with contextlib.suppress(Conflict):
                self.cancel(backtest_id)
            self._clean(backtest_id)
            raise
        except Exception as exc:  # the driver's top level: the job must not stay running
            self._fail(backtest_id, exc)
            raise

    def _fan_out(
        self,
        job: BacktestRecord,
        spec: BacktestSpec,
        currencies: dict[str, str],
        on_progress: ProgressCallback | None,
        *,
        workers: int,
    ) -> FanOutReport | None:
        stored = self.catalog.backtests.results(job.id)
        have = {r.instrument for r in stored}
        portfolio = spec.options.mode == "portfolio"
        todo = [] if portfolio and have else [i for i in job.instruments if i not in have]
        sink = CatalogSink(
            self.catalog, job, total=1 if portfolio else len(job.instruments),
            done=len(have), failed=sum(1 for r in stored if r.error), on_progress=on_progress,
        )  # fmt: skip
        sink.report(JobStatus.RUNNING)
        if not todo:
            return None
        plan = WorkPlan(
            backtest_id=job.id, spec=spec, bar_store=self.bar_store,
            results=self.results_store.address, currencies=currencies,
        )  # fmt: skip
        fanned = run_fanout(plan, todo, sink=sink, portfolio=portfolio, workers=workers)
        if fanned.lost and not fanned.cancelled:
            why = "its worker died in every attempt"
            lost = [PORTFOLIO] if portfolio else fanned.lost
            rows: builtins.list[ResultRow] = [(i, {}, why) for i in lost]
            with contextlib.suppress(Conflict):  # cancelled meanwhile: nothing more is stored
                self.catalog.backtests.save_results(job.id, rows)
        return fanned

    def _finish(
        self, job: BacktestRecord, spec: BacktestSpec, fanned: FanOutReport | None
    ) -> BacktestRecord:
        rows = self._clean(job.id)
        if fanned is not None and fanned.cancelled:
            return self.get(job.id)
        stats = ranking.summary(
            rows, mode=spec.options.mode, metric=spec.options.sort,
            instruments=len(job.instruments),
        )  # fmt: skip
        artifacts: dict[str, Any] = {"results": self.results_store.location(job.id)}
        if fanned is not None:
            artifacts["fanout"] = fanned.as_dict()
        try:
            return self.catalog.backtests.finish(job.id, stats=stats, artifacts=artifacts)
        except Conflict:  # cancelled between the last result and now
            return self.get(job.id)

    def _clean(self, backtest_id: int) -> builtins.list[Any]:
        """Remove stored files without a result row (written after a cancellation, or left
        by killed writers); return the rows."""
        rows = self.catalog.backtests.results(backtest_id)
        self.results_store.clean(backtest_id, keep=[r.instrument for r in rows])
        return rows

    def _fail(self, backtest_id: int, exc: BaseException) -> None:
        with contextlib.suppress(Conflict):  # cancelled meanwhile: it stays cancelled
            self.catalog.backtests.fail(backtest_id, f"{type(exc).__name__}: {exc}")

    def cancel(self, backtest_id: int) -> BacktestRecord:
        """Cancel a queued or running job; its driver stops its tasks.

        Raises:
            Conflict: the job is done or failed.
            NotFound: no such job.
        """
        return self.catalog.backtests.cancel(backtest_id)

    def get(self, backtest_id: int) -> BacktestRecord:
        """Return a job (NotFound if absent)."""
        return self.catalog.backtests.get(backtest_id)

    def list(
        self,
        *,
        strategy: str | None = None,
        instrument: str | None = None,
        status: JobStatus | str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> BacktestPage:
        """Return a page of jobs, newest first, and how many match in all.

        ``instrument`` is an id or a bare symbol with one listing; ``since``/``until``
        bound the creation time (``until`` exclusive).
        """
        if instrument is not None:
            instrument = self.catalog.symbols.resolve(instrument)
        repo = self.catalog.backtests
        items = repo.list(strategy=strategy, status=status, instrument=instrument, since=since,
                          until=until, offset=offset, limit=limit)  # fmt: skip
        total = repo.count(
            strategy=strategy, status=status, instrument=instrument, since=since, until=until
        )
        return BacktestPage(items=items, total=total, offset=offset, limit=limit)

    def progress(self, backtest_id: int) -> JobProgress:
        """Return where a job stands (from the catalog)."""
        job = self.get(backtest_id)
        ok, failed = self.catalog.backtests.result_counts(backtest_id)
        portfolio = job.options.get("mode") == "portfolio"
        total = 1 if portfolio else len(job.instruments)
        done = min(ok + failed, total)
        fraction = 1.0 if job.status is JobStatus.DONE else done / max(total, 1)
        return JobProgress(
            backtest_id=backtest_id, status=job.status, done=done, failed=failed, total=total,
            fraction=fraction,
        )  # fmt: skip

    # -- results ----------------------------------------------------------------------------

    def results(self, backtest_id: int) -> builtins.list[RankedResult]:
        """Return the job's result rows ranked by its metric (``options.sort``), best first."""
        job = self.get(backtest_id)
        rows = self.catalog.backtests.results(backtest_id)
        return ranking.rank(rows, str(job.options.get("sort", "sharpe")))

    def trades(self, backtest_id: int, instrument: str | None = None) -> pd.DataFrame:
        """Return the job's closed trades (one instrument's, or all), by entry time.

        Raises:
            NotFound: no such job, or ``instrument`` has no stored result in it.
        """
        return self.results_store.trades(self.get(backtest_id).id, self._key(instrument))

    def equity(self, backtest_id: int, instrument: str | None = None) -> pd.DataFrame:
        """Return equity curves, long form: columns ``instrument ts equity benchmark``.

        Raises:
            NotFound: no such job, or ``instrument`` has no stored result in it.
        """
        return self.results_store.equity(self.get(backtest_id).id, self._key(instrument))

    def _key(self, instrument: str | None) -> str | None:
        if instrument is None or instrument.strip().lower() == PORTFOLIO:
            return None if instrument is None else PORTFOLIO
        return str(self.catalog.symbols.resolve(instrument))

    def report_html(self, backtest_id: int, instrument: str | None = None) -> str:
        """Return the HTML tearsheet of one instrument, of the portfolio, or of the job.

        Raises:
            NotFound: no such job, or no stored result for it (or for ``instrument``).
        """
        job = self.get(backtest_id)
        key = self._key(instrument)
        if key is None and job.options.get("mode") == "portfolio":
            key = PORTFOLIO
        if key is not None:
            return self._instrument_report(job, key)
        ranked = self.results(backtest_id)
        equity = self.results_store.equity(backtest_id)
        if equity.empty:
            raise NotFound(f"backtest {backtest_id} has no stored results yet ({job.status})")
        metric = str(job.options.get("sort", "sharpe"))
        medians = {k: v["median"] for k, v in (job.stats or {}).get("metrics", {}).items()}
        title = f"{job.strategy} backtest {job.id}"
        return report.job_report(
            title=title, equity=equity, medians=medians, ranked=ranked, metric=metric
        )

    def _instrument_report(self, job: BacktestRecord, key: str) -> str:
        rows = {r.instrument: r for r in self.catalog.backtests.results(job.id)}
        if key not in rows or rows[key].error:
            why = rows[key].error if key in rows else "no stored result"
            raise NotFound(f"backtest {job.id} has no result for {key}: {why}")
        bars = None
        if key != PORTFOLIO:
            bars = BarStore(self.bar_store).read(key, job.bar_size, job.start, job.end)
        return report.instrument_report(
            title=f"{job.strategy} on {key}, backtest {job.id}",
            equity=self.results_store.equity(job.id, key),
            trades=self.results_store.trades(job.id, key),
            stats=rows[key].stats,
            bars=bars,
        )

    def strategy_performance(self, name: str) -> StrategyPerformance:
        """Return how ``name`` did over all of its finished backtests.

        Raises:
            NotFound: no finished backtest of that strategy.
        """
        jobs: builtins.list[tuple[BacktestRecord, builtins.list[Any]]] = []
        offset = 0
        while True:
            page = self.catalog.backtests.list(
                strategy=name, status=JobStatus.DONE, offset=offset, limit=1000
            )
            jobs += [(job, self.catalog.backtests.results(job.id)) for job in page]
            if len(page) < 1000:
                break
            offset += 1000
        if not jobs:
            raise NotFound(f"strategy {name!r} has no finished backtest")
        return ranking.performance(name, jobs)
