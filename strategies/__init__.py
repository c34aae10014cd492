"""SCIZOR strategies: indicators, the strategy API and library, rule specs and the engine.

Example:
    >>> import strategies
    >>> sorted(strategies.list_strategies()[0])
    ['description', 'name', 'params']
    >>> strategies.get("sma_cross").name
    'sma_cross'
"""

from __future__ import annotations

import difflib
from typing import Any

from core.errors import NotFound, ParameterError
from strategies.base import Strategy
from strategies.library import LIBRARY

__all__ = ["Strategy", "get", "list_strategies"]


def get(name: str) -> Strategy:
    """Return the library strategy called ``name``.

    Raises:
        ParameterError: ``name`` is not a string.
        NotFound: naming the closest library strategy when there is one.
    """
    if not isinstance(name, str):
        raise ParameterError(
            f"a strategy is named by a string (one of {', '.join(LIBRARY)}), got {name!r}",
            field="strategy",
        )
    try:
        return LIBRARY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(LIBRARY), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(LIBRARY)}"
        raise NotFound(f"unknown strategy '{name}'{hint}") from None


def list_strategies() -> list[dict[str, Any]]:
    """Return every library strategy's name, description and parameter schema (JSON-ready)."""
    return [s.space() for s in LIBRARY.values()]
