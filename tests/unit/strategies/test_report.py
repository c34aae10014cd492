"""strategies.report: one self-contained HTML file with the charts and the metrics table."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from strategies.metrics import compute_stats
from strategies.report import write_report

COLS = "symbol side size entry_time entry_price exit_time exit_price pnl return_pct commission"


class Tags(HTMLParser):
    """Collect (tag, attrs) pairs and the page's text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data) -> None:
        self.text.append(data)


def parse(path) -> Tags:
    parser = Tags()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="module")
def backtest() -> dict:
    rng = np.random.default_rng(4)
    idx = pd.date_range("2022-01-03", periods=400, freq="B", tz="UTC")
    close = 50 * np.exp(np.cumsum(rng.normal(0.0005, 0.02, 400)))
    bars = pd.DataFrame({"open": close, "high": close, "low": close, "close": close}, idx)
    equity = pd.Series(10_000 * close / close[0] * 0.5 + 5_000, idx)
    trades = pd.DataFrame(
        [
            ("X", "long", 10, idx[10], close[10], idx[40], close[40], 55.0, 3.0, 1.0),
            ("X", "short", 10, idx[100], close[100], idx[150], close[150], -20.0, -1.0, 1.0),
        ],
        columns=COLS.split(),
    )
    stats = compute_stats(equity, trades=trades, benchmark=bars["close"])
    return {"equity": equity, "bars": bars, "trades": trades, "stats": stats}


def test_report_has_every_chart_and_the_metrics(tmp_path, backtest) -> None:
    path = write_report(
        tmp_path / "r.html",
        equity=backtest["equity"],
        stats=backtest["stats"],
        trades=backtest["trades"],
        bars=backtest["bars"],
        benchmark=backtest["bars"]["close"],
        title="My <test>",
    )
    page = parse(path)
    ids = {a.get("id") for _, a in page.tags}
    assert {"equity-chart", "drawdown-chart", "price-chart", "monthly-returns", "metrics"} <= ids
    series = [a for t, a in page.tags if t == "path" and a.get("class") == "series"]
    assert len(series) == 4  # strategy, benchmark, drawdown, close
    assert all(int(a["data-points"]) == 400 for a in series)
    assert all(len(re.findall(r"L", a["d"])) == 399 for a in series)
    entries = [a for t, a in page.tags if a.get("class") == "marker entry"]
    exits = [a for t, a in page.tags if a.get("class") == "marker exit"]
    assert len(entries) == 2 and len(exits) == 2
    cells = {a["data-key"] for t, a in page.tags if t == "td" and "data-key" in a}
    assert set(backtest["stats"]) == cells
    text = "".join(page.text)
    assert "My <test>" in text
    assert f"{backtest['stats']['n_trades']:.0f}" in text
    assert "2022-01-03" in text  # dates on the axis
    heat_rows = [a for t, a in page.tags if t == "td" and "background" in (a.get("style") or "")]
    assert len(heat_rows) == 2 * 13  # 2022 and 2023, 12 months + year


def test_report_is_self_contained(tmp_path, backtest) -> None:
    path = write_report(tmp_path / "r.html", equity=backtest["equity"], stats=backtest["stats"])
    html = path.read_text(encoding="utf-8")
    assert not re.search(r"(src|href)\s*=\s*['\"]?https?:", html)
    assert "<script src" not in html and "<link" not in html


def test_report_without_trades_or_bars(tmp_path, backtest) -> None:
    empty = backtest["trades"].iloc[:0]
    stats = compute_stats(backtest["equity"], trades=empty)
    path = write_report(
        tmp_path / "r.html",
        equity=backtest["equity"],
        stats=stats,
        trades=empty,
        bars=backtest["bars"],
    )
    page = parse(path)
    assert not [a for _, a in page.tags if "marker" in (a.get("class") or "")]
    assert "Price and trades (0 trades)" in "".join(page.text)
    assert "–" in "".join(page.text)  # NaN metrics shown as a dash


def test_report_on_empty_equity_does_not_raise(tmp_path) -> None:
    equity = pd.Series([], dtype=float, index=pd.DatetimeIndex([], tz="UTC"))
    path = write_report(tmp_path / "r.html", equity=equity, stats=compute_stats(equity))
    assert "No data." in path.read_text(encoding="utf-8")


def test_long_series_are_downsampled(tmp_path) -> None:
    idx = pd.date_range("2020-01-01", periods=20_000, freq="h", tz="UTC")
    equity = pd.Series(np.linspace(100.0, 200.0, 20_000), idx)
    path = write_report(tmp_path / "r.html", equity=equity, stats={})
    series = [a for t, a in parse(path).tags if a.get("class") == "series"]
    assert all(int(a["data-points"]) <= 2000 for a in series)
    assert "2020-01-01" in path.read_text(encoding="utf-8")
