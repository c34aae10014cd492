"""``scizor parity``: does a paper deployment trade what its backtest trades?

::

    scizor parity 12 --start 2024-01-02 --end 2024-12-31          # deployment 12's strategy
    scizor parity sma_cross --instrument AAPL.NASDAQ --param fast=5 --param slow=20 \\
        --start 2024-01-02 --end 2024-12-31 --capital 50000

The stored bars of the range are backtested and replayed bar by bar through a throwaway
ibsim into a throwaway paper deployment (fresh SQLite catalog; its own gateway, risk and
order-manager actors), see :mod:`actors.parity`; the operator's trading state is never
touched. It runs on the platform's Ray cluster when one is up (``SCIZOR_RAY_ADDRESS`` or
``scizor up``'s head), else on a local Ray started for the command. It prints a table of
the divergences (signal, quantity, fill price, commission, P&L) and a summary, or
``identical: N trades``. Exit code 0 when identical, 1 on any divergence, 2 on bad input.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from actors.parity import ParityResult, ParitySpec, check_parity, spec_from_deployment
from cluster.cli import app, console, settings
from cluster.cli_backtest import parse_params
from core.errors import ValidationError
from core.settings import Settings
from storage.bars import BarStore
from storage.catalog import Catalog

SHOWN = 50
"""Divergences printed (the summary counts them all)."""


@app.command("parity")
def parity(
    target: str = typer.Argument(..., help="A deployment id, or a library strategy's name."),
    start: str = typer.Option(..., "--start", help="First bar date (YYYY-MM-DD)."),
    end: str = typer.Option(..., "--end", help="Last bar date, included (YYYY-MM-DD)."),
    instrument: list[str] = typer.Option(
        [], "--instrument", "-i", help="Instrument id (repeatable); a deployment's by default."
    ),
    param: list[str] = typer.Option(
        [], "--param", "-p", help="Strategy parameter NAME=VALUE (repeatable)."
    ),
    bar_size: str | None = typer.Option(None, "--bar-size", help="Bar size (1d)."),
    capital: float | None = typer.Option(None, "--capital", help="Capital (default 100000)."),
    commission: str = typer.Option(
        "ibkr", "--commission", help="The backtest's commission: ibkr or a fraction (0.001)."
    ),
) -> None:
    """Replay stored bars into a paper deployment and compare its trades with a backtest."""
    s = settings()
    overrides: dict[str, Any] = {"commission": _commission(commission)}
    if instrument:
        overrides["instruments"] = instrument
    if param:
        overrides["params"] = parse_params(param)
    if bar_size is not None:
        overrides["bar_size"] = bar_size
    if capital is not None:
        overrides["capital"] = capital
    spec = _spec(s, target, start=start, end=end, overrides=overrides)
    _connect(s)
    with console.status("Backtesting and replaying the bars into a paper deployment..."):
        result = check_parity(spec, BarStore(s.storage.bar_store))
    show(result)
    if not result.identical:
        raise typer.Exit(1)


def _spec(
    s: Settings, target: str, *, start: str, end: str, overrides: dict[str, Any]
) -> ParitySpec:
    if target.isdigit():
        catalog = Catalog(s.db.url)
        try:
            return spec_from_deployment(catalog, int(target), start=start, end=end, **overrides)
        finally:
            catalog.dispose()
    if not overrides.get("instruments"):
        raise ValidationError(
            f"name the instruments of {target!r}: --instrument AAPL.NASDAQ", field="instruments"
        )
    return ParitySpec(strategy=target, start=start, end=end, **overrides)


def _commission(text: str) -> str | float:
    try:
        return float(text)
    except ValueError:
        return text


def _connect(s: Settings) -> None:
    """Join the platform's cluster, or start a throwaway local one for this command."""
    import logging

    import ray

    from cluster.bootstrap import connect, head_running, local_address

    if ray.is_initialized():
        return
    if s.ray.address or head_running(local_address()):
        connect(s)
        return
    ray.init(
        address="local", include_dashboard=False, resources={"scizor_head": 1},
        logging_level=logging.WARNING, log_to_driver=False,
    )  # fmt: skip


def show(result: ParityResult) -> None:
    """Print what was compared, each divergence, the replay's problems and the summary."""
    console.print(
        f"[bold]{result.strategy}[/bold] {result.params} on {', '.join(result.instruments)} "
        f"({result.bar_size}, {result.start:%Y-%m-%d} to {result.end:%Y-%m-%d}): "
        f"backtest {len(result.backtest)} trades, paper {len(result.paper)}"
    )
    if result.divergences:
        table = Table(title="Divergences", title_justify="left")
        for column in ("kind", "instrument", "entry bar", "field", "backtest", "paper"):
            table.add_column(column)
        for d in result.divergences[:SHOWN]:
            table.add_row(
                d.kind, d.instrument, f"{d.at:%Y-%m-%d}", d.field, _cell(d.backtest),
                _cell(d.paper),
            )  # fmt: skip
        console.print(table)
        if len(result.divergences) > SHOWN:
            console.print(f"... and {len(result.divergences) - SHOWN} more")
    for problem in result.problems:
        console.print(f"[red]replay problem:[/red] {problem}")
    colour = "green" if result.identical else "red"
    console.print(f"[bold {colour}]{result.summary()}[/bold {colour}]")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return f"{value['side']} {value['quantity']:g} @ {value['entry_price']:.4f}"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
