"""The data farmer against a real IB paper gateway (SCIZOR_LIVE_IB=1; see conftest.py).

Small on purpose: real IBKR paces for real, so each test asks for a handful of requests.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cluster import collect_plan as plan
from cluster.collect import run_collection
from cluster.symbols import SymbolService, gateway_lookup
from core.settings import Settings
from storage.bars import BarStore
from storage.catalog import Catalog
from storage.catalog.records import SymbolRecord

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def gateway(live_ray: None) -> Iterator[Any]:
    import ray

    from actors.gateway import GATEWAY_NAME, GATEWAY_NAMESPACE, get_gateway

    handle = get_gateway(Settings.from_env(), pin_to_head=True)
    ray.get(handle.ready.remote(), timeout=60)
    try:
        yield handle
    finally:
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


def seed(catalog: Catalog) -> None:
    catalog.symbols.upsert_many(
        [
            SymbolRecord(symbol="AAPL", primary_exchange="NASDAQ", universe="live"),
            SymbolRecord(symbol="SPY", primary_exchange="ARCA", universe="live"),
            SymbolRecord(
                symbol="BHP", exchange="ASX", primary_exchange="ASX", currency="AUD",
                universe="live",
            ),
            SymbolRecord(symbol="ZZZZQX", primary_exchange="NASDAQ", universe="live"),
        ]
    )  # fmt: skip


def test_live_validate_marks_unknown_symbol_invalid_and_skips_fresh_ones(
    gateway: Any, catalog: Catalog
) -> None:
    seed(catalog)
    service = SymbolService(catalog, lookup=gateway_lookup(gateway))
    report = service.validate()
    assert {r.symbol for r in report.invalid} == {"ZZZZQX"}
    assert {r.symbol for r in report.verified} == {"AAPL", "SPY", "BHP"}
    assert all(r.con_id for r in report.verified)
    assert service.validate().checked == 0


def test_live_daily_and_minute_collection_is_exact_and_idempotent(
    gateway: Any, catalog: Catalog, tmp_path: Path
) -> None:
    seed(catalog)
    SymbolService(catalog, lookup=gateway_lookup(gateway)).validate()
    instruments = [r.instrument for r in catalog.symbols.list(valid=True)]
    end = plan.floor_day(datetime.now(UTC))
    root = str(tmp_path / "bars")
    daily = plan.targets(instruments, bar_size="1d", start=end - timedelta(days=365), end=end)
    minute = plan.targets(instruments[:1], bar_size="1m", start=end - timedelta(days=4), end=end)
    _, tally = run_collection("live", daily + minute, gateway=gateway, store_root=root)
    assert tally.failures == {}
    store = BarStore(root)
    for target in daily:
        bars = store.read(target.symbol, "1d")
        assert len(bars) > 200 and bars.index.is_unique
        gaps = store.missing(
            target.symbol, "1d", target.start, target.end, calendar=target.calendar
        )
        assert gaps == [], target.symbol
    _, again = run_collection("live", daily + minute, gateway=gateway, store_root=root)
    assert again.bars_written == 0
