"""``scizor optimize``: an Optuna study on the cluster, submitted as a Ray Job.

::

    scizor optimize sma_cross --universe etfs --space fast=5:60:5 --space slow=20:250:10 \\
        --constraint "fast < slow" --sampler grid --walk-forward 2Y:6M --wait
    scizor optimize --spec study.json --wait      # a study spec file (optimize.study_spec)
    scizor optimize --run 7                       # the driver a Ray Job runs

Without ``--run`` the command checks the study spec (flags on top of ``--spec``), queues the
job and submits its driver as a Ray Job (``scizor optimize --run ID``), so it shows in the
dashboard's Jobs view with its logs; ``--wait`` follows the job's output (its progress bar:
trials, trials/s, best so far) to the end and prints the summary. A spec whose ``--name``
exists resumes that study. ``--run ID`` is the driver: it joins the cluster, runs the sweep
with a progress bar, analyses the result (deflated Sharpe, PBO, walk-forward) and writes the
HTML report (``--report FILE``; by default ``$SCIZOR_HOME/reports/optimization-<id>.html``).
Ctrl-C in the driver cancels the job. Bad input is one line naming the field, exit code 2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cluster.cli import app, console
from cluster.cli_backtest import (
    commission_flag,
    instruments_flag,
    job_spec,
    number_cell,
    parse_params,
    universe_flag,
)
from core.errors import ValidationError
from optimize.optimization_jobs import OptimizationService
from optimize.sweep import Progress as SweepProgress

SHOWN = 15
"""Trials printed in the summary (the report and /optimizations/{id}/trials have them all)."""
JOB_KIND = "optimize"


def space_flags(values: list[str]) -> dict[str, Any]:
    """``--space fast=5:60:5`` (low:high[:step]), ``--space ma=sma,ema`` (choices) or
    ``--space slow=50`` (fixed)."""
    out: dict[str, Any] = {}
    for text in values:
        name, sep, rest = text.partition("=")
        if not sep or not name.strip() or not rest.strip():
            raise ValidationError(
                f"--space {text!r}: write NAME=LOW:HIGH[:STEP], NAME=A,B,C or NAME=VALUE",
                field="space",
            )
        if ":" in rest:
            parts = [parse_params([f"x={p}"])["x"] for p in rest.split(":")]
            if len(parts) not in (2, 3):
                raise ValidationError(f"--space {text!r}: LOW:HIGH or LOW:HIGH:STEP",
                                      field=f"space.{name.strip()}")  # fmt: skip
            out[name.strip()] = dict(zip(("low", "high", "step"), parts, strict=False))
        elif "," in rest:
            out[name.strip()] = {"values": [parse_params([f"x={p}"])["x"] for p in rest.split(",")]}
        else:
            out[name.strip()] = parse_params([f"x={rest}"])["x"]
    return out


def objective_flags(values: list[str]) -> list[dict[str, str]] | None:
    """``--objective sharpe`` or ``--objective max_drawdown_pct:minimize`` (repeat: several)."""
    if not values:
        return None
    out = []
    for text in values:
        metric, _, direction = text.partition(":")
        item = {"metric": metric.strip()}
        if direction.strip():
            item["direction"] = {"max": "maximize", "min": "minimize"}.get(
                direction.strip(), direction.strip()
            )
        out.append(item)
    return out


def walk_forward_flag(text: str | None) -> dict[str, Any] | None:
    """``--walk-forward 2Y:6M`` (rolling) or ``2Y:6M:anchored``; sizes as spans or bars."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(":")]
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("anchored", "rolling")):
        raise ValidationError(
            f"--walk-forward {text!r}: write IN:OUT[:anchored], e.g. 2Y:6M or 504:126:anchored",
            field="walk_forward",
        )
    size = [int(p) if p.isdigit() else p for p in parts[:2]]
    return {"in_sample": size[0], "out_of_sample": size[1],
            "anchored": len(parts) == 3 and parts[2] == "anchored"}  # fmt: skip


