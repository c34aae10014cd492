"""Trading-path benchmark: bar-to-order latency and orders per second, on a local Ray with ibsim.

What runs: ibsim (in this process, on loopback, its clock real time from a NASDAQ open, its
own pacing off) and, on a 2-CPU local Ray, the gateway, risk-manager and order-manager actors
(SQLite catalog in a temp dir; the order manager asks the gateway for a quote before each
risk check, as it does in production; no risk limits set, so every check passes). Each
measurement runs twice: with the gateway's pacer at IBKR's 50 messages/s (what a real
gateway allows; an order is a quote request plus the order, two messages) and with its
message rate lifted (the path's own cost).

1. Bar to order: a :class:`actors.strategy_runner.StrategyRunner` (the plain class its actor
   hosts, here in this process; its sink is the order-manager actor, as in production) gets
   ``--bars`` completed 5-minute bars one at a time (``on_bars``). The bars zigzag, so
   ``sma_cross(2, 3)`` flips its target on every bar and every bar sends a market order
   (about 95 MSFT shares, buy then sell). Timed from the ``on_bars`` call to:
   *receipt*, ibsim's broker accepting the order (its ``Broker.place`` is wrapped to note
   the time; it runs in this process, so the clocks agree), through the runner's
   evaluation, the order manager (quote, risk-manager actor, catalog write) and the
   gateway; and *answered*, the runner's call returning (IB's first answer back through the
   gateway and the order manager, plus the runner saving its state). Fills are pushed to
   the order manager meanwhile (each costs it a catalog write and an equity observation),
   so orders queue behind them as they would live.
2. Orders per second: ``--orders`` manual market orders of 10 shares (buy, sell, ...)
   submitted to the order-manager actor all at once (its calls are serial, so this is its
   throughput: quote, risk check, catalog writes, gateway, ibsim's first answer), and
   ``--orders // 3`` submitted one at a time (each call's round trip).

Times are wall clock on a shared machine: the load average is printed before and after.
Run: ``.venv/bin/python benchmarks/trading.py [--bars 300] [--orders 300] [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
import ray  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from actors.deployments import DeploymentSpec, create_deployment  # noqa: E402
from actors.gateway import get_gateway  # noqa: E402
from actors.order_actor import get_order_manager  # noqa: E402
from actors.pacing import PacingRules  # noqa: E402
from actors.risk_actor import get_risk_manager  # noqa: E402
from actors.runner_io import ActorSink  # noqa: E402
from actors.strategy_runner import StrategyRunner  # noqa: E402
from actors.stream_status import StreamBatch  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.types import Order, Side  # noqa: E402
from ibsim.server import IBSim  # noqa: E402
from ibsim.testing import running_ibsim  # noqa: E402
from storage.bars import BarStore  # noqa: E402
from storage.catalog import Catalog  # noqa: E402

START = datetime(2024, 3, 5, 14, 31, tzinfo=UTC)  # a NASDAQ open
MSFT = "MSFT.NASDAQ"
NAMESPACE = "scizor-bench"
BAR = timedelta(minutes=5)
T = 300.0


class Receipts:
    """Wraps ibsim's ``Broker.place`` to note when each order reached it (perf_counter)."""

    def __init__(self, sim: IBSim) -> None:
        self.at: dict[str, float] = {}
        place = sim.broker.place

        def noted(order: Any, quote: Any, now: Any) -> Any:
            self.at.setdefault(order.order_ref, time.perf_counter())
            return place(order, quote, now)

        sim.broker.place = noted  # type: ignore[method-assign]


class NoFeed:
    """The runner's market feed: one account; bars come from the benchmark, not a stream."""

    def __init__(self, account: str) -> None:
        self._account = account

    async def open_stream(self, instrument: str, bar_size: str) -> str:
        return f"bench-{instrument}"

    async def poll_stream(self, stream_id: str) -> StreamBatch:
        raise NotImplementedError("the benchmark hands bars to on_bars itself")

    async def close_stream(self, stream_id: str) -> None:
        return None

    async def accounts(self) -> list[str]:
        return [self._account]


