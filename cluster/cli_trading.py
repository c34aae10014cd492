"""``scizor deploy``, ``deployments``, ``positions``, ``orders``, ``halt``, ``resume-trading``.

::

    scizor deploy sma_cross -i AAPL.NASDAQ --capital 10000 --param fast=10 --param slow=50 \\
        --bar-size 5m --account DU1234567 --start
    scizor deployments                      # every deployment
    scizor deployments 3 pause              # start | stop [--flatten] | pause | resume
    scizor positions
    scizor orders --open
    scizor halt --reason "feed looks wrong" --flatten
    scizor resume-trading

Deploying checks the spec as the HTTP API does (the strategy's typed parameters, the
instruments, the capital, the mode against the account) and stores it; ``--start`` and the
lifecycle actions reach the deployment's runner actor on the cluster (``SCIZOR_RAY_ADDRESS``,
else the local head ``scizor up`` started). ``halt`` is the emergency stop
(:func:`actors.trading_ops.emergency_stop`): the kill switch, every running deployment
paused, every open order cancelled, with ``--flatten`` every position closed;
``resume-trading`` clears the kill switch and leaves the deployments paused. Positions and
orders are read from the catalog. Bad input is one line naming the field, exit code 2.
"""

from __future__ import annotations

import getpass
from decimal import Decimal
from typing import Any

import typer
from rich.table import Table

from cluster.cli import app, console, kv_table, settings
from cluster.cli_backtest import parse_params
from core.errors import ValidationError
from core.types import TradingMode

ACTIONS = ("start", "stop", "pause", "resume")
_STATUS_STYLE = {"running": "green", "paused": "yellow", "stopped": "dim", "failed": "red",
                 "Filled": "green", "Cancelled": "dim", "Rejected": "red",
                 "Submitted": "cyan", "PartiallyFilled": "cyan"}  # fmt: skip


def _catalog() -> Any:
    from storage.catalog import Catalog

    return Catalog(settings().db.url)


def _cluster() -> Any:
    """The settings, once joined to the cluster as a driver."""
    from cluster import bootstrap

    s = settings()
    bootstrap.connect(s)
    return s


def _who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no user name in a container: still say it was the CLI
        return "cli"


def _styled(status: str) -> str:
    style = _STATUS_STYLE.get(status)
    return f"[{style}]{status}[/{style}]" if style else status


