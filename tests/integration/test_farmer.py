"""The data farmer end to end: real local Ray, ibsim over TCP, SQLite catalog, Parquet store.

One ibsim (strict pacing, sped up) and one gateway actor serve the whole module; each test
has its own catalog and bar store.
"""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import exchange_calendars as xcals
import pandas as pd
import pytest

from actors.pacing_rules import PacingRules
from cluster import collect_plan as plan
from cluster.collect import run_collection
from cluster.symbols import SymbolService, gateway_lookup
from core.settings import Settings
from core.types import Instrument
from ibsim.testing import eventually, running_ibsim
from storage.bars import BarStore
from storage.catalog import Catalog
from storage.catalog.records import SymbolRecord

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SPEED = 600.0  # ibsim seconds per real second: IBKR's 10-minute window lasts 1 s
END = datetime(2025, 6, 2, tzinfo=UTC)  # fixed windows: results never depend on today


def world(exchange: str) -> list[Instrument]:
    """Contracts ibsim knows on one primary exchange, as SCIZOR instruments."""
    rows = csv.DictReader((ROOT / "ibsim" / "data" / "contracts.csv").open())
    return [
        Instrument(
            symbol=r["symbol"],
            exchange=r["exchange"],
            primary_exchange=r["primary_exchange"],
            currency=r["currency"],
            con_id=int(r["con_id"]),
        )
        for r in rows
        if r["primary_exchange"] == exchange
    ]


def sessions_of(calendar: str, start: datetime, end: datetime) -> pd.DatetimeIndex:
    """Session dates in [start, end) at 00:00 UTC (how daily bars are stamped)."""
    first = pd.Timestamp(start).tz_convert(None)
    last = pd.Timestamp(end).tz_convert(None) - pd.Timedelta("1D")
    days = xcals.get_calendar(calendar).sessions_in_range(first, last)
    return pd.DatetimeIndex(days).tz_localize("UTC").rename("ts")


@pytest.fixture(scope="module")
def sim() -> Iterator[Any]:
    with running_ibsim(pacing="strict", speed=SPEED) as server:
        yield server


