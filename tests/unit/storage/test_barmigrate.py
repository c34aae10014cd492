"""storage.barmigrate: a bar store keyed by bare ticker (``symbol=X``) moves to instrument ids.

The legacy store is built by hand: bars are written with today's store and their
``instrument=`` directories renamed to ``symbol=``, exactly the old layout. The resolver says
AAPL is AAPL.NASDAQ and that VEA (two listings) has no single id.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pytest

from core.errors import ValidationError
from storage.barmigrate import QUARANTINE, has_legacy, migrate_legacy
from storage.bars import BarStore
from tests.unit.storage.test_bars import make_bars

RESOLVE = {"AAPL": "AAPL.NASDAQ", "MSFT": "MSFT.NASDAQ"}.get
HOLE = "2024-01-03"  # a session the legacy AAPL store declared fetched but holds no bar of


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def _make_legacy(root: Path, size: str, instrument: str, symbol: str) -> Path:
    """Rename ``instrument=<id>`` to ``symbol=<symbol>`` as the old store named it."""
    new = root / f"bar_size={size}" / f"instrument={instrument}"
    old = new.with_name(f"symbol={symbol}")
    new.rename(old)
    return old


def _files(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "bars"


def _aapl_daily() -> pd.DataFrame:
    bars = make_bars("2023-12-01", 60)
    return bars.drop(_ts(HOLE))


@pytest.fixture
def legacy_store(root) -> BarStore:
    """AAPL 1d (two years, declared fetched) and 1h; VEA 1d (whose listing nobody knows)."""
    store = BarStore(root)
    store.write("AAPL.NASDAQ", "1d", _aapl_daily(), covered=(_ts("2023-12-01"), _ts("2024-01-30")))
    store.write("AAPL.NASDAQ", "1h", make_bars("2024-01-08 14:30", 6, freq="1h"))
    store.write("VEA.ASX", "1d", make_bars("2023-12-20", 20, seed=3))
    store.write("VEA.ASX", "1d", make_bars("2024-02-01", 5, seed=4))
    _make_legacy(root, "1d", "AAPL.NASDAQ", "AAPL")
    _make_legacy(root, "1h", "AAPL.NASDAQ", "AAPL")
    _make_legacy(root, "1d", "VEA.ASX", "VEA")
    return store


def test_has_legacy_sees_symbol_directories_only(root, legacy_store):
    assert has_legacy(legacy_store)
    assert legacy_store.instruments("1d") == []  # legacy directories are not instruments
    assert not has_legacy(BarStore(root.parent / "empty"))


def test_resolved_symbol_moves_with_its_manifest_and_reads_the_same(root):
    store = BarStore(root)
    bars = make_bars("2023-12-01", 60)
    store.write("AAPL.NASDAQ", "1d", bars, covered=(_ts("2023-12-01"), _ts("2024-01-30")))
    coverage = store.coverage("AAPL.NASDAQ", "1d")
    gaps = store.missing("AAPL.NASDAQ", "1d", _ts("2023-11-01"), _ts("2024-03-01"))
    _make_legacy(root, "1d", "AAPL.NASDAQ", "AAPL")
    assert store.read("AAPL.NASDAQ", "1d").empty  # what users saw before migrating

    report = migrate_legacy(store, RESOLVE)

    assert report.moved == {"1d/AAPL": "AAPL.NASDAQ"} and report.quarantined == {}
    pd.testing.assert_frame_equal(store.read("AAPL.NASDAQ", "1d"), bars, check_freq=False)
    assert store.coverage("AAPL.NASDAQ", "1d") == coverage
    assert store.missing("AAPL.NASDAQ", "1d", _ts("2023-11-01"), _ts("2024-03-01")) == gaps
    assert not (root / "bar_size=1d" / "symbol=AAPL").exists()
    assert not has_legacy(store)


def test_symbol_without_one_id_is_quarantined_byte_identical(root, legacy_store):
    legacy = root / "bar_size=1d" / "symbol=VEA"
    before = _files(legacy)

    report = migrate_legacy(legacy_store, RESOLVE)

    target = root / QUARANTINE / "bar_size=1d" / "symbol=VEA"
    assert report.quarantined == {"1d/VEA": target.as_posix()}
    assert _files(target) == before and len(before) == 3  # two years and the manifest
    assert not legacy.exists()
    assert set(report.moved) == {"1d/AAPL", "1h/AAPL"}
    assert legacy_store.instruments("1d") == ["AAPL.NASDAQ"]  # no id for VEA was guessed
    scanned = ds.dataset(root, partitioning="hive").to_table()  # readers skip "_legacy"
    assert set(scanned.column("instrument").to_pylist()) == {"AAPL.NASDAQ"}
    assert not has_legacy(legacy_store)


def test_rerun_is_a_no_op(root, legacy_store):
    migrate_legacy(legacy_store, RESOLVE)
    after = _files(root)

    report = migrate_legacy(legacy_store, RESOLVE)

    assert not report.changed and report.moved == {} and report.quarantined == {}
    assert _files(root) == after


def test_existing_target_gets_only_the_legacy_bars_it_lacks(root, legacy_store):
    recollected = make_bars("2024-01-10", 10, seed=9)  # newer values for 10 of those dates
    legacy_store.write("AAPL.NASDAQ", "1d", recollected)

    report = migrate_legacy(legacy_store, RESOLVE)

    assert report.moved["1d/AAPL"] == "AAPL.NASDAQ"
    merged = legacy_store.read("AAPL.NASDAQ", "1d")
    expected = pd.concat([_aapl_daily().drop(recollected.index), recollected]).sort_index()
    pd.testing.assert_frame_equal(merged, expected, check_freq=False)
    assert not (root / "bar_size=1d" / "symbol=AAPL").exists()
    # The legacy declaration (fetched through 2024-01-30) is kept: the hole is not missing.
    assert legacy_store.missing("AAPL.NASDAQ", "1d", _ts("2023-12-01"), _ts("2024-01-30")) == []
    assert not has_legacy(legacy_store)


def _session(day: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    return _ts(f"{day} 14:30"), _ts(f"{day} 21:00")  # NASDAQ's hours in winter, UTC


def test_merge_never_claims_the_sessions_neither_store_fetched(root):
    store = BarStore(root)
    for day in ("2024-01-08", "2024-01-12"):  # the legacy store fetched Monday and Friday
        store.write(
            "AAPL.NASDAQ", "1h", make_bars(f"{day} 14:30", 6, freq="1h"), covered=_session(day)
        )
    _make_legacy(root, "1h", "AAPL.NASDAQ", "AAPL")
    store.write(
        "AAPL.NASDAQ",
        "1h",
        make_bars("2024-01-10 14:30", 6, freq="1h"),
        covered=_session("2024-01-10"),
    )

    migrate_legacy(store, RESOLVE)

    assert len(store.read("AAPL.NASDAQ", "1h")) == 18
    assert store.missing("AAPL.NASDAQ", "1h", _ts("2024-01-08"), _ts("2024-01-13")) == [
        _session("2024-01-09"),  # Tuesday and Thursday were never fetched
        _session("2024-01-11"),
    ]


def test_interrupted_merge_reruns_cleanly(root, legacy_store):
    # Killed after the target was written and before the legacy directory was removed.
    legacy_dir = root / "bar_size=1d" / "symbol=AAPL"
    kept = root.parent / "kept"
    kept.mkdir()
    copy = kept / "symbol=AAPL"
    copy.mkdir()
    for name, raw in _files(legacy_dir).items():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes(raw)
    migrate_legacy(legacy_store, RESOLVE)
    copy.rename(legacy_dir)  # the legacy directory is back, the target already complete
    target = root / "bar_size=1d" / "instrument=AAPL.NASDAQ"
    written = _files(target)

    report = migrate_legacy(legacy_store, RESOLVE)

    assert report.moved == {"1d/AAPL": "AAPL.NASDAQ"}
    assert _files(target) == written  # nothing new to merge: not a byte rewritten
    assert not legacy_dir.exists() and not has_legacy(legacy_store)


def test_resolver_must_answer_an_instrument_id(root, legacy_store):
    with pytest.raises(ValidationError, match="instrument"):
        migrate_legacy(legacy_store, lambda symbol: symbol)  # a bare ticker is no id
    assert has_legacy(legacy_store)
    assert (root / "bar_size=1d" / "symbol=AAPL").exists()
