"""``GET /coverage``: what the bar store holds of each listing, from its coverage manifests.

One row per catalog listing (of a universe, if asked): the first and last instant its bars of
one size cover, and how many holes lie between the ranges collected. A listing never
collected has no range (``first`` and ``last`` null). Only manifests are read, never bars.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from serve.context import ApiContext
from serve.routes.common import ERRORS, context_of
from serve.schemas import NAME_PATTERN, BarSizeName

router = APIRouter(tags=["bars"], responses=ERRORS)


class CoverageView(BaseModel):
    """One listing's stored range of one bar size."""

    instrument: str = Field(examples=["AAPL.NASDAQ"])
    name: str
    universe: str
    bar_size: str
    first: datetime | None = Field(description="Start of the first range collected")
    last: datetime | None = Field(description="End (exclusive) of the last range collected")
    ranges: int = Field(description="Separate ranges collected")
    gaps: int = Field(description="Holes between them (ranges - 1; 0 when none)")


class CoveragePage(BaseModel):
    """A page of coverage rows, by symbol."""

    items: list[CoverageView]
    total: int
    limit: int
    offset: int
    stored: int = Field(description="Listings in the whole selection with any bars")


@router.get("/coverage", response_model=CoveragePage)
def coverage(
    context: ApiContext = Depends(context_of),
    bar_size: BarSizeName = Query("1d"),
    universe: str | None = Query(None, pattern=NAME_PATTERN, description="Only this universe"),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> CoveragePage:
    """What the bar store holds of each listing: first and last instant, ranges and gaps."""
    records = context.catalog.symbols.list(universe=universe)
    stored = set(context.bars.instruments(bar_size))
    items = []
    for record in records[offset : offset + limit]:
        spans = context.bars.coverage(record.id, bar_size) if record.id in stored else []
        view = CoverageView(
            instrument=record.id, name=record.name, universe=record.universe, bar_size=bar_size,
            first=spans[0][0] if spans else None, last=spans[-1][1] if spans else None,
            ranges=len(spans), gaps=max(0, len(spans) - 1),
        )  # fmt: skip
        items.append(view)
    return CoveragePage(
        items=items, total=len(records), limit=limit, offset=offset,
        stored=sum(r.id in stored for r in records),
    )  # fmt: skip
