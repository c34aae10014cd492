"""Collect bars for many instruments: batches of targets fan out as Ray tasks.

Each task (a Ray generator task, ``num_cpus=0.5``) runs a few threads over its batch; every
thread asks the gateway actor for the missing ranges of one symbol
(:func:`cluster.collect_plan.collect_one`) and merges them into the Parquet store. The task
yields one :class:`~cluster.collect_plan.ItemResult` per symbol as soon as it is done, so the
driver records per-instrument status in the catalog while the run goes on. A batch whose worker
dies is resubmitted (bounded rounds) for the symbols it had not reported. Killing the driver
loses nothing: the store's coverage manifest says what is still missing, and the next run
fetches only that.

Run it from a shell as ``scizor collect daily`` (see :mod:`cluster.cli_data`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import ray

from cluster.collect_plan import (
    FAILED,
    ItemResult,
    RetryPolicy,
    Tally,
    Target,
    batches,
    collect_one,
)
from core.errors import Conflict, NotConnected

TASK_CPUS = 0.5
"""CPUs each batch task reserves: a task mostly waits on the gateway and on disk."""
THREADS_PER_TASK = 4
"""Symbols a task works on at once (overlaps gateway latency with Parquet writes)."""
FETCH_TIMEOUT_S = 600.0
"""Upper bound on one gateway request, pacing waits included."""
MAX_ROUNDS = 3
"""How many times a batch whose worker died is resubmitted."""


class Recorder(Protocol):
    """Where a run's per-instrument status goes (the catalog, or nothing)."""

    def begin(self, kind: str, targets: Sequence[Target]) -> int | None: ...

    def running(self, run_id: int | None, targets: Sequence[Target]) -> None: ...

    def finished(self, run_id: int | None, result: ItemResult) -> None: ...

    def heartbeat(self, run_id: int | None) -> None: ...

    def end(self, run_id: int | None, tally: Tally) -> None: ...


class NullRecorder:
    """Records nothing (benchmarks, ad-hoc runs)."""

    def begin(self, kind: str, targets: Sequence[Target]) -> int | None:
        return None

    def running(self, run_id: int | None, targets: Sequence[Target]) -> None:
        return None

    def finished(self, run_id: int | None, result: ItemResult) -> None:
        return None

    def heartbeat(self, run_id: int | None) -> None:
        return None

    def end(self, run_id: int | None, tally: Tally) -> None:
        return None


class CatalogRecorder:
    """Records a run and its per-instrument status in the catalog's ``collection_runs``.

    The run holds a lease (see :mod:`storage.catalog.collection_runs`) renewed every
    ``RENEW_EVERY_S`` while the driver works, so a second run of the same kind is refused
    while this one lives and may take over once a killed driver's lease has run out.
    """

    RENEW_EVERY_S = 20.0

    def __init__(self, catalog: Any) -> None:
        self._runs = catalog.collection_runs
        self._ids: dict[tuple[str, str], int] = {}
        self._renewed = 0.0

    def begin(self, kind: str, targets: Sequence[Target]) -> int | None:
        specs = [(t.key, t.bar_size, t.start, t.end) for t in targets]
        self._release_dead_local_driver(kind)
        run = self._runs.create(kind, specs, owner=_owner())  # Conflict while another runs
        self._renewed = time.monotonic()
        self._ids = {(i.instrument, i.bar_size): i.id for i in self._runs.items(run.id)}
        return int(run.id)

    def running(self, run_id: int | None, targets: Sequence[Target]) -> None:
        for t in targets:
            self._runs.start_item(self._ids[(t.key, t.bar_size)])

    def finished(self, run_id: int | None, result: ItemResult) -> None:
        item = self._ids[(result.instrument, result.bar_size)]
        if result.status == FAILED:
            self._runs.fail_item(item, result.error or "unknown error")
        else:
            self._runs.finish_item(item, bars_written=result.bars_written)

    def _release_dead_local_driver(self, kind: str) -> None:
        """End the lease of a run whose driver was on this host and is gone (``kill -9``).

        Its lease would otherwise hold the next run off for up to its length; a driver on
        another host is trusted until its lease runs out.
        """
        run = self._runs.latest(kind=kind)
        if run is None or run.status != "running" or not run.owner:
            return
        host, _, pid = run.owner.partition(" pid ")
        if host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(Conflict):  # closed meanwhile by someone else
                self._runs.renew(run.id, lease=timedelta(0))

    def heartbeat(self, run_id: int | None) -> None:
        if run_id is not None and time.monotonic() - self._renewed >= self.RENEW_EVERY_S:
            self._runs.renew(run_id)
            self._renewed = time.monotonic()

    def end(self, run_id: int | None, tally: Tally) -> None:
        if run_id is not None:
            self._runs.finish(run_id)


def _owner() -> str:
    return f"{socket.gethostname()} pid {os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayFetch:
    """``fetch(...)`` for :func:`collect_one` that asks the gateway actor for bars."""

    gateway: Any
    what_to_show: str = "TRADES"
    use_rth: bool = True
    timeout: float = FETCH_TIMEOUT_S

    def __call__(self, instrument: Any, *, bar_size: str, start: datetime, end: datetime) -> Any:
        ref = self.gateway.historical_bars.remote(
            instrument,
            bar_size=bar_size,
            start=start,
            end=end,
            what_to_show=self.what_to_show,
            use_rth=self.use_rth,
        )
        try:
            return ray.get(ref, timeout=self.timeout)
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause
            if isinstance(cause, Exception):
                raise cause from None
            raise
        except ray.exceptions.GetTimeoutError as exc:
            ray.cancel(ref)
            raise TimeoutError(f"gateway gave no bars within {self.timeout:.0f} s") from exc
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
            raise NotConnected(f"gateway actor unavailable: {exc}") from exc