@app.command("optimize")
def optimize(
    strategy: str | None = typer.Argument(None, help="Library strategy, e.g. sma_cross."),
    spec_file: Path | None = typer.Option(None, "--spec", help="A study spec (JSON) file."),
    name: str | None = typer.Option(None, "--name", help="Study name (an existing one resumes)."),
    param: list[str] = typer.Option([], "--param", "-p", help="Fixed parameter NAME=VALUE."),
    space: list[str] = typer.Option(
        [], "--space", "-s", help="Searched NAME=LOW:HIGH[:STEP] or NAME=A,B,C (repeat)."
    ),
    constraint: list[str] = typer.Option([], "--constraint", "-c", help='e.g. "fast < slow".'),
    objective: list[str] = typer.Option(
        [], "--objective", "-o", help="METRIC[:minimize] (repeat: multi-objective)."
    ),
    sampler: str | None = typer.Option(None, "--sampler", help="grid random tpe cmaes nsga2."),
    trials: int | None = typer.Option(None, "--trials", "-n", help="COMPLETE trials wanted."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the sampler."),
    walk: str | None = typer.Option(
        None, "--walk-forward", help="IN:OUT[:anchored] windows, e.g. 2Y:6M."
    ),
    prune: int | None = typer.Option(
        None,
        "--prune",
        help="FOLDS: run each trial fold by fold, stopping poor ones early (tpe, cmaes).",
    ),
    instruments: list[str] | None = typer.Option(
        None, "--instruments", "-i", help="Instrument ids or symbols (repeat, or a,b,c); all."
    ),
    universe: str | None = typer.Option(None, "--universe", "-u", help="A catalog universe."),
    bar_size: str | None = typer.Option(None, "--bar-size", help="1s ... 1h 1d (default 1d)."),
    start: str | None = typer.Option(None, "--start", help="First day, YYYY-MM-DD."),
    end: str | None = typer.Option(None, "--end", help="Day after the last, YYYY-MM-DD."),
    cash: float | None = typer.Option(None, "--cash", help="Starting cash per account."),
    commission: str | None = typer.Option(None, "--commission", help="A fraction, or ibkr."),
    slippage_bps: float | None = typer.Option(None, "--slippage-bps", help="Slippage, bps."),
    wait: bool = typer.Option(False, "--wait", help="Follow the Ray Job to its end."),
    report: Path | None = typer.Option(None, "--report", help="Write the HTML report here."),
    run: int | None = typer.Option(None, "--run", help="Run the queued job with this id."),
) -> None:
    """Optimize a strategy's parameters with Optuna on the Ray cluster (as a Ray Job)."""
    from cluster.cli_data import Farm

    if run is not None and (strategy or spec_file or space or instruments or universe or name):
        raise ValidationError(
            "--run ID runs a job as it was queued: give no strategy, --spec, --name, --space, "
            "--instruments or --universe with it",
            field="run",
        )
    farm = Farm.open()
    try:
        service = OptimizationService(farm.catalog, farm.settings)
        if run is not None:
            job = _drive(service, farm, run, report)
        else:
            flags = {"instruments": instruments_flag(instruments),
                     "universe": universe_flag(universe), "bar_size": bar_size,
                     "start": start, "end": end, "name": name, "sampler": sampler,
                     "trials": trials, "seed": seed,
                     "objectives": objective_flags(objective),
                     "walk_forward": walk_forward_flag(walk),
                     "pruning": None if prune is None else {"folds": prune}}  # fmt: skip
            costs = {"cash": cash, "commission": commission_flag(commission),
                     "slippage_bps": slippage_bps}  # fmt: skip
            body = job_spec(strategy, spec_file=spec_file, params=param, flags=flags,
                            costs=costs, options={})  # fmt: skip
            if space:
                body["space"] = {**body.get("space", {}), **space_flags(space)}
            if constraint:
                body["constraints"] = [*body.get("constraints", []), *constraint]
            job = service.submit(body)
            job = _submitted(service, farm, job, wait=wait)
    finally:
        farm.close()
    if job.status.value in ("failed", "cancelled"):
        raise typer.Exit(1)


def _submitted(service: OptimizationService, farm: Any, job: Any, *, wait: bool) -> Any:
    """Submit the job's driver as a Ray Job; follow it with ``wait``."""
    from cluster import bootstrap
    from serve.jobs import JobSpec, RayJobLauncher

    bootstrap.connect(farm.settings)
    launcher = RayJobLauncher()
    spec = JobSpec(kind=JOB_KIND, prefix=JOB_KIND, args=service.run_args(job.id),
                   metadata={"optimization_id": str(job.id), "requested_by": "cli"})  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k.startswith("SCIZOR_")}
    submission = launcher.submit(spec, env=env)
    farm.catalog.optimizations.set_artifacts(job.id, job_id=submission)
    console.print(
        f"Optimization {job.id} ('{job.study_name}') queued as Ray Job {submission}: "
        f"{job.n_trials} trials. Follow it with: scizor jobs logs {submission} --follow"
    )
    if not wait:
        return job
    end = launcher.follow(submission, sys.stdout.write)
    done = service.get(job.id)
    console.print(f"Ray Job {submission}: {end.status}")
    if done.status.value == "done":
        print_summary(done)
    return done


