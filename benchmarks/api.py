"""``GET /bars/{id}`` on Ray Serve against the same FastAPI app under plain uvicorn, in one run.

Workload: one instrument's year of daily bars (252), as JSON (one page) and as an Arrow IPC
stream, fetched by 50 concurrent clients (httpx async over loopback) with an API token. Each
target gets the same warm-up and the same bounded number of requests per format; latency is
measured per request at the client. Serve runs the app in a replica behind its HTTP proxy on a
local Ray cluster (2 CPUs); plain uvicorn runs it in one process. Both use the same catalog
(SQLite) and bar store (Parquet), and limits high enough that no request is rate limited.

Goal: Serve's p99 at most 1.5x plain uvicorn's. The ratio column is Serve / plain.

Run: ``.venv/bin/python benchmarks/api.py [--requests N] [--clients C] [--max-seconds S]``
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
INSTRUMENT = "AAPL.NASDAQ"
FORMATS = {"json": {}, "arrow": {"format": "arrow"}}


def high_limits() -> Any:
    """Limits no benchmark request reaches."""
    from serve.limits import ApiLimits

    return ApiLimits(rate_per_second=1e9, burst=10**9)


@dataclass(frozen=True, slots=True)
class Result:
    """Latencies of one target and format."""

    target: str
    fmt: str
    latencies: list[float]
    seconds: float
    errors: int

    def p(self, q: float) -> float:
        """The q-quantile latency in milliseconds."""
        return float(np.quantile(self.latencies, q)) * 1000

    @property
    def rate(self) -> float:
        """Requests answered per second."""
        return len(self.latencies) / self.seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(home: Path) -> tuple[dict[str, str], str]:
    """A catalog with one listing and a token, and a year of its daily bars; the env."""
    from storage.bars import BarStore
    from storage.catalog import Catalog
    from storage.catalog.records import SymbolRecord

    env = {"SCIZOR_HOME": str(home), "SCIZOR_BAR_STORE": str(home / "bars")}
    catalog = Catalog(f"sqlite:///{home / 'scizor.db'}")
    catalog.upgrade()
    catalog.symbols.upsert_many([SymbolRecord(symbol="AAPL", primary_exchange="NASDAQ")])
    _, token = catalog.tokens.create("read", "benchmark")
    catalog.dispose()
    index = pd.date_range("2024-01-02", periods=252, freq="B", tz="UTC", name="ts")
    close = 100 * np.exp(np.cumsum(np.random.default_rng(7).normal(0, 0.01, len(index))))
    frame = pd.DataFrame(
        {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close,
         "volume": 1e6},
        index=index,
    )  # fmt: skip
    BarStore(home / "bars").write(INSTRUMENT, "1d", frame)
    return env, token


async def load(url: str, token: str, params: dict[str, str], *, requests: int, clients: int,
               max_seconds: float) -> tuple[list[float], float, int]:  # fmt: skip
    """Send ``requests`` GETs (fewer if ``max_seconds`` pass first) from ``clients``
    concurrent workers; return the latencies, the wall time and the errors."""
    latencies: list[float] = []
    errors = 0
    remaining = requests
    deadline = time.perf_counter() + max_seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as c:

        async def worker() -> None:
            nonlocal remaining, errors
            while remaining > 0 and time.perf_counter() < deadline:
                remaining -= 1
                started = time.perf_counter()
                response = await c.get(f"/bars/{INSTRUMENT}", params=params)
                if response.status_code == 200 and response.content:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return latencies, time.perf_counter() - began, errors


def measure(target: str, url: str, token: str, **options: float) -> list[Result]:
    results = []
    warm_up = {**options, "requests": int(options["clients"]) * 4}
    for fmt, params in FORMATS.items():
        asyncio.run(load(url, token, params, **warm_up))  # type: ignore[arg-type]
        latencies, seconds, errors = asyncio.run(
            load(url, token, params, **options)  # type: ignore[arg-type]
        )
        results.append(Result(target, fmt, latencies, seconds, errors))
    return results


def wait_healthy(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up within {timeout:.0f} s")


def run_plain(home: Path, port: int) -> None:
    """Child process: the same app under plain uvicorn (one process, no Ray)."""
    import uvicorn

    from core.settings import Settings
    from serve.app import create_api
    from serve.context import ApiContext

    env = {"SCIZOR_HOME": str(home), "SCIZOR_BAR_STORE": str(home / "bars")}
    context = ApiContext(Settings.from_env(env), env=env, limits=high_limits())
    app = create_api(context, include_default_routes=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def bench_plain(home: Path, token: str, **options: float) -> list[Result]:
    port = free_port()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--plain", str(home), str(port)]
    proc = subprocess.Popen(cmd, cwd=ROOT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url)
        return measure("uvicorn", url, token, **options)
    finally:
        proc.terminate()
        proc.wait(30)


def bench_serve(env: dict[str, str], token: str, **options: float) -> list[Result]:
    import ray
    from ray import serve

    from serve.deployment import build_app

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.ERROR,
             log_to_driver=False)  # fmt: skip
    try:
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(env, limits=high_limits()), name="bench", route_prefix="/")
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url)
        return measure("ray serve", url, token, **options)
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()


def report(results: list[Result], *, clients: int) -> None:
    print(f"GET /bars/{INSTRUMENT} (252 daily bars), {clients} concurrent clients, loopback")
    print(f"{'target':<10} {'format':<6} {'requests':>8} {'errors':>6} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'req/s':>8}")  # fmt: skip
    for r in results:
        print(f"{r.target:<10} {r.fmt:<6} {len(r.latencies):>8} {r.errors:>6} "
              f"{r.p(0.5):>8.2f} {r.p(0.99):>8.2f} {r.rate:>8.0f}")  # fmt: skip
    by = {(r.target, r.fmt): r for r in results}
    for fmt in FORMATS:
        served, plain = by[("ray serve", fmt)], by[("uvicorn", fmt)]
        p99 = served.p(0.99) / plain.p(0.99)
        print(
            f"{fmt}: Serve/uvicorn p50 {served.p(0.5) / plain.p(0.5):.2f}x, p99 {p99:.2f}x "
            f"(goal <= 1.5x: {'met' if p99 <= 1.5 else 'not met'}), "
            f"req/s {served.rate / plain.rate:.2f}x"
        )
    ratios = [by[("ray serve", f)].p(0.99) / by[("uvicorn", f)].p(0.99) for f in FORMATS]
    print(f"median p99 ratio Serve/uvicorn: {statistics.median(ratios):.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="per target and format")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--max-seconds", type=float, default=60, help="per target and format")
    parser.add_argument("--plain", nargs=2, metavar=("HOME", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        run_plain(Path(args.plain[0]), int(args.plain[1]))
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    with tempfile.TemporaryDirectory(prefix="scizor-api-bench-") as tmp:
        env, token = prepare(Path(tmp))
        options = {
            "requests": args.requests, "clients": args.clients, "max_seconds": args.max_seconds,
        }  # fmt: skip
        results = bench_plain(Path(tmp), token, **options) + bench_serve(env, token, **options)
    report(results, clients=args.clients)


if __name__ == "__main__":
    main()
