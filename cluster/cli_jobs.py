"""``scizor jobs``: the platform's Ray Jobs (collection, validation, backtests, optimizations).

Long work submitted over HTTP (and by ``scizor optimize``) runs as Ray Jobs, so the
dashboard's Jobs view shows it with its logs; these commands show the same from a shell:
``scizor jobs`` lists them newest first, ``scizor jobs logs ID [--follow]`` prints a job's
output, ``scizor jobs stop ID`` stops one. Jobs submitted by others on the cluster (without
the platform's metadata) are not listed.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

import typer
from rich.table import Table

from cluster.cli import console, register, settings

jobs_app = typer.Typer(
    help="The platform's Ray Jobs: list, logs, stop.", invoke_without_command=True
)

SHOWN = 30
"""Jobs listed unless --all."""


def launcher() -> Any:
    """A job launcher on the cluster the settings name (joining it as a driver)."""
    from cluster import bootstrap
    from serve.jobs import RayJobLauncher

    bootstrap.connect(settings())
    return RayJobLauncher()


def _when(ms: int | None) -> str:
    return "" if ms is None else f"{datetime.fromtimestamp(ms / 1000, UTC):%Y-%m-%d %H:%M:%S}"


def _took(state: Any) -> str:
    if state.start_time is None:
        return ""
    end = state.end_time or int(datetime.now(UTC).timestamp() * 1000)
    seconds = max(0, end - state.start_time) / 1000
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


_STYLE = {"SUCCEEDED": "green", "FAILED": "red", "STOPPED": "yellow", "RUNNING": "cyan"}


def jobs_table(states: list[Any], *, total: int) -> Table:
    """The jobs as a table: id, kind, status, started (UTC), duration, command."""
    table = Table(title=f"Ray Jobs ({len(states)} of {total})", title_justify="left")
    for column in ("job id", "kind", "status", "started (UTC)", "took", "command"):
        table.add_column(column, no_wrap=column != "command")
    for s in states:
        style = _STYLE.get(s.status, "")
        status = f"[{style}]{s.status}[/{style}]" if style else s.status
        command = s.entrypoint.split(" ", 1)[-1] if " " in s.entrypoint else s.entrypoint
        table.add_row(s.submission_id, s.kind, status, _when(s.start_time), _took(s),
                      "scizor " + command)  # fmt: skip
    if not states:
        table.caption = "no jobs yet: POST /collect, POST /backtests or scizor optimize start one"
    return table


@jobs_app.callback()
def jobs(
    ctx: typer.Context,
    kind: str | None = typer.Option(None, "--kind", help="Only this kind, e.g. backtest."),
    every: bool = typer.Option(False, "--all", help=f"All of them, not the newest {SHOWN}."),
) -> None:
    """List the platform's Ray Jobs, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    states = launcher().list(kind=kind)
    console.print(jobs_table(states if every else states[:SHOWN], total=len(states)))


@jobs_app.command("logs")
def logs(
    job_id: str = typer.Argument(..., help="The job id (scizor jobs lists them)."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing until it ends."),
) -> None:
    """Print a job's output."""
    jobs = launcher()
    if not follow:
        sys.stdout.write(jobs.logs(job_id))
        return
    end = jobs.follow(job_id, sys.stdout.write)
    console.print(f"Job {job_id}: {end.status}" + (f" ({end.message})" if end.message else ""))


@jobs_app.command("stop")
def stop(job_id: str = typer.Argument(..., help="The job id (scizor jobs lists them).")) -> None:
    """Stop a job (its driver gets SIGTERM; a backtest or optimization ends cancelled)."""
    stopped = launcher().stop(job_id)
    console.print(f"Job {job_id}: " + ("stopping" if stopped else "had already ended"))


register(jobs_app, name="jobs")
