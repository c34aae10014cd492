"""The HTML report renders in headless Chromium: every chart's lines are laid out."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from strategies.metrics import compute_stats
from strategies.report import write_report

pytestmark = pytest.mark.integration

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=5000",
]


def find_chromium() -> str:
    """Return the Chromium binary (PATH or /usr/bin); the Makefile installs Debian's
    ``chromium`` package when it is missing."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    pytest.fail("chromium not found: install it with `apt-get install -y chromium`")


def dump_dom(html_file: Path, profile: Path) -> str:
    result = subprocess.run(
        [
            find_chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--dump-dom",
            html_file.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout


def test_report_charts_render_in_chromium(tmp_path) -> None:
    rng = np.random.default_rng(8)
    idx = pd.date_range("2021-01-04", periods=500, freq="B", tz="UTC")
    close = 100 * np.exp(np.cumsum(rng.normal(0.0003, 0.015, 500)))
    bars = pd.DataFrame({"open": close, "high": close, "low": close, "close": close}, idx)
    equity = pd.Series(10_000 * np.cumprod(1 + rng.normal(0.0004, 0.01, 500)), idx)
    trades = pd.DataFrame(
        [("X", "long", 1, idx[20], close[20], idx[60], close[60], 5.0, 2.0, 0.0)],
        columns=[
            "symbol",
            "side",
            "size",
            "entry_time",
            "entry_price",
            "exit_time",
            "exit_price",
            "pnl",
            "return_pct",
            "commission",
        ],
    )
    stats = compute_stats(equity, trades=trades, benchmark=bars["close"])
    report = write_report(
        tmp_path / "report.html",
        equity=equity,
        stats=stats,
        trades=trades,
        bars=bars,
        benchmark=bars["close"],
    )
    dom = dump_dom(report, tmp_path / "profile")
    for chart in ("equity-chart", "drawdown-chart", "price-chart"):
        tag = re.search(rf"<div[^>]*id=\"{chart}\"[^>]*>", dom)
        assert tag, f"{chart} missing from the rendered DOM"
        assert 'data-rendered="1"' in tag.group(0), f"{chart} was not drawn"
    assert "monthly-returns" in dom and "final_equity" in dom


def test_backtest_result_report_draws_its_trades_in_chromium(tmp_path) -> None:
    from strategies.engine import run_backtest

    rng = np.random.default_rng(21)
    idx = pd.date_range("2020-01-02", periods=600, freq="B", tz="UTC")
    close = 80 * np.exp(np.cumsum(rng.normal(0.0004, 0.014, 600)))
    bars = pd.DataFrame(
        {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close, "volume": 1e6},
        idx,
    )
    result = run_backtest(bars, "sma_cross", {"fast": 10, "slow": 40}, commission=0.001)
    assert len(result.trades) >= 3
    path = result.report(tmp_path / "sma.html")
    dom = dump_dom(path, tmp_path / "profile")
    for chart in ("equity-chart", "drawdown-chart", "price-chart"):
        tag = re.search(rf"<div[^>]*id=\"{chart}\"[^>]*>", dom)
        assert tag and 'data-rendered="1"' in tag.group(0), f"{chart} was not drawn"
    assert f"Price and trades ({len(result.trades)} trades)" in dom
    assert dom.count("marker entry") == len(result.trades) == dom.count("marker exit")
