"""ibsim throughput through an unmodified ib_async client on loopback.

Measures historical requests per second (daily bars, pacing off) and order round-trip
latency (placeOrder -> Filled). There is no peer gateway to compare against, so the numbers
are printed as a small table. Run: ``.venv/bin/python benchmarks/ibsim_throughput.py``.

ib_async throttles itself to 45 requests a second (IBKR's message limit), so the 1-year
rate is the client's ceiling rather than ibsim's; orders are timed on a fresh connection.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime

from ib_async import IB, MarketOrder, Stock

from ibsim.testing import running_ibsim

START = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)
SYMBOLS = ("AAPL", "MSFT", "NVDA", "AMZN", "META", "SPY", "QQQ", "JPM", "XOM", "GLD")


async def history_rate(ib: IB, *, n: int, duration: str) -> tuple[float, int]:
    """Return (requests per second, bars per request) for ``n`` daily-bar requests."""
    contracts = [Stock(s, "SMART", "USD") for s in SYMBOLS]
    t0 = time.perf_counter()
    sizes = []
    for i in range(n):
        bars = await ib.reqHistoricalDataAsync(
            contracts[i % len(contracts)], "", duration, "1 day", "TRADES", True
        )
        sizes.append(len(bars))
    return n / (time.perf_counter() - t0), int(statistics.mean(sizes))


async def order_latency(ib: IB, *, n: int) -> list[float]:
    """Return placeOrder -> Filled latencies in milliseconds."""
    c = (await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD")))[0]
    out = []
    for i in range(n):
        done = asyncio.Event()
        t0 = time.perf_counter()
        trade = ib.placeOrder(c, MarketOrder("BUY" if i % 2 == 0 else "SELL", 100))
        trade.filledEvent += lambda _t, done=done: done.set()
        await asyncio.wait_for(done.wait(), 10)
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def main_async(port: int, *, requests: int, orders: int) -> None:
    ib = IB()
    await ib.connectAsync("127.0.0.1", port, 1, timeout=10)
    rows = []
    for duration in ("1 Y", "10 Y"):
        rate, bars = await history_rate(ib, n=requests, duration=duration)
        rows.append((f"historical {duration} daily ({bars} bars)", f"{rate:,.1f} req/s"))
    ib.disconnect()
    # A fresh client: ib_async throttles itself to 45 requests a second, and after the
    # history burst above its queue delays every later message by ~20 ms (client side).
    ib = IB()
    await ib.connectAsync("127.0.0.1", port, 2, timeout=10)
    lat = sorted(await order_latency(ib, n=orders))
    p50, p95 = lat[len(lat) // 2], lat[int(len(lat) * 0.95) - 1]
    rows.append((f"order round trip MKT ({orders} orders)", f"p50 {p50:.1f} ms, p95 {p95:.1f} ms"))
    ib.disconnect()
    width = max(len(r[0]) for r in rows)
    print(f"{'ibsim via ib_async (loopback)':<{width}}  result")
    print("-" * (width + 30))
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--orders", type=int, default=50)
    args = parser.parse_args()
    with running_ibsim(start=START, pacing="off") as sim:
        asyncio.run(main_async(sim.port, requests=args.requests, orders=args.orders))


if __name__ == "__main__":
    main()
