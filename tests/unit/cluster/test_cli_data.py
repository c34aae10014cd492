"""``scizor symbols`` / ``scizor collect`` commands that need no IB, and the run summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

import cluster.cli_data  # noqa: F401  (registers the command groups)
from cluster.cli import app
from cluster.collect_plan import ItemResult, Tally
from cluster.collect_report import summary
from core.errors import ParameterError


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"SCIZOR_HOME": str(tmp_path), "SCIZOR_DATABASE_URL": f"sqlite:///{tmp_path}/c.db"}


def test_populate_force_then_list_and_remove(env: dict[str, str]) -> None:
    runner = CliRunner()
    done = runner.invoke(app, ["symbols", "populate", "--force", "-u", "etfs"], env=env)
    assert done.exit_code == 0, done.output
    assert "etfs: 61 symbols" in done.output and "Validation skipped" in done.output
    listed = runner.invoke(app, ["symbols", "list", "-u", "etf"], env=env)
    assert listed.exit_code == 0 and "Symbols (61)" in listed.output and "SPY" in listed.output
    invalid = runner.invoke(app, ["symbols", "list", "--invalid"], env=env)
    assert "Invalid symbols (0)" in invalid.output
    removed = runner.invoke(app, ["symbols", "remove", "spy"], env=env)
    assert removed.exit_code == 0 and "Removed SPY" in removed.output
    assert "Symbols (60)" in runner.invoke(app, ["symbols", "list"], env=env).output


def test_collect_daily_without_valid_symbols_says_what_to_do(env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["collect", "daily"], env=env)
    assert isinstance(result.exception, ParameterError)
    assert "scizor symbols populate" in str(result.exception)


def test_collect_history_rejects_bad_dates(env: dict[str, str]) -> None:
    args = ["collect", "history", "AAPL", "--start", "2024-02-30"]
    result = CliRunner().invoke(app, args, env=env)
    assert isinstance(result.exception, ParameterError)
    assert "--start '2024-02-30' is not a date; use YYYY-MM-DD" in str(result.exception)


def test_summary_shows_counts_bars_and_failed_instruments() -> None:
    tally = Tally(total=3)
    tally.add(ItemResult(instrument="AAPL.NASDAQ", bar_size="1d", status="done", bars_written=1234))
    tally.add(ItemResult(instrument="MSFT.NASDAQ", bar_size="1d", status="up_to_date"))
    tally.add(
        ItemResult(instrument="XYZ.NYSE", bar_size="1d", status="failed", error="NotFound: 200")
    )
    console = Console(record=True, width=100)
    console.print(summary(tally, title="Daily bars", run_id=7))
    text = console.export_text()
    assert "Daily bars (run 7)" in text
    assert "bars written" in text and "1,234" in text
    assert "Failed instruments" in text and "XYZ.NYSE 1d" in text and "NotFound: 200" in text


def test_live_progress_counts_instruments_bars_and_polls_pacing_once_a_second() -> None:
    from cluster.collect_report import live_progress

    console = Console(record=True, width=140, force_terminal=False)
    tally = Tally(total=3)
    polls: list[float] = []
    now = [100.0]  # a controlled clock: the test decides when a second has passed

    def pacing() -> float:
        polls.append(now[0])
        return 3.5

    results = (
        ItemResult(instrument="A.ASX", bar_size="1d", status="done", bars_written=500),
        ItemResult(instrument="B.ASX", bar_size="1d", status="failed", error="x"),
        ItemResult(instrument="C.ASX", bar_size="1d", status="done", bars_written=1),
    )
    with live_progress(console, total=3, title="Daily", pacing=pacing, clock=lambda: now[0]) as up:
        for result, later in zip(results, (0.0, 0.4, 1.0), strict=True):
            now[0] = 100.0 + later
            tally.add(result)
            up(result, tally)
    text = console.export_text()
    assert "3/3" in text and "2 ok" in text and "1 failed" in text
    assert "501 bars" in text and "pacing wait 3.5 s" in text
    assert polls == [100.0, 101.0]  # at the first result, then not again within a second


def test_bars_of_an_ambiguous_or_never_collected_instrument_say_what_to_do(
    env: dict[str, str], tmp_path: Path
) -> None:
    from core.errors import NotFound
    from core.instruments import AmbiguousInstrument
    from storage.bars import BarStore

    runner = CliRunner()
    populated = runner.invoke(app, ["symbols", "populate", "--force"], env=env)
    assert populated.exit_code == 0, populated.output
    ambiguous = runner.invoke(app, ["bars", "VEA"], env=env)
    assert isinstance(ambiguous.exception, AmbiguousInstrument)
    assert ambiguous.exception.candidates == ["VEA.ARCA", "VEA.ASX"]
    missing = runner.invoke(app, ["bars", "VEA.ASX", "--bar-size", "1h"], env=env)
    assert isinstance(missing.exception, NotFound)
    assert "no 1h bars of VEA.ASX (Viva Energy Group Ltd)" in str(missing.exception)
    assert "scizor collect history VEA.ASX --bar-size 1h" in str(missing.exception)
    index = pd.date_range("2024-01-02", periods=30, freq="B", tz="UTC")
    close = np.linspace(10, 12, len(index))
    BarStore(tmp_path / "bars").write(
        "VEA.ASX",
        "1d",
        pd.DataFrame(
            {"open": close, "high": close + 1, "low": close - 1, "close": close, "volume": 1e5},
            index=index,
        ),
    )
    shown = runner.invoke(app, ["bars", "VEA.ASX", "--tail", "3"], env={**env, "COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "VEA.ASX 1d: 30 bars" in shown.output and "12.0000" in shown.output
