"""What a collection shows a person: a live progress bar and a summary table (rich)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console, Group
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from cluster.collect_plan import FAILED, ItemResult, Tally

PACING_POLL_S = 1.0
"""How often the progress bar asks the gateway for its pacing wait."""


@contextmanager
def live_progress(
    console: Console,
    *,
    total: int,
    title: str,
    pacing: Callable[[], float] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Callable[[ItemResult, Tally], None]]:
    """Show a progress bar while the block runs; yield the callback that advances it.

    The bar shows instruments finished out of ``total``, how many failed, bars written and
    the seconds the gateway's pacer has held requests back (polled at most once a second of
    ``clock``).
    """
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[green]{task.fields[done]} ok[/] [red]{task.fields[failed]} failed[/]"),
        TextColumn("{task.fields[bars]:,} bars"),
        TextColumn("pacing wait {task.fields[wait]:.1f} s"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    task = progress.add_task(title, total=total, done=0, failed=0, bars=0, wait=0.0)
    polled = [-PACING_POLL_S, 0.0]  # last poll time, last value

    def update(_result: ItemResult, tally: Tally) -> None:
        now = clock()
        if pacing is not None and now - polled[0] >= PACING_POLL_S:
            polled[:] = [now, pacing()]
        _advance(progress, task, tally, wait=polled[1])

    with progress:
        yield update


def _advance(progress: Progress, task: TaskID, tally: Tally, *, wait: float) -> None:
    progress.update(
        task,
        completed=tally.finished_items,
        done=tally.finished_items - tally.failed,
        failed=tally.failed,
        bars=tally.bars_written,
        wait=wait,
    )


def summary(tally: Tally, *, title: str, run_id: int | None = None) -> Group:
    """The end-of-run summary: counts per status, bars, duration; failed instruments and why."""
    heading = title if run_id is None else f"{title} (run {run_id})"
    table = Table(title=heading, title_justify="left")
    table.add_column("", style="bold cyan")
    table.add_column("", justify="right")
    for label, value in tally.rows():
        style = "red" if label == FAILED and value != "0" else ""
        table.add_row(label, f"[{style}]{value}[/]" if style else value)
    parts: list[Any] = [table]
    if tally.failures:
        failed = Table(title="Failed instruments", title_justify="left", title_style="bold red")
        failed.add_column("instrument")
        failed.add_column("error")
        for key, error in sorted(tally.failures.items()):
            failed.add_row(key, error)
        parts.append(failed)
    return Group(*parts)
