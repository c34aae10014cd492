"""``scizor backtest`` as a user types it: a subprocess joining the session's Ray cluster,
over the bundled universe's Parquet bars and a SQLite catalog."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from storage.catalog import Catalog, JobStatus
from tests.integration.test_backtest_support import (
    SMA,
    listings,
    make_service,
    stored_files,
    universe_bars,
)

pytestmark = pytest.mark.integration
__all__ = ["universe_bars"]

ROOT = Path(__file__).resolve().parents[2]
SCIZOR = str(Path(sys.executable).with_name("scizor"))


def _env(tmp_path: Path, bars: str) -> dict[str, str]:
    import ray

    # This test's own view of the shared store, so the results beside it are this test's.
    own = tmp_path / "bars"
    if not own.exists():
        own.symlink_to(bars, target_is_directory=True)
    return {
        **os.environ,
        "SCIZOR_HOME": str(tmp_path),
        "SCIZOR_DATABASE_URL": f"sqlite:///{tmp_path / 'catalog.db'}",
        "SCIZOR_BAR_STORE": str(own),
        "SCIZOR_RAY_ADDRESS": ray.get_runtime_context().gcs_address,
        "COLUMNS": "200",
    }


def _scizor(tmp_path: Path, bars: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCIZOR, *args], cwd=ROOT, env=_env(tmp_path, bars), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


@pytest.fixture
def sqlite_catalog(tmp_path: Path) -> Catalog:
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    catalog.upgrade()
    catalog.symbols.upsert_many(listings())
    yield catalog
    catalog.dispose()


def test_scizor_backtest_runs_a_universe_ranks_it_and_writes_the_report(
    ray_session: None, sqlite_catalog: Catalog, tmp_path: Path, universe_bars: str
) -> None:
    report = tmp_path / "sma.html"
    done = _scizor(
        tmp_path, universe_bars, "backtest", "sma_cross", "--param", "fast=10", "--param",
        "slow=50", "--universe", "etfs", "--commission", "ibkr", "--slippage-bps", "2",
        "--sort", "return_pct", "--report", str(report),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    job = sqlite_catalog.backtests.list()[0]
    assert (job.status, len(job.instruments), job.costs["slippage_bps"]) == (
        JobStatus.DONE,
        61,
        2.0,
    )
    assert job.options["sort"] == "return_pct" and job.params["slow"] == 50
    best = max(
        (r for r in sqlite_catalog.backtests.results(job.id)), key=lambda r: r.stats["return_pct"]
    )
    out = done.stdout
    assert f"Backtest {job.id} queued: 61 instruments." in out
    assert "61/61" in out  # the progress bar reached the end
    assert f"Backtest {job.id}: sma_cross, 61 instruments, by return_pct" in out
    assert out.index(best.instrument) < out.index("41 more in the report")
    assert f"Report: {report}" in out
    page = report.read_text()
    assert "id='equity-chart'" in page and "61 instruments" in page
    assert len(stored_files(tmp_path / "results", job.id)) == 61


def test_scizor_backtest_run_runs_a_job_the_api_queued(
    ray_session: None, sqlite_catalog: Catalog, tmp_path: Path, universe_bars: str
) -> None:
    service = make_service(sqlite_catalog, tmp_path, universe_bars)
    job = service.submit({**SMA, "instruments": ["BHP", "CBA.ASX", "AAPL"]})
    done = _scizor(tmp_path, universe_bars, "backtest", "--run", str(job.id))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sqlite_catalog.backtests.get(job.id).status is JobStatus.DONE
    assert sorted(r.instrument for r in sqlite_catalog.backtests.results(job.id)) == [
        "AAPL.NASDAQ",
        "BHP.ASX",
        "CBA.ASX",
    ]
    default_report = tmp_path / "reports" / f"backtest-{job.id}.html"
    assert f"Report: {default_report}" in done.stdout and default_report.exists()
    again = _scizor(tmp_path, universe_bars, "backtest", "--run", str(job.id))
    assert again.returncode == 2 and "already done" in again.stderr


def test_scizor_backtest_refuses_bad_input_in_one_line_and_queues_nothing(
    sqlite_catalog: Catalog, tmp_path: Path, universe_bars: str
) -> None:
    for args, words in (
        (["sma_cross", "--param", "fats=3", "-u", "etfs"], "did you mean 'fast'"),
        (["sma_cross", "-i", "VEA"], "VEA is ambiguous"),
        (["sma_cross", "-i", "all", "--mode", "portfolo"], "did you mean 'portfolio'"),
        (["sma_cross", "-i", "all", "--start", "2024-1-40"], "YYYY-MM-DD"),
        (["--run", "1", "-u", "etfs"], "--run ID runs a job as it was queued"),
        ([], "name a strategy"),
    ):
        refused = _scizor(tmp_path, universe_bars, "backtest", *args)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert refused.stderr.startswith("error:") and words in refused.stderr
        assert len(refused.stderr.strip().splitlines()) <= 3  # one message, no traceback
    assert sqlite_catalog.backtests.count() == 0
