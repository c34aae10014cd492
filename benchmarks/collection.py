"""Collection speed against ibsim in strict pacing, next to the bound IBKR's rules imply.

Starts its own local Ray (num_cpus=2), an ibsim subprocess (``--pacing strict --speed S``)
and the gateway actor (pacer time scale S), then times:

1. hard-paced bars (30 s) for N symbols: wall time vs ``lower_bound_seconds`` of the
   requests made (60 per 10 minutes, shrunk S times), as a ratio (goal: within 10 %);
2. 1-minute bars (not hard-paced) for the same symbols, against the message-rate bound;
3. daily bars for the whole bundled universe (what ibsim knows of it), 5 years (goal: < 60 s).

Run: ``.venv/bin/python benchmarks/collection.py [--symbols 8] [--days 10] [--speed 60]``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ray  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from actors.history_plan import plan_chunks  # noqa: E402
from actors.pacing_rules import lower_bound_seconds  # noqa: E402
from cluster import collect_plan as plan  # noqa: E402
from cluster import universe  # noqa: E402
from cluster.collect import run_collection  # noqa: E402
from core.barsize import bar_size as parse_bar_size  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.types import Instrument  # noqa: E402
from ibsim.testing import ibsim_subprocess  # noqa: E402
from storage.bars import BarStore  # noqa: E402

END = datetime(2025, 6, 2, tzinfo=UTC)


@dataclass
class Row:
    scenario: str
    symbols: int
    requests: int
    bars: int
    wall: float
    bound: float | None
    goal: str


def known_instruments() -> dict[str, Instrument]:
    """ibsim's contract world keyed by (symbol, currency)."""
    rows = csv.DictReader((ROOT / "ibsim" / "data" / "contracts.csv").open())
    return {
        f"{r['symbol']}.{r['currency']}": Instrument(
            symbol=r["symbol"],
            exchange=r["exchange"],
            primary_exchange=r["primary_exchange"],
            currency=r["currency"],
        )
        for r in rows
    }


def bundled_known() -> list[Instrument]:
    """The bundled universes' members that ibsim knows (the valid ones after validation)."""
    world = known_instruments()
    out = []
    for m in universe.select():
        inst = world.get(f"{m.symbol}.{m.currency}")
        if inst is not None:
            out.append(inst)
    return out


def requests_for(store: BarStore, targets: list[plan.Target]) -> int:
    """How many gateway requests the targets need (missing ranges split into IBKR chunks)."""
    total = 0
    for t in targets:
        size = parse_bar_size(t.bar_size)
        gaps = store.missing(t.key, t.bar_size, t.start, t.end, calendar=t.calendar)
        for lo, hi in plan.per_session(gaps, bar_size=t.bar_size, calendar=t.calendar):
            total += len(plan_chunks(size, lo, hi))
    return total


def timed(
    name: str,
    targets: list[plan.Target],
    *,
    gateway: Any,
    root: str,
    speed: float,
    goal: str,
    paced_bound: bool,
) -> Row:
    store = BarStore(root)
    n_requests = requests_for(store, targets)
    size = targets[0].bar_size
    bound = lower_bound_seconds(n_requests, size, n_contracts=len(targets), time_scale=speed)
    t0 = time.perf_counter()
    _, tally = run_collection(name, targets, gateway=gateway, store_root=root)
    wall = time.perf_counter() - t0
    if tally.failures:
        raise SystemExit(f"{name}: failures {tally.failures}")
    return Row(
        scenario=name,
        symbols=len(targets),
        requests=n_requests,
        bars=tally.bars_written,
        wall=wall,
        bound=bound if paced_bound or bound > 0 else None,
        goal=goal,
    )


def start_gateway(port: int, speed: float) -> Any:
    from actors.gateway import get_gateway

    settings = Settings.from_env(
        {"SCIZOR_IB_HOST": "127.0.0.1", "SCIZOR_IB_PORT": str(port), "SCIZOR_IB_CLIENT_ID": "91"}
    )
    handle = get_gateway(settings, pin_to_head=False, time_scale=speed)
    ray.get(handle.ready.remote(), timeout=60)
    return handle


def scenarios(args: argparse.Namespace, *, gateway: Any, tmp: str) -> list[Row]:
    """Time the paced intraday runs and the full-universe daily run."""
    nasdaq = [i for i in bundled_known() if i.primary_exchange == "NASDAQ"]
    # Warm up: start the worker processes so the timed runs measure collection only.
    warm = plan.targets(nasdaq[:4], bar_size="1d", start=END - timedelta(days=30), end=END)
    run_collection("warmup", warm, gateway=gateway, store_root=f"{tmp}/warm")
    start = END - timedelta(days=args.days)
    runs = [
        (f"{size} x {args.days}d", size, nasdaq[: args.symbols], start, goal)
        for size, goal in (("30s", "<= 1.10x bound"), ("1m", "not hard-paced"))
    ]
    daily_start = plan.years_before(END, args.years)
    runs.append((f"1d x {args.years}y universe", "1d", bundled_known(), daily_start, "< 60 s"))
    rows = []
    for name, size, instruments, begin, goal in runs:
        targets = plan.targets(instruments, bar_size=size, start=begin, end=END)
        rows.append(
            timed(name, targets, gateway=gateway, root=f"{tmp}/{size}", speed=args.speed,
                  goal=goal, paced_bound=True)
        )  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=20, help="symbols for the paced runs")
    parser.add_argument("--days", type=int, default=30, help="calendar days of intraday bars")
    parser.add_argument("--speed", type=float, default=120.0, help="ibsim speed = pacer scale")
    parser.add_argument("--years", type=int, default=5, help="daily look-back")
    args = parser.parse_args()
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        logging_level="ERROR",
        log_to_driver=False,
        resources={"scizor_head": 1},
    )
    with (
        ibsim_subprocess("--pacing", "strict", "--speed", str(args.speed), control=False) as sim,
        tempfile.TemporaryDirectory() as tmp,
    ):
        gateway = start_gateway(sim.port, args.speed)
        rows = scenarios(args, gateway=gateway, tmp=tmp)
        ray.kill(gateway, no_restart=True)
    ray.shutdown()
    Console(width=120).print(render(rows, speed=args.speed))


def render(rows: list[Row], *, speed: float) -> Table:
    table = Table(title=f"Collection against ibsim (strict pacing, speed {speed:g})")
    for col in ("scenario", "symbols", "requests", "bars", "wall s", "bound s", "ratio", "goal"):
        table.add_column(col, justify="left" if col in ("scenario", "goal") else "right")
    for r in rows:
        ratio = f"{r.wall / r.bound:.2f}x" if r.bound else "-"
        table.add_row(
            r.scenario,
            str(r.symbols),
            str(r.requests),
            f"{r.bars:,}",
            f"{r.wall:.2f}",
            f"{r.bound:.2f}" if r.bound is not None else "-",
            ratio,
            r.goal,
        )
    return table


if __name__ == "__main__":
    main()
