"""The bar store as the CLI and the API use it: legacy migration and reads by instrument.

Reads name an instrument by canonical id or by a symbol with one listing in the catalog
(:meth:`storage.catalog.symbols.SymbolRepository.get`); bars that were never collected are an
error that names the instrument, the bar size and the command that collects them, never an
empty table.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pandas as pd

from core.barsize import bar_size as parse_bar_size
from core.errors import NotFound
from core.instruments import parse
from storage.barmigrate import LegacyReport, has_legacy, migrate_legacy
from storage.bars import BarStore


def migrate_bar_store(root: str, catalog: Any) -> LegacyReport | None:
    """Move a store's legacy ``symbol=`` directories to instrument ids; None if there were none.

    A bare symbol with exactly one listing in the catalog goes to that listing's id; any
    other (ambiguous like ``VEA``, or unknown) is set aside whole (see
    :mod:`storage.barmigrate`).
    """
    store = BarStore(root)
    if not has_legacy(store):
        return None
    listings = Counter(parse(i).symbol for i in catalog.symbols.listings())
    unique = {
        parse(i).symbol: i for i in catalog.symbols.listings() if listings[parse(i).symbol] == 1
    }
    return migrate_legacy(store, unique.get)


def read_bars(
    store_root: str,
    catalog: Any,
    instrument: str,
    *,
    bar_size: str = "1d",
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
) -> tuple[str, pd.DataFrame]:
    """Return ``(instrument id, bars)`` of one instrument and bar size in ``[start, end)``.

    Raises:
        NotFound: if the instrument is not in the catalog, or no bars of ``bar_size`` were
            collected for it in the range (the message gives the command that collects them).
        AmbiguousInstrument: if a bare symbol names several listings.
        ValidationError: for a bad bar size or bound.
    """
    size = parse_bar_size(bar_size).name
    listing = catalog.symbols.get(instrument)
    bars = BarStore(store_root).read(listing.id, size, start, end)
    if bars.empty:
        window = "" if start is None and end is None else " in the requested range"
        command = f"scizor collect history {listing.id} --bar-size {size}"
        if start is not None:
            command += f" --start {start:%Y-%m-%d}"
        if end is not None:
            command += f" --end {end:%Y-%m-%d}"
        raise NotFound(
            f"no {size} bars of {listing.id} ({listing.name or listing.symbol}) are stored"
            f"{window}; collect them with: {command}"
        )
    return listing.id, bars
