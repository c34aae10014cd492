"""The bar store's migration to instrument ids, as ``scizor up`` and the data commands run it.

Reads by instrument (and the "never collected" error) are :func:`storage.barquery.read_bars`,
shared with the HTTP API.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

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
