"""``scizor demo``: the platform's whole story in a few minutes, through its own commands.

collect -> backtest every library strategy across the bundled universe -> optimize one with
walk-forward -> deploy the winner to paper on the gateway (ibsim by default) -> show
positions and P&L. Each step is the ``scizor`` command a user would type, run as a child
process and printed as it goes, so the demo shows what the commands show (progress bars,
tables, report paths) and proves nothing the commands themselves do not.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time

from cluster.cli import app, console, settings
from core.errors import ConfigError, ScizorError

DEMO_STUDY = "demo-sma-etfs"
DEMO_INSTRUMENT = "SPY.ARCA"
DEMO_CAPITAL = "100000"


def _step(title: str, *args: str) -> None:
    """Run one ``scizor`` command as printed; stop the demo if it fails."""
    from serve.jobs import scizor_executable

    line = shlex.join(["scizor", *args])
    console.rule(f"[bold]{title}[/bold]")
    console.print(f"$ {line}", markup=False, highlight=False)
    began = time.monotonic()
    done = subprocess.run([scizor_executable(), *args], check=False)
    if done.returncode != 0:
        raise ScizorError(f"the demo stopped: '{line}' exited with {done.returncode}")
    console.print(f"[dim]({time.monotonic() - began:.1f} s)[/dim]")


def _wait_ready() -> None:
    """Bring SCIZOR up (detached) unless it runs; wait for its preparation to end."""
    from cluster import platform

    s = settings()
    state = platform.load_state(s)
    if state is None:
        _step("Starting SCIZOR", "up", "--detach")
        state = platform.load_state(s)
        if state is None:
            raise ConfigError("SCIZOR did not come up; see 'scizor up' above")
        return
    deadline = time.monotonic() + 1800
    found = platform.preparation(s, state)
    if found is not None and not found.ended:
        console.print(f"Waiting for the preparation 'scizor up' started ({found.describe()})...")
    while found is not None and not found.ended and time.monotonic() < deadline:
        time.sleep(2)
        found = platform.preparation(s, state)


def _winner() -> dict[str, object]:
    """The best parameters of the demo study."""
    from storage.catalog import Catalog

    catalog = Catalog(settings().db.url)
    try:
        record = catalog.optimizations.find(DEMO_STUDY)
    finally:
        catalog.dispose()
    if record is None or not record.best_params:
        raise ScizorError(f"the study {DEMO_STUDY} has no best parameters")
    return dict(record.best_params)


@app.command("demo")
def demo() -> None:
    """Run the platform's whole story in a few minutes and write the reports.

    Starts SCIZOR if it is not running, collects (only what is missing), backtests every
    library strategy on every instrument, optimizes sma_cross over the ETFs with walk-forward,
    deploys the winner to paper on SPY.ARCA and shows the orders, positions and P&L."""
    from strategies.library import LIBRARY

    began = time.monotonic()
    _wait_ready()
    _step("Collecting: the daily history of every valid instrument", "collect", "daily")
    for name in LIBRARY:
        _step(f"Backtesting {name} across the whole universe", "backtest", name,
              "--instruments", "all", "--commission", "ibkr")  # fmt: skip
    _step("Optimizing sma_cross over the ETFs, with walk-forward", "optimize", "sma_cross",
          "--name", DEMO_STUDY, "--universe", "etfs", "--commission", "ibkr",
          "--space", "fast=5:60:5", "--space", "slow=20:250:10", "--constraint", "fast < slow",
          "--sampler", "grid", "--walk-forward", "2Y:6M", "--wait")  # fmt: skip
    winner = _winner()
    params = [arg for key, value in winner.items() for arg in ("-p", f"{key}={json.dumps(value)}")]
    _step(f"Deploying the winner ({', '.join(f'{k}={v}' for k, v in winner.items())}) to paper",
          "deploy", "sma_cross", *params, "--instrument", DEMO_INSTRUMENT,
          "--capital", DEMO_CAPITAL, "--start")  # fmt: skip
    _step("Orders", "orders")
    _step("Positions and P&L", "positions")
    console.rule("[bold green]Demo done[/bold green]")
    console.print(
        f"{time.monotonic() - began:.0f} s. The reports are under "
        f"{settings().storage.home / 'reports'}; the deployment keeps trading on paper "
        "('scizor deployments', 'scizor halt', the console at /ui)."
    )
    sys.stdout.flush()
