"""A running backtest job's progress, and the sink that writes its outcomes to the catalog."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import Conflict
from optimize.backtest_work import Outcome
from storage.catalog import Catalog
from storage.catalog.records import BacktestRecord, JobStatus


@dataclass(frozen=True, slots=True, kw_only=True)
class JobProgress:
    """Where a job stands.

    Attributes:
        backtest_id: The job.
        status: queued, running, done, failed or cancelled.
        done: Instruments with a stored result (stats or error); 1 for a finished portfolio.
        failed: Of those, how many have an error instead of stats.
        total: Instruments of the job (1 in portfolio mode).
        fraction: ``done / total`` (1.0 once done).
        worker_pid: The Ray worker that reported last (only while ``run`` reports).
    """

    backtest_id: int
    status: JobStatus
    done: int
    failed: int
    total: int
    fraction: float
    worker_pid: int | None = None


ProgressCallback = Callable[[JobProgress], None]


class CatalogSink:
    """Writes a running job's outcomes to the catalog in small transactions.

    Rows are flushed every ``FLUSH_SECONDS`` or ``FLUSH_ROWS``, with the job's progress; a
    flush the catalog refuses (the job was cancelled) stops the job.
    """

    FLUSH_SECONDS = 0.25
    FLUSH_ROWS = 64
    CHECK_SECONDS = 0.5

    def __init__(
        self, catalog: Catalog, job: BacktestRecord, *, total: int, done: int, failed: int,
        on_progress: ProgressCallback | None,
    ) -> None:  # fmt: skip
        self._repo, self._job, self._total = catalog.backtests, job, max(total, 1)
        self._done, self._failed = done, failed
        self._buffer: list[Outcome] = []
        self._flushed = self._checked = time.monotonic()
        self._on_progress = on_progress
        self._stopped = False
        self._pid: int | None = None

    def add(self, outcome: Outcome) -> None:
        """Buffer one outcome."""
        self._buffer.append(outcome)
        self._pid = outcome.worker_pid or self._pid

    def flush(self, *, force: bool = False) -> bool:
        """Store buffered rows when due; False once the job refuses them (cancelled)."""
        due = time.monotonic() - self._flushed >= self.FLUSH_SECONDS
        if self._stopped or not self._buffer or not (force or due or self._full()):
            return not self._stopped
        rows = [(o.instrument, o.stats, o.error) for o in self._buffer]
        done = self._done + len(rows)
        try:
            self._repo.save_results(self._job.id, rows, progress=min(done / self._total, 1.0))
        except Conflict:
            self._stopped = True
            return False
        self._done, self._failed = done, self._failed + sum(1 for r in rows if r[2])
        self._buffer.clear()
        self._flushed = time.monotonic()
        self.report(JobStatus.RUNNING)
        return True

    def _full(self) -> bool:
        return len(self._buffer) >= self.FLUSH_ROWS

    def stopped(self) -> bool:
        """True once the job is no longer running (checked every ``CHECK_SECONDS``)."""
        if not self._stopped and time.monotonic() - self._checked >= self.CHECK_SECONDS:
            self._checked = time.monotonic()
            self._stopped = self._repo.get(self._job.id).status is not JobStatus.RUNNING
        return self._stopped

    def report(self, status: JobStatus) -> None:
        """Tell the progress callback where the job stands."""
        if self._on_progress is not None:
            self._on_progress(
                JobProgress(
                    backtest_id=self._job.id,
                    status=status,
                    done=self._done,
                    failed=self._failed,
                    total=self._total,
                    fraction=min(self._done / self._total, 1.0),
                    worker_pid=self._pid,
                )
            )
