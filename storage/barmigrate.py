"""Migrate a bar store written before instrument ids (``symbol=VEA``) to ``instrument=VEA.ASX``.

Before canonical ids the store was keyed by bare ticker, so one ``symbol=VEA`` directory may
hold the bars of two listings (Viva Energy on the ASX and the Vanguard ETF on NYSE Arca),
mixed. The migration never guesses:

- a symbol the caller resolves to exactly one instrument id is moved to that id's directory
  (a rename of the whole directory, manifest included); when that directory already exists,
  the legacy bars whose timestamps it lacks are merged in and the legacy directory removed;
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

import pandas as pd
import pyarrow as pa

from storage import barfiles
from storage.barpaths import LEGACY_KEY
from storage.bars import BarStore

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
    """
    report = LegacyReport()
    paths = store.paths
    for size in paths.bar_sizes():
        for name in sorted(paths.list_names(paths.size_dir(size))):
            if not name.startswith(f"{LEGACY_KEY}="):
                continue
            symbol = name[len(LEGACY_KEY) + 1 :]
            source = f"{paths.size_dir(size)}/{name}"
            target = resolve(symbol)
            key = f"{size}/{symbol}"
            if target is None:
                report.quarantined[key] = _quarantine(store, size, name, source)
            else:
                _move_or_merge(store, size, source, target)
                report.moved[key] = target
    return report


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
    legacy = _read_dir(store, source)
    if len(legacy):
        stored = store.read(instrument, size).index
        fresh = legacy[~legacy.index.isin(stored)]
        if len(fresh):
            store.write(instrument, size, fresh)
    paths.remove_dir(source)


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
