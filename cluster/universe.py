"""Choose symbols from the bundled universes (see :mod:`cluster.universes`)."""

from __future__ import annotations

from collections.abc import Iterable

from cluster import universes
from cluster.universes import UniverseMember


def select(names: Iterable[str] | None = None) -> list[UniverseMember]:
    """Return the members of the named universes (all bundled ones when ``names`` is empty).

    A symbol listed in several universes appears once, from the first universe naming it.

    Raises:
        ValidationError: if a name is not a bundled universe.
    """
    chosen = [universes.canonical_name(n) for n in names or ()] or list(universes.UNIVERSE_NAMES)
    out: list[UniverseMember] = []
    seen: set[tuple[str, str]] = set()
    for name in dict.fromkeys(chosen):
        for member in universes.load(name):
            key = (member.symbol, member.primary_exchange or member.exchange)
            if key not in seen:
                seen.add(key)
                out.append(member)
    return out


def sizes() -> dict[str, int]:
    """Return the number of members of each bundled universe."""
    return {name: len(universes.load(name)) for name in universes.UNIVERSE_NAMES}