def zigzag(n: int, *, start: datetime) -> pd.DataFrame:
    """``n`` 5-minute bars closing 100, 110, 100, ...: sma_cross(2, 3) flips on each."""
    close = [100.0 if i % 2 == 0 else 110.0 for i in range(n)]
    index = pd.DatetimeIndex([start + i * BAR for i in range(n)], tz=UTC, name="ts")
    return pd.DataFrame(
        {"open": close, "high": close, "low": close, "close": close, "volume": 1000.0},
        index=index,
    )


@dataclasses.dataclass
class Desk:
    settings: Settings
    catalog: Catalog
    gateway: Any
    om: Any
    actors: list[Any]


@contextmanager
def desk(sim: IBSim, home: Path, *, paced: bool) -> Iterator[Desk]:
    """The gateway, risk-manager and order-manager actors over a fresh SQLite catalog."""
    settings = Settings.from_env({
        "SCIZOR_HOME": str(home), "SCIZOR_DATABASE_URL": f"sqlite:///{home / 'scizor.db'}",
        "SCIZOR_BAR_STORE": str(home / "bars"), "SCIZOR_IB_HOST": "127.0.0.1",
        "SCIZOR_IB_PORT": str(sim.port), "SCIZOR_IB_CLIENT_ID": "1" if paced else "2",
    })  # fmt: skip
    catalog = Catalog(settings.db.url)
    catalog.upgrade()
    rules = PacingRules.ibkr()
    if not paced:
        rules = dataclasses.replace(rules, messages_per_window=1_000_000)
    tag = "paced" if paced else "unpaced"
    names = {"gateway_name": f"gw-{tag}", "risk_name": f"risk-{tag}"}
    where = {"namespace": NAMESPACE, "pin_to_head": False}
    gateway = get_gateway(settings, name=names["gateway_name"], subscribers=[f"om-{tag}"],
                          rules=rules, **where)  # fmt: skip
    risk = get_risk_manager(settings, name=names["risk_name"], **where)
    om = get_order_manager(settings, name=f"om-{tag}", **names, **where)
    ray.get(om.stats.remote(), timeout=T)  # started: subscribed and reconciled
    try:
        yield Desk(settings=settings, catalog=catalog, gateway=gateway, om=om,
                   actors=[om, risk, gateway])  # fmt: skip
    finally:
        for actor in (om, risk, gateway):
            ray.kill(actor, no_restart=True)
        catalog.dispose()


async def bar_to_order(d: Desk, receipts: Receipts, *, bars: int) -> dict[str, list[float]]:
    """Feed ``bars`` bars to a runner; return receipt and answer latencies (ms) of the bars
    that sent an order (all but possibly the first)."""
    warmup = 3
    frame = zigzag(warmup + bars, start=datetime(2024, 3, 4, 14, 30, tzinfo=UTC))
    BarStore(d.settings.storage.bar_store).write(MSFT, "5m", frame.iloc[:warmup])
    record = create_deployment(d.catalog, DeploymentSpec(
        strategy="sma_cross", params={"fast": 2, "slow": 3}, instruments=[MSFT],
        capital=10_000, bar_size="5m",
    ))  # fmt: skip
    store = BarStore(d.settings.storage.bar_store)
    runner = StrategyRunner(record.id, catalog=d.catalog, history=store,
                            feed=NoFeed("DU1234567"), sink=ActorSink(d.om))  # fmt: skip
    await runner.start(loop=False)
    received, answered = [], []
    for i in range(warmup, warmup + bars):
        t0 = time.perf_counter()
        order = await runner.on_bars(MSFT, frame.iloc[i : i + 1])
        t1 = time.perf_counter()
        if order is None and i == warmup:
            continue  # the first bar may keep the flat target the warm-up ended on
        if order is None:
            raise RuntimeError(f"bar {i} sent no order; the zigzag should flip every bar")
        answered.append((t1 - t0) * 1000)
        received.append((receipts.at[order.order_ref] - t0) * 1000)
    await runner.stop()
    return {"receipt": received, "answered": answered}


