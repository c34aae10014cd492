"""``/symbols``: list, add, show and remove listings; validate them with IB (a Ray Job)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request, Response

from serve.context import ApiContext
from serve.longwork import validate_job
from serve.routes.common import ERRORS, INSTRUMENT, LONG_WORK, accept, context_of
from serve.schemas import (
    NAME_PATTERN,
    JobAccepted,
    NewSymbol,
    Symbol,
    SymbolPage,
    ValidateRequest,
)
from serve.services import add_listing

router = APIRouter(tags=["symbols"], responses=ERRORS)


@router.get("/symbols", response_model=SymbolPage)
def list_symbols(
    context: ApiContext = Depends(context_of),
    universe: str | None = Query(None, pattern=NAME_PATTERN, description="Only this universe"),
    valid: bool | None = Query(None, description="true: IB-verified; false: IB did not know"),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> SymbolPage:
    """List the catalog's listings, by symbol, a page at a time."""
    records = context.catalog.symbols.list(universe=universe, valid=valid)
    page = records[offset : offset + limit]
    following = offset + len(page)
    return SymbolPage(
        items=[Symbol.of(r) for r in page], total=len(records), limit=limit, offset=offset,
        next_offset=following if following < len(records) else None,
    )  # fmt: skip


@router.post("/symbols", response_model=Symbol, status_code=201)
async def add_symbol(
    body: NewSymbol, response: Response, context: ApiContext = Depends(context_of)
) -> Symbol:
    """Add one listing by canonical id once IB confirms it (universe ``custom``)."""
    record = await add_listing(context.catalog, context.gateway, body.instrument)
    response.headers["Location"] = f"/symbols/{record.id}"
    return Symbol.of(record)


@router.post("/symbols/validate", response_model=JobAccepted, status_code=202, responses=LONG_WORK)
def validate_symbols(request: Request, response: Response, body: ValidateRequest) -> JobAccepted:
    """Ask IB about symbols not verified within 90 days, as a Ray Job (``scizor symbols
    validate``); unknown ones are marked invalid."""
    spec = validate_job(force_revalidate=body.force_revalidate, limit=body.limit)
    return accept(request, response, spec)


@router.get("/symbols/{instrument}", response_model=Symbol)
def get_symbol(instrument: str = INSTRUMENT, context: ApiContext = Depends(context_of)) -> Symbol:
    """Show one listing."""
    return Symbol.of(context.catalog.symbols.get(instrument))


@router.delete("/symbols/{instrument}", response_model=Symbol)
def delete_symbol(
    instrument: str = INSTRUMENT, context: ApiContext = Depends(context_of)
) -> Symbol:
    """Remove a listing from the catalog (its stored bars are kept); answers what was removed."""
    return Symbol.of(context.catalog.symbols.delete(instrument))
