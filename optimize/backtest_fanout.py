"""Fan a backtest job out over Ray: batches of instruments as streaming tasks.

Each task (``num_cpus=1``) builds a :class:`~optimize.backtest_work.Worker` on its node,
reads bars straight from the Parquet store, stores trades and equity, and yields the small
:class:`~optimize.backtest_work.Outcome` of each instrument once it is stored (grouped, a
report at most every ``YIELD_SECONDS``); bars never pass through the driver.

Batching: a task costs Ray a few milliseconds (scheduling, the worker's setup, one object per
yield), so each task must run long enough for that to stay under 10 %, yet the last tasks
must be short so no worker idles while another finishes a long one. Batches are sized as in
guided self-scheduling: each takes ``ceil(remaining / (GUIDED x workers))`` instruments, so
they shrink as the job goes on, but never fewer than ``ceil(MIN_TASK_SECONDS / estimated
seconds per instrument)`` (the estimate grows with the bars per instrument) and never more
than ``MAX_BATCH``. For the bundled universe (428 instruments, 5 years daily) on 2 workers
that is 8 tasks of 107, 81, 60, 45, 39, 39, 39 and 18 instruments. The driver measures
the time spent inside the tasks and reports Ray's overhead as
``1 - busy / (wall x workers in use)``.

A task whose worker dies (killed, out of memory, node lost) is resubmitted for the
instruments it had not reported, up to ``MAX_ROUNDS`` rounds; what it reported was already
persisted, and an instrument stored twice is replaced, never duplicated. When the sink says
stop (the job was cancelled), outstanding tasks are cancelled and awaited, so nothing is
written once :meth:`FanOut.run` returns.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import ray

from core.barsize import bar_size as parse_bar_size
from core.errors import ConfigError, ScizorError
from optimize.backtest_work import Outcome, Worker, WorkPlan
from strategies.threads import use_threads

TASK_CPUS = 1.0
"""CPUs a batch task reserves: the engine is CPU-bound."""
GUIDED = 2
"""A batch takes 1 / (GUIDED x workers) of the instruments still to submit."""
MIN_TASK_SECONDS = 0.25
"""Shortest task worth Ray's per-task cost (a few ms) at under 10 % overhead."""
MAX_BATCH = 256
"""Most instruments in one task (bounds what a killed worker costs)."""
MAX_ROUNDS = 3
"""Rounds of resubmission for instruments whose worker died."""
YIELD_SECONDS = 0.1
"""A task reports what it has done at least this often (one object per report)."""
POLL_SECONDS = 0.2
"""How often the driver checks for cancellation while it waits."""
CANCEL_GRACE_SECONDS = 10.0
"""How long cancelled tasks may take to stop before their workers are killed."""


class Sink(Protocol):
    """Where outcomes go (the job's catalog rows); says when to stop."""

    def add(self, outcome: Outcome) -> None:
        """Buffer one outcome."""
        ...

    def flush(self, *, force: bool = False) -> bool:
        """Persist buffered outcomes when due (always with ``force``); False once the job
        no longer takes results (it was cancelled)."""
        ...

    def stopped(self) -> bool:
        """True once the job should stop (checked against the catalog now and then)."""
        ...


def estimate_seconds(bar_size: str, start: datetime | None, end: datetime | None) -> float:
    """Estimate one instrument's time in a task: a fixed part plus a part per bar."""
    size = parse_bar_size(bar_size)
    years = 5.0 if start is None or end is None else max((end - start).days / 365.25, 0.05)
    bars_per_day = 1.0 if size.is_daily else 6.5 * 3600 / size.seconds
    return 0.004 + years * 252 * bars_per_day * 2e-6


def min_batch(seconds_each: float) -> int:
    """The fewest instruments a task gets: enough to run ``MIN_TASK_SECONDS``."""
    return max(1, min(MAX_BATCH, math.ceil(MIN_TASK_SECONDS / max(seconds_each, 1e-6))))


