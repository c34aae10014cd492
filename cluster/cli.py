"""The ``scizor`` command line."""

from __future__ import annotations

import json
import signal
import sys
import time
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from core.errors import ScizorError
from core.settings import Settings

app = typer.Typer(
    name="scizor",
    help="SCIZOR: algorithmic trading on Ray with Interactive Brokers.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="The SQL catalog.", no_args_is_help=True)
app.add_typer(db_app, name="db")

console = Console()
err_console = Console(stderr=True)


def settings() -> Settings:
    """Settings from the environment, built once per command."""
    return Settings.from_env()


def kv_table(title: str, rows: dict[str, Any]) -> Table:
    """A two-column table of ``rows``; nested dicts are flattened as ``a.b``."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold cyan")
    table.add_column()
    for key, value in _flatten(rows):
        table.add_row(key, _fmt(value))
    return table


def _flatten(rows: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in rows.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.extend(_flatten(value, f"{name}."))
        else:
            out.append((name, value))
    return out


def _fmt(value: Any) -> str:
    if value is True:
        return "[green]yes[/green]"
    if value is False:
        return "[red]no[/red]"
    return "" if value is None else str(value)


@app.command()
def up(
    detach: bool = typer.Option(
        False, "--detach", help="Return once ready and leave SCIZOR running (what 'make up' does)."
    ),
    prepare: bool = typer.Option(
        True,
        "--prepare/--no-prepare",
        help="Populate and validate the bundled universe, collect its daily history and "
        "compile the engine's kernels, in the background (a Ray Job: 'scizor prepare').",
    ),
) -> None:
    """Start the platform and get it ready (collection, compiled kernels), with progress.

    Starts Ray, the catalog, ibsim (unless SCIZOR_IB_HOST is set), the gateway, risk and order
    managers and the API, then runs 'scizor prepare' as a Ray Job. In the foreground (the
    default) it stays until Ctrl-C, which stops everything; with --detach it returns once
    ready and 'scizor down' stops it."""
    from cluster import platform

    s = settings()
    foreground = not detach
    if foreground:  # 'kill' (SIGTERM) stops it as cleanly as Ctrl-C
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        with console.status("Starting SCIZOR (Ray, catalog, gateway, API)..."):
            state = platform.up(s)
            admin_token = platform.first_admin_token(s)
        console.print(kv_table("SCIZOR is up", _up_rows(s, state)))
        if admin_token is not None:
            _print_admin_token(admin_token)
        ready = not prepare or _follow_preparation(s, state, platform.start_preparation(s, state))
        if ready:
            _print_examples(state.api_url, admin_token)
        if detach:
            console.print("Stop it with [bold]scizor down[/bold].")
            return
        console.print("SCIZOR is running: [bold]Ctrl-C[/bold] (or scizor down) stops it.")
        while platform.load_state(s) is not None:
            time.sleep(1.0)
        console.print("SCIZOR was stopped ('scizor down').")
    except KeyboardInterrupt:
        if detach:
            console.print("Stopped following: SCIZOR keeps running (scizor status, scizor down).")
            return
        with console.status("Stopping SCIZOR..."):
            platform.down(s)
        console.print("SCIZOR stopped.")


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def _up_rows(s: Any, state: Any) -> dict[str, Any]:
    return {
        "API": state.api_url,
        "API docs": f"{state.api_url}/docs",
        "Ray dashboard": state.dashboard_url or "(cluster's own)",
        "Dashboard token": "~/.ray/auth_token (or: .venv/bin/ray get-auth-token)"
        if state.ray_started
        else "(cluster's own)",
        "Ray address": state.ray_address,
        "IB gateway": f"{state.ib_host}:{state.ib_port}"
        + (" (embedded ibsim)" if state.ibsim_pid else ""),
        "Gateway connected": bool(state.extra.get("gateway", {}).get("connected")),
        "Operator console": f"{state.api_url}/ui",
        "Trading": _trading_line(state.extra.get("trading") or {}),
        "Database": s.db.redacted_url,
        "Bar store": s.storage.bar_store,
    }


PREPARE_POLL_S = 1.0


def _follow_preparation(s: Any, state: Any, job_id: str) -> bool:
    """Show the preparation's progress until its job ends; True if it succeeded."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from cluster import platform

    console.print(f"Getting ready in the background (Ray Job {job_id}); the API serves already.")
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("starting", total=None)
        while True:
            found = platform.preparation(s, state)
            if found is None:
                return True
            progress.update(task, description=found.phase, total=found.total or None,
                            completed=found.done + found.failed)  # fmt: skip
            if found.ended:
                break
            time.sleep(PREPARE_POLL_S)
    if found.status == "SUCCEEDED":
        failed = f" ({found.failed} instruments failed: 'scizor jobs logs {job_id}')"
        console.print("[green]Ready[/green]" + (failed if found.failed else "") + ".")
        return True
    from serve.jobs import RayJobLauncher

    console.print(f"[red]Preparation {found.status.lower()}[/red] ({found.message}); its end:")
    console.print(RayJobLauncher().logs(job_id)[-3000:], markup=False, highlight=False)
    console.print("SCIZOR is up without it: 'scizor prepare' retries (only what is missing).")
    return False


def curl_examples(api_url: str, token: str | None) -> list[str]:
    """Three requests that work as printed once SCIZOR is ready: a backtest of the ETFs, a
    grid optimization of them, a paper deployment started at once."""
    auth = f"Authorization: Bearer {token or '$SCIZOR_TOKEN'}"
    post = f'curl -s -H "{auth}" -H "Content-Type: application/json"'
    backtest = {"strategy": "sma_cross", "params": {"fast": 10, "slow": 50}, "universe": "etfs",
                "costs": {"commission": "ibkr"}}  # fmt: skip
    study = {"name": "quickstart-sma-etfs", "strategy": "sma_cross", "universe": "etfs",
             "space": {"fast": {"low": 5, "high": 30, "step": 5},
                       "slow": {"low": 40, "high": 120, "step": 20}},
             "constraints": ["fast < slow"], "sampler": "grid"}  # fmt: skip
    deployment = {"strategy": "buy_hold", "instruments": ["SPY.ARCA"], "capital": 100000,
                  "mode": "paper", "start": True}  # fmt: skip
    return [
        f"{post} -d '{json.dumps(body)}' {api_url}{path}"
        for body, path in (
            (backtest, "/backtests"),
            (study, "/optimizations"),
            (deployment, "/trading/deployments"),
        )
    ]


def _print_examples(api_url: str, token: str | None) -> None:
    console.print("[bold]Try it[/bold] (a backtest, an optimization, a paper deployment):")
    if token is None:
        console.print("  (set SCIZOR_TOKEN to a token of scope trade or admin: 'scizor token')")
    for line in curl_examples(api_url, token):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def _trading_line(trading: dict[str, Any]) -> str:
    """``HALTED (reason)`` or ``active``, and the runners resumed."""
    halted = f"HALTED ({trading.get('reason', '')})" if trading.get("halted") else "active"
    runners = trading.get("runners") or []
    return f"{halted}; {len(runners)} deployment runner(s) resumed"


def _print_admin_token(token: str) -> None:
    """Show the first admin token, once: only its hash is stored."""
    console.print("[bold]Admin API token[/bold] (scope admin; send 'Authorization: Bearer ...'):")
    console.print(token, markup=False, highlight=False, soft_wrap=True)
    console.print(
        "It will not be shown again: keep it now. Create more with 'scizor token create', "
        "list them with 'scizor token list'."
    )


@app.command()
def down() -> None:
    """Stop what 'scizor up' started (a cluster or gateway you pointed it at is left alone)."""
    from cluster import platform

    state = platform.down(settings())
    console.print("SCIZOR stopped." if state else "SCIZOR was not running.")


@app.command()
def status() -> None:
    """Show whether each part of the platform is up, and where."""
    from cluster import platform

    console.print(kv_table("SCIZOR status", platform.status(settings())))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the catalog schema to the latest migration."""
    from cluster import platform

    s = settings()
    platform.migrate(s)
    console.print(f"Catalog at {s.db.redacted_url} is up to date.")


def register(extra: typer.Typer, *, name: str) -> None:
    """Mount a sub-command group as ``scizor NAME`` (used by modules that add commands)."""
    app.add_typer(extra, name=name)


def main() -> None:
    """Entry point of the ``scizor`` console script: SCIZOR errors print cleanly, exit 2."""
    import os

    from cluster.bootstrap import prepare_auth

    prepare_auth(os.environ)  # before anything imports Ray
    _load_command_modules()
    try:
        app()
    except ScizorError as exc:
        err_console.print(f"[bold red]error:[/bold red] {exc}")
        sys.exit(2)


def _load_command_modules() -> None:
    """Import the modules that register sub-commands on ``app``."""
    import importlib

    for module in COMMAND_MODULES:
        importlib.import_module(module)


COMMAND_MODULES: tuple[str, ...] = (
    "cluster.cli_data",
    "cluster.cli_tokens",
    "cluster.cli_backtest",
    "cluster.cli_jobs",
    "cluster.cli_optimize",
    "cluster.cli_parity",
    "cluster.cli_trading",
    "cluster.cli_demo",
)