def orders_per_second(d: Desk, *, n: int) -> tuple[float, list[float]]:
    """Submit ``n`` orders at once (orders/s), then ``n // 3`` one at a time (ms each)."""

    def order(i: int, tag: str) -> Order:
        side = Side.BUY if i % 2 == 0 else Side.SELL
        return Order(instrument=MSFT, side=side, quantity=Decimal(10), order_ref=f"{tag}-{i}")

    t0 = time.perf_counter()
    answers = ray.get([d.om.submit.remote(order(i, "burst")) for i in range(n)], timeout=T)
    rate = n / (time.perf_counter() - t0)
    assert all(a.sent and not a.rejected for a in answers), [a.message for a in answers][:3]
    each = []
    for i in range(n // 3):
        t1 = time.perf_counter()
        ray.get(d.om.submit.remote(order(i, "one")), timeout=T)
        each.append((time.perf_counter() - t1) * 1000)
    return rate, each


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bars", type=int, default=300)
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="30 bars, 30 orders")
    args = parser.parse_args()
    bars, orders = (30, 30) if args.quick else (args.bars, args.orders)
    console = Console()
    load = os.getloadavg()
    ray.init(num_cpus=2, namespace=NAMESPACE, include_dashboard=False, logging_level="ERROR",
             log_to_driver=False)  # fmt: skip
    latency = Table(title=f"1. Bar to order: {bars} bars, one market order each (ms)")
    for column in ("gateway pacer", "measured to", "p50", "p99", "mean", "max"):
        latency.add_column(column, justify="right" if column[0] in "pm" else "left")
    rate = Table(title="2. Orders through risk and the order manager")
    for column in ("gateway pacer", f"{orders} at once", "one at a time p50", "p99"):
        rate.add_column(column, justify="left" if column.startswith("gateway") else "right")
    try:
        with running_ibsim(start=START, pacing="off") as sim, tempfile.TemporaryDirectory() as tmp:
            receipts = Receipts(sim)
            for paced in (True, False):
                pacer = "IBKR 50 msg/s" if paced else "lifted"
                home = Path(tmp) / ("paced" if paced else "unpaced")
                home.mkdir()
                receipts.at.clear()  # each desk's deployment is number 1: the same order_refs
                with desk(sim, home, paced=paced) as d:
                    timed = asyncio.run(bar_to_order(d, receipts, bars=bars))
                    for what, values in (("ibsim receipt", timed["receipt"]),
                                         ("answered", timed["answered"])):  # fmt: skip
                        stats = (pct(values, 0.5), pct(values, 0.99), statistics.mean(values),
                                 max(values))  # fmt: skip
                        latency.add_row(pacer, what, *(f"{v:.1f}" for v in stats))
                    per_s, each = orders_per_second(d, n=orders)
                    rate.add_row(pacer, f"{per_s:,.1f} orders/s", f"{pct(each, 0.5):.1f} ms",
                                 f"{pct(each, 0.99):.1f} ms")  # fmt: skip
    finally:
        ray.shutdown()
    console.print(latency)
    console.print(rate)
    after = os.getloadavg()
    print(f"load average before {load[0]:.2f} {load[1]:.2f}; load average after "
          f"{after[0]:.2f} {after[1]:.2f} ({os.cpu_count()} CPUs)")  # fmt: skip
    print("Includes: the runner's strategy evaluation and state saves (answered only), the "
          "order manager's gateway quote, risk-manager actor call and catalog writes (SQLite), "
          "the gateway's pacer and ib_async, ibsim over loopback, and pushed fills handled by "
          "the order manager between orders.")  # fmt: skip


if __name__ == "__main__":
    main()