def batches(instruments: Sequence[str], *, workers: int, seconds_each: float) -> list[list[str]]:
    """Split ``instruments`` into consecutive, shrinking batches (see the module docstring)."""
    smallest, out, at = min_batch(seconds_each), [], 0
    while at < len(instruments):
        share = math.ceil((len(instruments) - at) / (GUIDED * max(workers, 1)))
        size = max(smallest, min(MAX_BATCH, share))
        out.append(list(instruments[at : at + size]))
        at += size
    return out


def workers_available() -> int:
    """How many batch tasks the cluster runs at once.

    Raises:
        ConfigError: when this process has not joined a Ray cluster.
    """
    if not ray.is_initialized():
        raise ConfigError(
            "join the Ray cluster first (cluster.bootstrap.connect(settings), or "
            "'scizor backtest', which does it)"
        )
    cpus = float(ray.cluster_resources().get("CPU", 1.0))  # type: ignore[no-untyped-call]
    return max(1, int(cpus / TASK_CPUS))


def _batch(plan: WorkPlan, instruments: list[str]) -> Iterator[list[Outcome]]:
    """Ray generator task: the outcomes of its instruments, each stored before it is
    yielded, in groups of at most ``YIELD_SECONDS`` of work (a yield costs about a
    millisecond, as much as a tenth of one instrument)."""
    use_threads(int(TASK_CPUS))  # the CPUs it reserved, not every core of the node
    group: list[Outcome] = []
    since = time.monotonic()
    for outcome in Worker(plan).run(instruments):
        group.append(outcome)
        if time.monotonic() - since >= YIELD_SECONDS:
            yield group
            group, since = [], time.monotonic()
    if group:
        yield group


def _portfolio(plan: WorkPlan, instruments: list[str]) -> Iterator[list[Outcome]]:
    """Ray generator task: the one portfolio outcome."""
    use_threads(int(TASK_CPUS))
    yield [Worker(plan).portfolio(instruments)]


batch_task: Any = ray.remote(num_cpus=TASK_CPUS, max_retries=0)(_batch)
portfolio_task: Any = ray.remote(num_cpus=TASK_CPUS, max_retries=0)(_portfolio)


