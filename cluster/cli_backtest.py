"""``scizor backtest``: run a backtest job on the cluster from a shell.

::

    scizor backtest sma_cross --param fast=10 --param slow=50 --universe asx200 \\
        --commission ibkr --sort sharpe --report sma.html
    scizor backtest --spec job.json                 # a job spec file (see optimize.backtest_spec)
    scizor backtest --run 12                        # run a job queued by the API

The command builds the job spec from the flags (on top of ``--spec`` when both are given),
submits it (or takes the queued job ``--run ID``), joins the Ray cluster, runs the job with a
progress bar, prints the instruments ranked by the chosen metric and writes the HTML report
(``--report FILE``; by default ``$SCIZOR_HOME/reports/backtest-<id>.html``). Ctrl-C cancels
the job. Bad input is one line naming the field, exit code 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cluster.cli import app, console
from core.errors import ValidationError
from optimize.backtest_jobs import BacktestService, JobProgress
from optimize.backtest_ranking import RankedResult

SHOWN = 20
"""Ranked rows printed (the report has them all)."""


def job_spec(
    strategy: str | None,
    *,
    spec_file: Path | None,
    params: list[str],
    flags: dict[str, Any],
    costs: dict[str, Any],
    options: dict[str, Any],
) -> dict[str, Any]:
    """The job spec: the file's, then every flag given on the command line."""
    spec: dict[str, Any] = {}
    if spec_file is not None:
        try:
            spec = json.loads(spec_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValidationError(f"--spec {spec_file}: {exc}", field="spec") from None
        if not isinstance(spec, dict):
            raise ValidationError(f"--spec {spec_file} must hold a JSON object", field="spec")
    if strategy is not None:
        spec["strategy"] = strategy
        spec.pop("rules", None)
    if params:
        spec["params"] = {**spec.get("params", {}), **parse_params(params)}
    for key, value in flags.items():
        if value is not None:
            if key in ("instruments", "universe"):  # the flag replaces the file's selection
                spec.pop("universe" if key == "instruments" else "instruments", None)
            spec[key] = value
    for key, given in (("costs", costs), ("options", options)):
        spec[key] = {**spec.get(key, {}), **{k: v for k, v in given.items() if v is not None}}
    return spec


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``k=v`` pairs; values are JSON (numbers, true/false) or else strings. ``True`` and
    ``False`` (how the summaries print a boolean) are booleans too."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ValidationError(
                f"--param {pair!r}: write NAME=VALUE, e.g. fast=10", field="params"
            )
        if text.strip().lower() in ("true", "false"):
            out[key.strip()] = text.strip().lower() == "true"
            continue
        try:
            out[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            out[key.strip()] = text
    return out


def instruments_flag(values: list[str] | None) -> Any:
    """``-i AAPL -i BHP.ASX`` or ``-i AAPL,BHP.ASX``; ``all`` for every valid listing."""
    if not values:
        return None
    items = [v.strip() for value in values for v in value.split(",") if v.strip()]
    return "all" if [i.lower() for i in items] == ["all"] else items


def universe_flag(name: str | None) -> str | None:
    """A bundled universe's canonical name (``asx`` is ``asx200``), else the name given."""
    from cluster.symbols import universe_key

    return None if name is None else universe_key(name)


def commission_flag(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return value


def _ranked(job: Any, ranked: list[RankedResult]) -> Table:
    metric = str(job.options.get("sort", "sharpe"))
    title = f"Backtest {job.id}: {job.strategy}, {len(job.instruments)} instruments, by {metric}"
    table = Table(title=title, title_justify="left")
    columns = [c for c in dict.fromkeys((metric, "return_pct", "sharpe", "max_drawdown_pct"))]
    for name in ("rank", "instrument", *columns, "n_trades"):
        table.add_column(name, justify="left" if name == "instrument" else "right")
    for row in ranked[:SHOWN]:
        if row.error:
            table.add_row("-", row.instrument, f"[red]{row.error[:80]}[/red]")
            continue
        cells = [number_cell(row.stats.get(c)) for c in (*columns, "n_trades")]
        table.add_row(str(row.rank or "-"), row.instrument, *cells)
    if len(ranked) > SHOWN:
        table.caption = f"{len(ranked) - SHOWN} more in the report"
    return table


def number_cell(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    return f"{value:,.2f}" if abs(value) >= 100 else f"{value:.3g}"


def _run_with_progress(service: BacktestService, backtest_id: int) -> Any:
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[failed]} failed"), TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(f"backtest {backtest_id}", total=None, failed=0)

        def update(p: JobProgress) -> None:
            bar.update(task, total=p.total, completed=p.done, failed=p.failed)

        return service.run(backtest_id, on_progress=update)


def _run_counted(service: BacktestService, backtest_id: int) -> Any:
    """Run the job, counting it in the platform's Ray metrics (started, then its outcome)."""
    from serve.metrics import PlatformMetrics

    metrics = PlatformMetrics()
    metrics.backtest_started()
    try:
        job = _run_with_progress(service, backtest_id)
    except Exception:
        metrics.backtest_failed()
        raise
    if job.status.value == "done":
        metrics.backtest_completed()
    elif job.status.value == "failed":
        metrics.backtest_failed()
    return job


@app.command("backtest")
def backtest(
    strategy: str | None = typer.Argument(None, help="Library strategy, e.g. sma_cross."),
    param: list[str] = typer.Option([], "--param", "-p", help="Strategy parameter NAME=VALUE."),
    spec_file: Path | None = typer.Option(None, "--spec", help="A job spec (JSON) file."),
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
    mode: str | None = typer.Option(None, "--mode", help="per_instrument or portfolio."),
    sort: str | None = typer.Option(None, "--sort", help="Ranking metric (default sharpe)."),
    report: Path | None = typer.Option(None, "--report", help="Write the HTML report here."),
    run: int | None = typer.Option(None, "--run", help="Run the queued job with this id."),
) -> None:
    """Backtest a strategy over instruments on the Ray cluster; rank them; write a report."""
    from cluster import bootstrap
    from cluster.cli_data import Farm

    if run is not None and (strategy or spec_file or param or instruments or universe):
        raise ValidationError(
            "--run ID runs a job as it was queued: give no strategy, --spec, --param, "
            "--instruments or --universe with it",
            field="run",
        )
    flags = {"instruments": instruments_flag(instruments), "universe": universe_flag(universe),
             "bar_size": bar_size, "start": start, "end": end}  # fmt: skip
    costs = {"cash": cash, "commission": commission_flag(commission), "slippage_bps": slippage_bps}
    farm = Farm.open()
    try:
        service = BacktestService(farm.catalog, farm.settings)
        if run is not None:
            job = service.get(run)
        else:
            job = service.submit(
                job_spec(strategy, spec_file=spec_file, params=param, flags=flags, costs=costs,
                      options={"mode": mode, "sort": sort})
            )  # fmt: skip
            console.print(f"Backtest {job.id} queued: {len(job.instruments)} instruments.")
        bootstrap.connect(farm.settings)
        job = _run_counted(service, job.id)
        _print_outcome(service, job, report or _default_report(farm.settings, job.id))
    finally:
        farm.close()
    if job.status.value != "done":
        raise typer.Exit(1)


def _default_report(settings: Any, backtest_id: int) -> Path:
    return Path(settings.storage.home) / "reports" / f"backtest-{backtest_id}.html"


def _print_outcome(service: BacktestService, job: Any, report: Path) -> None:
    if job.status.value != "done":
        console.print(f"Backtest {job.id} is {job.status.value}. {job.error or ''}")
        return
    console.print(_ranked(job, service.results(job.id)))
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(service.report_html(job.id), encoding="utf-8")
    fanout = job.artifacts.get("fanout", {})
    console.print(
        f"Report: {report.resolve()}\nResults: {job.artifacts.get('results')}"
        + (f"\nRay: {fanout['tasks']} tasks, overhead {fanout['ray_overhead']:.1%}"
           if fanout else "")
    )  # fmt: skip
