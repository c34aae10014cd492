"""Migrate a bar store written before instrument ids (``symbol=VEA``) to ``instrument=VEA.ASX``.

Before canonical ids the store was keyed by bare ticker, so one ``symbol=VEA`` directory may
hold the bars of two listings (Viva Energy on the ASX and the Vanguard ETF on NYSE Arca),
mixed. The migration never guesses:

- a symbol the caller resolves to exactly one instrument id is moved to that id's directory
  (a rename of the whole directory, manifest included); when that directory already exists,
  the legacy bars whose timestamps it lacks are merged in, with the legacy manifest's
  ranges (never a span bridging sessions neither store fetched), and the legacy directory
  removed;
- any other symbol (ambiguous, or unknown to the catalog) is moved whole, untouched, to
  ``<root>/_legacy/bar_size=<size>/symbol=<symbol>``, hidden from dataset readers (leading
  ``_``), and reported, so the user can inspect it and recollect: nothing is deleted.

Safe to rerun and to interrupt: each directory is either where it was or moved, and a merge
interrupted before the legacy directory is removed merges nothing new the second time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from core.barsize import BarSize, bar_size
from storage import barfiles
from storage.barpaths import LEGACY_KEY, validate_instrument
from storage.bars import BarStore
from storage.manifest import MANIFEST_NAME, Manifest, covered_mask, ranges_from_bars

QUARANTINE = "_legacy"
"""The folder under the store root that holds legacy directories no id could be given."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LegacyReport:
    """What :func:`migrate_legacy` did.

    Attributes:
        moved: ``"1d/VEA"`` -> ``"VEA.ARCA"`` for each directory renamed or merged.
        quarantined: ``"1d/VEA"`` -> the path it was moved to, for symbols with no single id.
    """

    moved: dict[str, str] = field(default_factory=dict)
    quarantined: dict[str, str] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        """True when anything was moved."""
        return bool(self.moved or self.quarantined)


def has_legacy(store: BarStore) -> bool:
    """True when the store still has a ``symbol=`` directory (cheap: lists directories)."""
    paths = store.paths
    return any(
        name.startswith(f"{LEGACY_KEY}=")
        for size in paths.bar_sizes()
        for name in paths.list_names(paths.size_dir(size))
    )


def migrate_legacy(store: BarStore, resolve: Callable[[str], str | None]) -> LegacyReport:
    """Move every legacy ``symbol=`` directory of ``store`` (see the module docstring).

    Args:
        store: The bar store.
        resolve: Returns the one canonical id a bare symbol names, or None when it names
            none or several (e.g. from the catalog's listings).

    Raises:
        ValidationError: naming ``instrument``, before anything is moved, if ``resolve``
            answers something that is not a canonical id (``SYMBOL.VENUE``).
    """
    plan = [
        (size, name, target if target is None else validate_instrument(target))
        for size, name, target in _legacy_dirs(store, resolve)
    ]
    report = LegacyReport()
    for size, name, target in plan:
        key, source = (
            f"{size}/{name[len(LEGACY_KEY) + 1 :]}",
            f"{store.paths.size_dir(size)}/{name}",
        )
        if target is None:
            report.quarantined[key] = _quarantine(store, size, name, source)
        else:
            _move_or_merge(store, size, source, target)
            report.moved[key] = target
    return report


def _legacy_dirs(
    store: BarStore, resolve: Callable[[str], str | None]
) -> list[tuple[str, str, str | None]]:
    """``(bar size, directory name, what resolve answers)`` of each legacy directory."""
    paths = store.paths
    prefix = f"{LEGACY_KEY}="
    return [
        (size, name, resolve(name[len(prefix) :]))
        for size in paths.bar_sizes()
        for name in sorted(paths.list_names(paths.size_dir(size)))
        if name.startswith(prefix)
    ]


def _quarantine(store: BarStore, size: str, name: str, source: str) -> str:
    paths = store.paths
    folder = f"{paths.base}/{QUARANTINE}/bar_size={size}"
    paths.fs.create_dir(folder, recursive=True)
    destination = f"{folder}/{name}"
    if paths.list_names(destination):  # quarantined before under the same name: keep both
        destination += f".{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%f}"
    paths.fs.move(source, destination)
    return destination


def _move_or_merge(store: BarStore, size: str, source: str, instrument: str) -> None:
    paths = store.paths
    target = paths.instrument_dir(size, instrument)
    if not paths.list_names(target):
        paths.remove_dir(target)  # an empty leftover directory would block the rename
        paths.fs.move(source, target)
        return
    _merge(store, bar_size(size), source, instrument)
    paths.remove_dir(source)


def _merge(store: BarStore, size: BarSize, source: str, instrument: str) -> None:
    """Write the legacy bars ``instrument`` lacks, and the legacy coverage, into its store.

    Gap finding trusts the manifest (daily: the declared ranges; intraday: the covered ones),
    so each of the legacy manifest's ranges is written with ``covered=`` that range and the
    bars inside it: the merged manifest claims what either store fetched, never a session in
    between that neither did. Bars outside every range (a writer killed before its manifest)
    are written run by run, so their coverage is only what the bars themselves span.
    """
    legacy = _read_dir(store, source)
    length = size.seconds * 1_000_000_000
    ts = _ns(legacy)
    claimed = _manifest(store, source, ts, length)
    ranges = claimed.declared if size.is_daily else claimed.covered
    held = _manifest(store, store.paths.instrument_dir(size.name, instrument), None, length)
    kept = held.declared if size.is_daily else held.covered
    fresh = ~legacy.index.isin(store.read(instrument, size).index)
    placed = np.zeros(len(legacy), dtype=bool)
    for lo, hi in ranges:
        inside = (ts >= lo) & (ts < hi)
        placed |= inside
        if (inside & fresh).any() or not covered_mask(np.array([lo]), np.array([hi]), kept)[0]:
            span = (pd.Timestamp(lo, tz="UTC"), pd.Timestamp(hi, tz="UTC"))
            store.write(instrument, size, legacy[inside & fresh], covered=span)
    rest = legacy[fresh & ~placed]
    for lo, hi in ranges_from_bars(_ns(rest), length_ns=length):
        store.write(instrument, size, rest[(_ns(rest) >= lo) & (_ns(rest) < hi)])


def _ns(frame: pd.DataFrame) -> np.ndarray:
    """The frame's UTC timestamps as int64 nanoseconds."""
    return np.asarray(pd.DatetimeIndex(frame.index).as_unit("ns").asi8)


def _manifest(store: BarStore, directory: str, ts: np.ndarray | None, length: int) -> Manifest:
    """The manifest of an instrument directory; rebuilt from ``ts`` when absent or unreadable
    (empty when ``ts`` is None)."""
    raw = store.paths.read_bytes(f"{directory}/{MANIFEST_NAME}")
    if raw is not None:
        try:
            return Manifest.from_json(raw)
        except (ValueError, KeyError, TypeError):
            pass  # unreadable: as if absent
    return Manifest() if ts is None else Manifest.from_bars(ts, length_ns=length)


def _read_dir(store: BarStore, directory: str) -> pd.DataFrame:
    """All bars of a legacy directory as one frame (its year partitions in order)."""
    paths = store.paths
    years = sorted(n for n in paths.list_names(directory) if n.startswith("year="))
    files = [f"{directory}/{y}/{barfiles.DATA_FILE}" for y in years]
    tables = [barfiles.read_file(paths.fs, f, None, None) for f in files if paths.exists(f)]
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return barfiles.empty_frame()
    return barfiles.frame_from_table(pa.concat_tables(tables, promote_options="default"))