@dataclass(slots=True, kw_only=True)
class FanOutReport:
    """What a fan-out did: rounds, resubmissions, losses, and the time it took."""

    tasks: int = 0
    rounds: int = 0
    requeued: int = 0
    lost: list[str] = field(default_factory=list)
    cancelled: bool = False
    workers: int = 1
    wall_seconds: float = 0.0
    busy_seconds: float = 0.0

    @property
    def overhead(self) -> float:
        """Ray's share of the worker time: ``1 - busy / (wall x workers in use)``."""
        used = max(1, min(self.workers, self.tasks))
        if self.wall_seconds <= 0:
            return 0.0
        return max(0.0, 1.0 - self.busy_seconds / (self.wall_seconds * used))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures (for the job's artifacts)."""
        return {
            "tasks": self.tasks,
            "rounds": self.rounds,
            "requeued": self.requeued,
            "workers": self.workers,
            "wall_seconds": round(self.wall_seconds, 4),
            "busy_seconds": round(self.busy_seconds, 4),
            "ray_overhead": round(self.overhead, 4),
        }


@dataclass(slots=True, kw_only=True)
class FanOut:
    """Drives one job's tasks; outcomes go to ``sink`` as they arrive."""

    plan: WorkPlan
    sink: Sink
    workers: int
    report: FanOutReport = field(default_factory=FanOutReport)
    _started: float = 0.0

    def run(self, instruments: Sequence[str], *, portfolio: bool = False) -> FanOutReport:
        """Run every instrument (one task over all of them when ``portfolio``).

        Raises:
            ScizorError: a task failed for a reason other than its worker dying (e.g. the
                result store refused a write); outstanding tasks are cancelled first.
        """
        self.report = FanOutReport(workers=self.workers)
        self._started = time.perf_counter()
        todo = list(instruments)
        for round_no in range(MAX_ROUNDS):
            if not todo or self.report.cancelled:
                break
            self.report.rounds = round_no + 1
            if round_no:
                self.report.requeued += len(todo)
            todo = self._round(todo, portfolio=portfolio)
        self.report.lost = [] if self.report.cancelled else todo
        self.report.wall_seconds = time.perf_counter() - self._started
        return self.report

    def _submit(self, todo: list[str], portfolio: bool) -> dict[Any, set[str]]:
        if portfolio:
            self.report.tasks += 1
            return {portfolio_task.remote(self.plan, todo): {"portfolio"}}
        spec = self.plan.spec
        each = estimate_seconds(spec.bar_size, spec.start, spec.end)
        waiting = {}
        for part in batches(todo, workers=self.workers, seconds_each=each):
            waiting[batch_task.remote(self.plan, part)] = set(part)
            self.report.tasks += 1
        return waiting

    def _round(self, todo: list[str], *, portfolio: bool) -> list[str]:
        """Run one round; return the instruments whose worker died before reporting them."""
        waiting = self._submit(todo, portfolio)
        lost: list[str] = []
        try:
            while waiting and not self.report.cancelled:
                ready, _ = ray.wait(list(waiting), num_returns=1, timeout=POLL_SECONDS)
                for gen in ready:
                    lost.extend(self._take(gen, waiting))
                self.report.cancelled = not self.sink.flush() or self.sink.stopped()
            self.report.cancelled = self.report.cancelled or not self.sink.flush(force=True)
        finally:
            _stop(list(waiting))  # cancelled, or an error: nothing may run on unseen
        if portfolio:
            return todo if lost else []
        return lost

    def _take(self, gen: Any, waiting: dict[Any, set[str]]) -> list[str]:
        """Take the next outcome of ``gen``; return its unreported part once it ends."""
        outstanding = waiting[gen]
        try:
            group: list[Outcome] = ray.get(next(gen))
        except StopIteration:
            del waiting[gen]
            return sorted(outstanding)  # ended without reporting them: run them again
        except ray.exceptions.RayTaskError as exc:
            del waiting[gen]
            cause = exc.cause
            if isinstance(cause, ScizorError):
                raise cause from None
            raise
        except ray.exceptions.RayError:  # the worker died: its unreported part goes again
            del waiting[gen]
            return sorted(outstanding)
        for outcome in group:
            outstanding.discard(outcome.instrument)
            self.report.busy_seconds += outcome.seconds
            self.sink.add(outcome)
        return []


def _stop(gens: list[Any], *, grace: float = CANCEL_GRACE_SECONDS) -> None:
    """Cancel tasks and wait until each has ended (killing workers that do not stop)."""
    if not gens:
        return
    for gen in gens:
        ray.cancel(gen)
    deadline = time.monotonic() + grace
    pending = list(gens)
    while pending and time.monotonic() < deadline:
        pending = [g for g in pending if not _ended(g)]
    for gen in pending:
        ray.cancel(gen, force=True)
    deadline = time.monotonic() + grace
    while pending and time.monotonic() < deadline:
        pending = [g for g in pending if not _ended(g)]


def _ended(gen: Any, *, timeout: float = 0.05) -> bool:
    """Drain what ``gen`` has produced; True once it has finished or failed."""
    try:
        ready, _ = ray.wait([gen], num_returns=1, timeout=timeout)
        if not ready:
            return False
        ray.get(next(gen))
        return False
    except StopIteration:
        return True
    except ray.exceptions.RayError:
        return True


def run_fanout(
    plan: WorkPlan,
    instruments: Sequence[str],
    *,
    sink: Sink,
    portfolio: bool = False,
    workers: int | None = None,
) -> FanOutReport:
    """Run a job's instruments over Ray; outcomes go to ``sink`` (see :class:`FanOut`)."""
    fan = FanOut(plan=plan, sink=sink, workers=workers or workers_available())
    return fan.run(instruments, portfolio=portfolio)