@pytest.fixture(scope="module")
def ib_settings(sim: Any, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = tmp_path_factory.mktemp("farm")
    return Settings.from_env(
        {
            "SCIZOR_HOME": str(home),
            "SCIZOR_IB_HOST": "127.0.0.1",
            "SCIZOR_IB_PORT": str(sim.port),
            "SCIZOR_IB_CLIENT_ID": "71",
        }
    )


@pytest.fixture(scope="module")
def gateway(ray_session: None, ib_settings: Settings) -> Iterator[Any]:
    """The platform's gateway actor, connected to this module's ibsim; killed at the end."""
    import ray

    from actors.gateway import get_gateway

    _kill_gateway()
    handle = get_gateway(ib_settings, pin_to_head=True, time_scale=SPEED)
    ray.get(handle.ready.remote(), timeout=60)
    try:
        yield handle
    finally:
        _kill_gateway()


def _kill_gateway() -> None:
    import ray

    from actors.gateway import GATEWAY_NAME, GATEWAY_NAMESPACE

    with contextlib.suppress(ValueError):
        ray.kill(ray.get_actor(GATEWAY_NAME, namespace=GATEWAY_NAMESPACE), no_restart=True)


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    cat = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    cat.upgrade()
    try:
        yield cat
    finally:
        cat.dispose()


def add_valid(catalog: Catalog, instruments: list[Instrument]) -> None:
    """Put instruments into the catalog as verified symbols (skips IB for collection tests)."""
    now = datetime.now(UTC)
    catalog.symbols.upsert_many(
        SymbolRecord(
            symbol=i.symbol,
            exchange=i.exchange,
            primary_exchange=i.primary_exchange,
            currency=i.currency,
            con_id=i.con_id,
            universe="test",
            valid=True,
            last_verified=now,
        )
        for i in instruments
    )


def _health(gateway: Any, key: str) -> Any:
    import ray

    health = ray.get(gateway.health.remote(), timeout=30)
    return getattr(health, key) if hasattr(health, key) else health[key]


def pacing_violations(gateway: Any) -> int:
    """Error 162 "pacing violation" answers the gateway has seen (not "no data" 162s)."""
    return int(_health(gateway, "pacing_violations"))


def assert_exact_daily(
    store: BarStore, symbols: list[str], start: datetime, end: datetime, calendar: str = "XNYS"
) -> None:
    """Every symbol holds exactly one bar per session of [start, end), nothing else."""
    expected = sessions_of(calendar, start, end)
    for symbol in symbols:
        got = store.read(symbol, "1d")
        assert got.index.is_unique, symbol
        assert got.index.equals(expected), f"{symbol}: {len(got)} bars, want {len(expected)}"


# -- symbols -------------------------------------------------------------------------------


def test_populate_validates_etfs_and_removes_unknown_symbols(
    gateway: Any, catalog: Catalog
) -> None:
    service = SymbolService(catalog, lookup=gateway_lookup(gateway))
    catalog.symbols.upsert_many(
        [SymbolRecord(symbol="ZZZQ", primary_exchange="NASDAQ", universe="etfs")]
    )
    report = service.populate(["etfs"])
    assert report.validation is not None
    invalid = {r.symbol for r in report.validation.invalid}
    assert invalid == {"ZZZQ"}  # every bundled ETF is a real listing ibsim knows
    assert not report.validation.errors
    known = {i.symbol for i in world("ARCA") + world("NASDAQ")}
    assert {r.symbol for r in report.validation.verified} <= known
    spy = catalog.symbols.get("SPY")
    assert spy.valid and spy.con_id and spy.last_verified is not None
    assert {r.symbol for r in service.list(invalid=True)} == invalid
    assert invalid.isdisjoint(r.symbol for r in service.collectable())


def test_validate_skips_recently_verified_unless_forced(gateway: Any, catalog: Catalog) -> None:
    service = SymbolService(catalog, lookup=gateway_lookup(gateway))
    first = service.populate(["etfs"]).validation
    assert first is not None and first.checked > 50
    assert service.validate().checked == 0
    forced = service.validate(force_revalidate=True)
    assert forced.checked == first.checked
    assert service.validate(force_revalidate=True, limit=7).checked == 7


def test_scizor_symbols_cli_populates_validates_and_skips_fresh_symbols(
    gateway: Any, ib_settings: Settings, tmp_path: Path
) -> None:
    env = driver_env(tmp_path, ib_settings)
    scizor = str(Path(sys.executable).with_name("scizor"))

    def run(*args: str) -> str:
        done = subprocess.run(
            [scizor, "symbols", *args], cwd=ROOT, env=env, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return done.stdout

    populated = run("populate", "--universe", "etfs")
    assert "etfs: 61 symbols" in populated
    assert "Invalid symbols" not in populated  # every bundled ETF is a real listing
    with Catalog(Settings.from_env(env).db.url) as catalog:
        catalog.symbols.upsert_many(
            [SymbolRecord(symbol="ZZZQ", primary_exchange="NASDAQ", universe="etfs")]
        )
    validated = run("validate")
    assert "Checked 1:" in validated  # only the new, unverified symbol
    assert "Invalid symbols removed (IB error 200)" in validated and "ZZZQ" in validated
    assert "Checked 0:" in run("validate")
    assert "Checked 5:" in run("validate", "--force-revalidate", "--limit", "5")
    assert "ZZZQ" in run("list", "--invalid")
    assert "ZZZQ" not in run("list")


# -- collection ----------------------------------------------------------------------------


def test_daily_collection_of_60_symbols_is_exact_and_rerun_fetches_nothing(
    gateway: Any, catalog: Catalog, tmp_path: Path
) -> None:
    us, asx = world("NASDAQ")[:54], world("ASX")[:6]
    start = END - timedelta(days=2 * 365)
    targets = plan.targets(us + asx, bar_size="1d", start=start, end=END)
    store_root = str(tmp_path / "bars")
    run_id, tally = run_collection(
        "daily", targets, gateway=gateway, store_root=store_root, catalog=catalog
    )
    assert tally.failures == {}
    assert tally.counts == {"done": 60}
    store = BarStore(store_root)
    assert_exact_daily(store, [i.id for i in us], start, END)
    assert_exact_daily(store, [i.id for i in asx], start, END, calendar="XASX")
    expected = 54 * len(sessions_of("XNYS", start, END)) + 6 * len(sessions_of("XASX", start, END))
    assert tally.bars_written == expected
    assert run_id is not None
    run = catalog.collection_runs.get(run_id)
    assert run.status == "done" and run.bars_written == tally.bars_written
    _, again = run_collection("daily", targets, gateway=gateway, store_root=store_root)
    assert again.counts == {"up_to_date": 60} and again.bars_written == 0


PACED_SPEED = 60.0  # IBKR's 10-minute window lasts 10 s: the burst below must wait


@pytest.fixture
def paced_gateway(ray_session: None, tmp_path: Path) -> Iterator[Any]:
    """A gateway of its own on a slower ibsim, so a burst of requests surely fills a window."""
    import ray

    from actors.gateway import get_gateway

    with running_ibsim(pacing="strict", speed=PACED_SPEED) as slow:
        settings = Settings.from_env(
            {"SCIZOR_HOME": str(tmp_path), "SCIZOR_IB_PORT": str(slow.port),
             "SCIZOR_IB_HOST": "127.0.0.1", "SCIZOR_IB_CLIENT_ID": "72"}
        )  # fmt: skip
        # Real seconds of cushion per window: on a loaded 2-core CI box a request can reach
        # ibsim far later than the pacer released it (Ray workers busy, big replies decoding).
        handle = get_gateway(
            settings,
            name="farm-paced",
            namespace="scizor-test",
            time_scale=PACED_SPEED,
            rules=PacingRules.ibkr(margin_s=1.0),
        )
        ray.get(handle.ready.remote(), timeout=60)
        try:
            yield handle
        finally:
            ray.kill(handle, no_restart=True)


def test_minute_backfill_is_paced_without_error_162(paced_gateway: Any, tmp_path: Path) -> None:
    aapl = Instrument(symbol="AAPL", primary_exchange="NASDAQ")
    start, end = datetime(2025, 3, 3, tzinfo=UTC), datetime(2025, 3, 15, tzinfo=UTC)
    store_root = str(tmp_path / "bars")
    # 1 + 9 x 9 session requests: the 81 at 30 s (hard-paced) exceed 60 per 10-minute window.
    targets = plan.targets([aapl], bar_size="1m", start=start, end=end)
    targets += plan.targets(world("NASDAQ")[1:10], bar_size="30s", start=start, end=end)
    _, tally = run_collection("history", targets, gateway=paced_gateway, store_root=store_root)
    assert tally.failures == {}
    assert pacing_violations(paced_gateway) == 0
    assert _health(paced_gateway, "pacing_waits") > 0  # the pacer did hold requests back
    store = BarStore(store_root)
    sessions = xcals.get_calendar("XNYS").sessions_in_range("2025-03-03", "2025-03-14")
    minutes = store.read("AAPL.NASDAQ", "1m")
    assert minutes.index.is_unique and len(minutes) == 390 * len(sessions)
    assert set(minutes.index.normalize().tz_convert(None)) == set(sessions)
    assert (minutes["high"] >= minutes[["open", "close"]].max(axis=1)).all()
    for target in targets[1:]:
        half = store.read(target.key, "30s")
        assert half.index.is_unique and len(half) == 780 * len(sessions), target.key


def test_collection_survives_a_dropped_gateway_connection(
    sim: Any, gateway: Any, tmp_path: Path
) -> None:
    instruments = world("NASDAQ")[:80]
    start = END - timedelta(days=3 * 365)
    targets = plan.targets(instruments, bar_size="1d", start=start, end=END)
    store_root = str(tmp_path / "bars")
    seen: list[int] = []
    outcome: list[Any] = []

    def on_result(result: plan.ItemResult, tally: plan.Tally) -> None:
        seen.append(tally.finished_items)

    def drive() -> None:
        outcome.append(
            run_collection(
                "daily", targets, gateway=gateway, store_root=store_root, on_result=on_result
            )
        )

    runner = threading.Thread(target=drive)
    runner.start()
    reconnects = _health(gateway, "reconnects")
    eventually(lambda: seen and seen[-1] >= 5, timeout=60)
    sim.stall(3.0)  # no reply can finish an item now, so the drop lands mid-run
    at_drop = seen[-1]
    sim.drop_all()
    runner.join(120)
    assert not runner.is_alive() and outcome
    _, tally = outcome[0]
    assert at_drop < 80, "the drop must land mid-run (replies were stalled before it)"
    assert eventually(lambda: _health(gateway, "reconnects") > reconnects, timeout=30)
    assert tally.failures == {} and tally.counts == {"done": 80}
    assert_exact_daily(BarStore(store_root), [i.id for i in instruments], start, END)


def test_killed_worker_is_replaced_and_the_run_completes(
    sim: Any, gateway: Any, catalog: Catalog, tmp_path: Path
) -> None:
    instruments = world("NASDAQ")[:64]
    start = END - timedelta(days=3 * 365)
    targets = plan.targets(instruments, bar_size="1d", start=start, end=END)
    store_root = str(tmp_path / "bars")
    pids: list[int] = []
    outcome: list[Any] = []

    def on_result(result: plan.ItemResult, tally: plan.Tally) -> None:
        if result.worker_pid:
            pids.append(result.worker_pid)

    def drive() -> None:
        outcome.append(
            run_collection(
                "daily", targets, gateway=gateway, store_root=store_root, catalog=catalog,
                on_result=on_result,
            )
        )  # fmt: skip

    runner = threading.Thread(target=drive)
    runner.start()
    eventually(lambda: pids, timeout=60)
    sim.stall(1.0)  # hold replies so the worker dies with symbols still in hand
    os.kill(pids[0], signal.SIGKILL)
    runner.join(120)
    assert not runner.is_alive() and outcome
    run_id, tally = outcome[0]
    assert tally.requeued > 0
    assert tally.failures == {}
    # A symbol written just before the kill is found complete when it goes round again.
    assert tally.counts.get("done", 0) + tally.counts.get("up_to_date", 0) == 64
    assert catalog.collection_runs.get(run_id).status == "done"
    assert_exact_daily(BarStore(store_root), [i.id for i in instruments], start, END)


def test_killed_driver_resumes_without_gaps_or_duplicates(
    sim: Any, gateway: Any, ib_settings: Settings, tmp_path: Path
) -> None:
    instruments = world("NASDAQ")[:60]
    db_url = f"sqlite:///{tmp_path / 'catalog.db'}"
    catalog = Catalog(db_url)
    catalog.upgrade()
    add_valid(catalog, instruments)
    store_root = str(tmp_path / "bars")
    env = driver_env(tmp_path, ib_settings)
    scizor = str(Path(sys.executable).with_name("scizor"))
    cmd = [scizor, "collect", "daily", "--years", "4", "-u", "test"]
    log = (tmp_path / "driver.log").open("w")
    driver = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        run = eventually(lambda: _progress(catalog, driver, tmp_path, at_least=5), timeout=90)
        sim.stall(2.0)  # freeze replies so the kill lands with symbols still in flight
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(10)
    finally:
        if driver.poll() is None:
            driver.kill()
    killed = catalog.collection_runs.get(run.id)
    assert killed.status == "running" and killed.counts.get("done", 0) < 60
    rerun = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    latest = catalog.collection_runs.latest(kind="daily")
    assert latest is not None and latest.id != run.id and latest.status == "done"
    assert catalog.collection_runs.get(run.id).status == "failed"  # closed, not a zombie
    end = plan.floor_day(datetime.now(UTC))
    start = plan.years_before(end, 4)
    assert_exact_daily(BarStore(store_root), [i.id for i in instruments], start, end)
    catalog.dispose()


def driver_env(tmp_path: Path, ib_settings: Settings) -> dict[str, str]:
    """Environment of a ``scizor`` process joining the test cluster and its gateway."""
    import ray

    return {
        **os.environ,
        "SCIZOR_HOME": str(tmp_path),
        "SCIZOR_DATABASE_URL": f"sqlite:///{tmp_path / 'catalog.db'}",
        "SCIZOR_BAR_STORE": str(tmp_path / "bars"),
        "SCIZOR_RAY_ADDRESS": ray.get_runtime_context().gcs_address,
        "SCIZOR_IB_HOST": "127.0.0.1",
        "SCIZOR_IB_PORT": str(ib_settings.ib.port),
        "SCIZOR_IB_CLIENT_ID": str(ib_settings.ib.client_id),
        "COLUMNS": "200",
    }


def _progress(
    catalog: Catalog, driver: subprocess.Popen[bytes], tmp: Path, *, at_least: int
) -> Any:
    if driver.poll() is not None:
        output = (tmp / "driver.log").read_text()[-3000:]
        raise AssertionError(f"driver exited early ({driver.returncode}): {output}")
    run = catalog.collection_runs.latest(kind="daily")
    if run is None or run.counts.get("done", 0) < at_least:
        return None
    return run