def _collect_batch(
    targets: list[Target], gateway: Any, store_root: str, retry: RetryPolicy
) -> Iterator[ItemResult]:
    """Ray generator task body: yield one result per target, in completion order."""
    from storage.bars import BarStore

    store = BarStore(store_root)
    fetch = GatewayFetch(gateway=gateway)
    with ThreadPoolExecutor(max_workers=THREADS_PER_TASK) as pool:
        futures = [
            pool.submit(collect_one, t, store=store, fetch=fetch, retry=retry) for t in targets
        ]
        for future in as_completed(futures):
            yield replace(future.result(), worker_pid=os.getpid())


collect_batch: Any = ray.remote(num_cpus=TASK_CPUS, max_retries=0)(_collect_batch)


@dataclass(slots=True, kw_only=True)
class Collection:
    """One collection run's driver state: submitted batches and what came back."""

    gateway: Any
    store_root: str
    recorder: Recorder
    retry: RetryPolicy
    workers: int
    on_result: Callable[[ItemResult, Tally], None] | None = None
    run_id: int | None = None

    def run(self, kind: str, targets: Sequence[Target]) -> Tally:
        """Collect every target; return the tally (never raises for one symbol's failure)."""
        tally = Tally(total=len(targets))
        run_id = self.run_id = self.recorder.begin(kind, targets)
        todo: list[Target] = list(targets)
        for round_no in range(MAX_ROUNDS):
            if not todo:
                break
            if round_no:  # a worker died: its unreported symbols go round again
                tally.requeued += len(todo)
            todo = self._round(run_id, todo, tally)
        for target in todo:  # workers kept dying: record, never abort silently
            self._record(run_id, _lost(target), tally)
        tally.finished = time.monotonic()
        self.recorder.end(run_id, tally)
        return tally

    def _round(self, run_id: int | None, todo: list[Target], tally: Tally) -> list[Target]:
        """Run one round of batches; return the targets whose worker died before reporting."""
        waiting: dict[Any, dict[tuple[str, str], Target]] = {}
        for batch in batches(todo, workers=self.workers):
            self.recorder.running(run_id, batch)
            gen = collect_batch.remote(batch, self.gateway, self.store_root, self.retry)
            waiting[gen] = {(t.key, t.bar_size): t for t in batch}
        lost: list[Target] = []
        while waiting:
            ready: list[Any] = ray.wait(list(waiting), num_returns=1, timeout=0.5)[0]
            for gen in ready:
                outstanding = waiting[gen]
                try:
                    result: ItemResult = ray.get(next(gen))
                except StopIteration:
                    del waiting[gen]
                    lost.extend(outstanding.values())  # finished without reporting them
                    continue
                except ray.exceptions.RayError:
                    del waiting[gen]
                    lost.extend(outstanding.values())
                    continue
                outstanding.pop((result.instrument, result.bar_size), None)
                self._record(run_id, result, tally)
            self._tick(tally)
        return lost

    def _record(self, run_id: int | None, result: ItemResult, tally: Tally) -> None:
        tally.add(result)
        self.recorder.finished(run_id, result)
        if self.on_result is not None:
            self.on_result(result, tally)

    def _tick(self, tally: Tally) -> None:
        self.recorder.heartbeat(self.run_id)
        if self.on_result is not None:
            self.on_result(ItemResult(instrument="", bar_size="", status="tick"), tally)


def _lost(target: Target) -> ItemResult:
    return ItemResult(
        instrument=target.key,
        bar_size=target.bar_size,
        status=FAILED,
        attempts=MAX_ROUNDS,
        error=f"worker died {MAX_ROUNDS} times before finishing this instrument",
    )


def pacing_wait(gateway: Any, *, timeout: float = 2.0) -> float:
    """Seconds the gateway's pacer has made requests wait so far (0 when unknown)."""
    try:
        health = ray.get(gateway.health.remote(), timeout=timeout)
    except ray.exceptions.RayError:
        return 0.0
    return _find_number(health, "pacing_wait_seconds") or 0.0


def _find_number(record: Any, key: str) -> float | None:
    items: Iterable[tuple[Any, Any]]
    if isinstance(record, dict):
        items = record.items()
    elif hasattr(record, "__dataclass_fields__"):
        items = ((k, getattr(record, k)) for k in record.__dataclass_fields__)
    else:
        return None
    for name, value in items:
        if key == str(name) and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        nested = _find_number(value, key)
        if nested is not None:
            return nested
    return None


def workers_available() -> int:
    """How many batch tasks the cluster can run at once."""
    cpus = float(ray.cluster_resources().get("CPU", 1.0))  # type: ignore[no-untyped-call]
    return max(1, int(cpus / TASK_CPUS))


def run_collection(
    kind: str,
    targets: Sequence[Target],
    *,
    gateway: Any,
    store_root: str,
    catalog: Any | None = None,
    retry: RetryPolicy | None = None,
    on_result: Callable[[ItemResult, Tally], None] | None = None,
) -> tuple[int | None, Tally]:
    """Collect ``targets`` over Ray; return the catalog run id (None without a catalog) and
    the tally. One symbol's failure is recorded and never aborts the run."""
    recorder: Recorder = CatalogRecorder(catalog) if catalog is not None else NullRecorder()
    collection = Collection(
        gateway=gateway,
        store_root=store_root,
        recorder=recorder,
        retry=retry or RetryPolicy(),
        workers=workers_available(),
        on_result=on_result,
    )
    tally = collection.run(kind, targets)
    return collection.run_id, tally
