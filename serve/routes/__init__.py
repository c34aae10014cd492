"""The API's routers, one module per part of the domain; :func:`all_routers` lists them."""

from __future__ import annotations

from fastapi import APIRouter


def all_routers() -> list[APIRouter]:
    """Every router of the data and research API, in the order the docs show them."""
    from serve.routes import (
        backtests,
        bars,
        collect,
        coverage,
        library,
        optimizations,
        orders,
        risk,
        symbols,
        trading,
    )

    return [symbols.router, bars.router, coverage.router, collect.router, library.router,
            backtests.router, optimizations.router, risk.router, trading.router,
            orders.router]  # fmt: skip