def _drive(
    service: OptimizationService, farm: Any, optimization_id: int, report: Path | None
) -> Any:
    """The driver: run the sweep with a progress bar, print the summary, write the report."""
    from cluster import bootstrap
    from serve.metrics import PlatformMetrics

    bootstrap.connect(farm.settings)
    job = service.get(optimization_id)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]:.1f} trials/s"),
               TextColumn("best {task.fields[best]}"), TextColumn("{task.fields[pruned]}"),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(f"optimize {optimization_id} ({job.study_name})",
                            total=job.n_trials, rate=0.0, best="-", pruned="")  # fmt: skip

        metrics, counted = PlatformMetrics(), [job.n_complete]

        def update(p: SweepProgress) -> None:
            best = "-" if p.best is None else ", ".join(f"{v:.4g}" for v in p.best)
            pruned = f"{p.pruned} pruned" if p.pruned else ""
            bar.update(task, total=p.total or None, completed=p.done, rate=p.per_second,
                       best=best, pruned=pruned)  # fmt: skip
            metrics.trials_completed(p.done - counted[0], study=job.study_name,
                                     per_second=p.per_second)  # fmt: skip
            counted[0] = max(counted[0], p.done)

        job = service.run(optimization_id, on_progress=update)
    if job.status.value != "done":
        console.print(f"Optimization {job.id} is {job.status.value}. {job.error or ''}")
        return job
    print_summary(job)
    path = report or Path(farm.settings.storage.home) / "reports" / f"optimization-{job.id}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(service.report_html(job.id), encoding="utf-8")
    console.print(f"Report: {path.resolve()}")
    return job


def summary_table(job: Any) -> Table:
    """The job's outcome: best parameters and values, the statistics, the verdict."""
    summary = job.report or {}
    stats = summary.get("overfitting") or {}
    walk = summary.get("walk_forward")
    walked = (job.artifacts.get("analysis") or {}).get("walk_forward") or {}
    table = Table(title=f"Optimization {job.id}: {job.study_name} ({job.strategy})",
                  title_justify="left", show_header=False)  # fmt: skip
    table.add_column("", style="dim")
    table.add_column("")
    overhead = summary.get("overhead")
    rows = {
        "best parameters": ", ".join(f"{k}={v}" for k, v in (job.best_params or {}).items()),
        f"best {job.objective}": number_cell(job.best_value),
        "trials": f"{summary.get('n_complete', job.n_complete)} complete, "
        f"{summary.get('n_failed', job.n_failed)} failed"
        + (f", {summary['n_pruned']} pruned" if summary.get("n_pruned") else ""),
        "trials/s": number_cell(summary.get("trials_per_second")),
        "time outside the engine": "-" if overhead is None else f"{overhead:.1%}",
        "deflated Sharpe (DSR)": number_cell(stats.get("dsr")),
        "probability of overfitting (PBO)": number_cell(stats.get("pbo")),
    }
    if walk:
        rows["walk-forward efficiency"] = number_cell(walk.get("wfe"))
        rows["walk-forward OOS return %"] = number_cell(walked.get("oos_return_pct"))
    for key, value in rows.items():
        table.add_row(key, value)
    return table


def print_summary(job: Any) -> None:
    """The summary table, then the verdict on one line."""
    console.print(summary_table(job))
    verdict = (job.report or {}).get("verdict")
    if verdict:
        console.print(f"Verdict: {verdict}", soft_wrap=True, highlight=False, markup=False)