def _money(value: Decimal | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _whole(value: Decimal | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value == value.to_integral_value() else f"{value:,.2f}"


def _quantity(value: Decimal) -> str:
    return f"{value.normalize():f}"


def deployments_table(records: list[Any]) -> Table:
    """Deployments: id, strategy with its parameters, instruments, mode, status, bars, capital."""
    table = Table(title=f"Deployments ({len(records)})", title_justify="left")
    for column in ("id", "strategy", "instruments", "mode", "status", "bars", "capital",
                   "account"):  # fmt: skip
        table.add_column(column, no_wrap=column not in ("strategy", "instruments"))
    for r in records:
        params = ", ".join(f"{k}={v}" for k, v in r.params.items())
        table.add_row(str(r.id), f"{r.strategy}({params})", ", ".join(r.instruments),
                      str(r.mode), _styled(str(r.status)), r.bar_size, _whole(r.capital),
                      r.account or "-")  # fmt: skip
    if not records:
        table.caption = "no deployments yet: scizor deploy STRATEGY -i ID --capital N"
    return table


@app.command()
def deploy(
    strategy: str = typer.Argument(..., help="A library strategy (GET /strategies lists them)."),
    instrument: list[str] = typer.Option(
        ..., "--instrument", "-i", help="An instrument id such as AAPL.NASDAQ (repeat, or a,b)."
    ),
    capital: str = typer.Option(..., "--capital", help="Money allocated, split over them."),
    param: list[str] = typer.Option([], "--param", "-p", help="A parameter NAME=VALUE (repeat)."),
    bar_size: str = typer.Option("1d", "--bar-size", help="The bars it trades on, e.g. 5m, 1d."),
    account: str = typer.Option("", "--account", help="The IB account (default: the only one)."),
    live: bool = typer.Option(False, "--live/--paper", help="Trade live money (default paper)."),
    confirm_live: bool = typer.Option(
        False, "--confirm-live", help="Confirm a live start (needed with --live --start)."
    ),
    start: bool = typer.Option(False, "--start", help="Start its runner on the cluster now."),
) -> None:
    """Check a deployment spec, store it as 'created' and, with --start, start it."""
    from actors.deployments import DeploymentSpec, create_deployment

    items = [v.strip() for value in instrument for v in value.split(",") if v.strip()]
    if live and start and not confirm_live:
        raise ValidationError("a live deployment starts only with --confirm-live",
                              field="confirm_live")  # fmt: skip
    spec = DeploymentSpec(
        strategy=strategy, instruments=items, capital=capital, params=parse_params(param),
        account=account, mode=TradingMode.LIVE if live else TradingMode.PAPER,
        bar_size=bar_size,
    )  # fmt: skip
    catalog = _catalog()
    acted: dict[str, Any] | None = None
    try:
        record = create_deployment(catalog, spec)
        if start:
            _act(record.id, "start", confirm_live=confirm_live, flatten=False)
            acted = _wait_until_acted(record.id)
            record = catalog.deployments.get(record.id)
        console.print(deployments_table([record]))
    finally:
        catalog.dispose()
    if not start:
        console.print(f"Start it with [bold]scizor deployments {record.id} start[/bold].")
    elif acted is None:
        console.print("Its runner has no completed bar yet: it acts when the next one closes.")
    else:
        sent = acted.get("sent") or []
        did = f"sent {', '.join(sent)}" if sent else "sent no order (nothing to change)"
        console.print(f"Its runner evaluated the latest bar and {did}.")


def _wait_until_acted(deployment_id: int) -> dict[str, Any] | None:
    """Wait (up to a minute) for a started runner's first evaluation, so what follows sees it."""
    from actors.deployments import wait_until_acted

    with console.status("waiting for the runner's first bar"):
        return wait_until_acted(_cluster(), deployment_id, timeout=60.0)


def _act(deployment_id: int, action: str, *, confirm_live: bool, flatten: bool) -> dict[str, Any]:
    from actors import deployments as d

    s = _cluster()
    if action == "start":
        return d.start_deployment(s, deployment_id, confirm_live=confirm_live)
    if action == "stop":
        return d.stop_deployment(s, deployment_id, flatten=flatten)
    if action == "pause":
        return d.pause_deployment(s, deployment_id)
    return d.resume_deployment(s, deployment_id)


@app.command()
def deployments(
    deployment_id: int | None = typer.Argument(None, help="One deployment's id."),
    action: str | None = typer.Argument(None, help="start, stop, pause or resume."),
    flatten: bool = typer.Option(False, "--flatten", help="With stop: zero its positions first."),
    confirm_live: bool = typer.Option(
        False, "--confirm-live", help="With start: confirm a live deployment."
    ),
    status: str | None = typer.Option(None, "--status", help="Only this status, e.g. running."),
) -> None:
    """List deployments, show one, or start/stop/pause/resume it."""
    from storage.catalog import DeploymentStatus

    catalog = _catalog()
    try:
        if deployment_id is None:
            wanted = None if status is None else _status(status)
            records = sorted(catalog.deployments.list(status=wanted), key=lambda r: -r.id)
            console.print(deployments_table(records))
            return
        record = catalog.deployments.get(deployment_id)
        if action is not None:
            if action not in ACTIONS:
                raise ValidationError(f"action {action!r}: use one of {', '.join(ACTIONS)}",
                                      field="action")  # fmt: skip
            if action == "start" and record.mode == TradingMode.LIVE and not confirm_live:
                raise ValidationError(f"deployment {deployment_id} trades live money: add "
                                      "--confirm-live", field="confirm_live")  # fmt: skip
            _act(deployment_id, action, confirm_live=confirm_live, flatten=flatten)
            record = catalog.deployments.get(deployment_id)
        console.print(deployments_table([record]))
        state = record.runner_state or {}
        if record.status != DeploymentStatus.CREATED and state.get("instruments"):
            console.print(kv_table("Runner state", state["instruments"]))
    finally:
        catalog.dispose()


def _status(text: str) -> Any:
    from storage.catalog import DeploymentStatus

    try:
        return DeploymentStatus(text)
    except ValueError:
        choices = ", ".join(s.value for s in DeploymentStatus)
        raise ValidationError(f"--status {text!r}: use one of {choices}", field="status") from None


@app.command()
def positions(
    flat: bool = typer.Option(False, "--flat", help="Also instruments traded and flat now."),
) -> None:
    """Positions from the stored executions, with P&L (marked at the last fill's price)."""
    from actors.positions import PositionBook, last_fill_prices

    catalog = _catalog()
    try:
        fills = catalog.executions.list()
    finally:
        catalog.dispose()
    held = PositionBook.from_fills(fills).positions(last_prices=last_fill_prices(fills),
                                                    include_flat=flat)  # fmt: skip
    table = Table(title=f"Positions ({len(held)})", title_justify="left")
    for column in ("instrument", "quantity", "avg cost", "last", "unrealized", "realized",
                   "commission"):  # fmt: skip
        table.add_column(column, justify="left" if column == "instrument" else "right")
    for p in held:
        table.add_row(p.instrument, _quantity(p.quantity), _money(p.avg_cost),
                      _money(p.last_price), _money(p.unrealized_pnl), _money(p.realized_pnl),
                      _money(p.commission))  # fmt: skip
    if not held:
        table.caption = "no positions"
    console.print(table)


@app.command()
def orders(
    open_only: bool = typer.Option(False, "--open", help="Only orders still working."),
    instrument: str | None = typer.Option(None, "--instrument", "-i", help="One instrument."),
    limit: int = typer.Option(30, "--limit", min=1, help="The newest this many."),
) -> None:
    """Orders, newest first: reference, instrument, side, quantity, type, status, fills."""
    from core.instruments import parse

    catalog = _catalog()
    try:
        wanted = None if instrument is None else str(parse(instrument, field="instrument"))
        records = catalog.orders.list(open_only=open_only, instrument=wanted)[::-1]
    finally:
        catalog.dispose()
    table = Table(title=f"Orders ({min(limit, len(records))} of {len(records)})",
                  title_justify="left")  # fmt: skip
    for column in ("order ref", "instrument", "side", "qty", "type", "status", "filled",
                   "avg price", "created (UTC)"):  # fmt: skip
        table.add_column(column, no_wrap=column not in ("order ref", "created (UTC)"))
    for r in records[:limit]:
        o = r.order
        kind = str(o.order_type) + ("" if o.limit_price is None else f" {_money(o.limit_price)}")
        table.add_row(r.order_ref, o.instrument, str(o.side), _quantity(o.quantity), kind,
                      _styled(str(r.status)), _quantity(r.filled_quantity),
                      _money(r.avg_fill_price), f"{o.created_at:%Y-%m-%d %H:%M:%S}")  # fmt: skip
    if not records:
        table.caption = "no open orders" if open_only else "no orders"
    console.print(table)


@app.command()
def halt(
    reason: str = typer.Option(..., "--reason", help="Why (kept with the halt)."),
    flatten: bool = typer.Option(False, "--flatten", help="Also close every position."),
) -> None:
    """Emergency stop: halt, pause deployments, cancel open orders (--flatten: close all)."""
    from actors import trading_ops

    if not reason.strip():
        raise ValidationError("--reason must say why trading stops", field="reason")
    done = trading_ops.emergency_stop(_cluster(), reason, _who(), flatten)
    console.print(kv_table("[bold red]Trading halted[/bold red]", {
        "reason": reason, "by": done["halted"]["by"], "at": done["halted"]["at"],
        "paused deployments": ", ".join(map(str, done["paused"])) or "none",
        "cancelled orders": ", ".join(done["cancelled"]) or "none",
        "flatten orders": ", ".join(done["flatten_orders"]) or ("none" if flatten else "-"),
        "failures": "; ".join(done["failures"]) or "none",
    }))  # fmt: skip
    console.print("Clear it with [bold]scizor resume-trading[/bold] (admin), then resume each "
                  "deployment with 'scizor deployments ID resume'.")  # fmt: skip


@app.command("resume-trading")
def resume_trading() -> None:
    """Clear the kill switch after a halt; deployments stay paused until each is resumed."""
    from actors import trading_ops

    done = trading_ops.reset(_cluster(), _who())
    paused = ", ".join(map(str, done["paused"])) or "none"
    console.print(kv_table("[bold green]Trading allowed again[/bold green]",
                           {"by": done["reset"]["by"], "at": done["reset"]["at"],
                            "still paused": paused}))  # fmt: skip
    if done["paused"]:
        console.print("Resume them with 'scizor deployments ID resume'.")
