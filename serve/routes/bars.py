"""``GET /bars/{instrument}``: stored bars as JSON pages, CSV or an Arrow IPC stream.

The format is ``format=`` if given, else the ``Accept`` header (``text/csv``,
``application/vnd.apache.arrow.stream``), else JSON. JSON comes a page at a time (``limit``,
then ``cursor=<next_cursor>`` or ``offset``); CSV and Arrow hold the whole range. Bars that
were never collected are a 404 naming the instrument, the bar size and the
``scizor collect history ...`` command that collects them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Literal

import pandas as pd
from fastapi import APIRouter, Depends, Query, Request, Response

from core.errors import ValidationError
from serve.context import ApiContext
from serve.routes.common import ERRORS, INSTRUMENT, context_of
from serve.schemas import BarSizeName, BarsPage
from storage.barquery import ARROW_STREAM, arrow_stream, read_bars

router = APIRouter(tags=["bars"], responses=ERRORS)

Format = Literal["json", "csv", "arrow"]
MEDIA: dict[str, str] = {"json": "application/json", "csv": "text/csv", "arrow": ARROW_STREAM}

BAR_FORMATS = {
    200: {
        "description": "Bars as JSON (a page), CSV or an Arrow IPC stream (the whole range)",
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            ARROW_STREAM: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def negotiate(requested: str | None, accept: str) -> str:
    """The format to answer in: ``format=`` first, then ``Accept``, else JSON."""
    if requested:
        return requested
    wanted = accept.lower()
    if "application/vnd.apache.arrow" in wanted:
        return "arrow"
    if "text/csv" in wanted:
        return "csv"
    return "json"


def utc(value: datetime | None, field: str) -> pd.Timestamp | None:
    """``value`` as a UTC timestamp (a naive one is taken to be UTC).

    Raises:
        ValidationError: naming ``field`` for a time outside 1677..2262 (nanosecond bars).
    """
    if value is None:
        return None
    try:
        stamp = pd.Timestamp(value if value.tzinfo else value.replace(tzinfo=UTC))
        return stamp.tz_convert(UTC)
    except (OverflowError, ValueError):  # pandas' OutOfBoundsDatetime is a ValueError
        raise ValidationError(
            f"{field} {value.isoformat()} is outside the times bars can have (1677-2262)",
            field=field,
        ) from None


def cursor_position(cursor: str) -> pd.Timestamp:
    """The timestamp a ``next_cursor`` stands for (the last bar of the previous page)."""
    if not cursor.isdigit() or int(cursor) >= 2**63 - 1:
        raise ValidationError(
            f"cursor {cursor!r} is not one this API gave; pass next_cursor of the previous page",
            field="cursor",
        )
    return pd.Timestamp(int(cursor), tz=UTC)


@router.get("/bars/{instrument}", response_model=BarsPage, responses=BAR_FORMATS)  # type: ignore[arg-type]
def get_bars(
    request: Request,
    instrument: str = INSTRUMENT,
    bar_size: BarSizeName = Query("1d"),
    start: datetime | None = Query(None, description="Inclusive, ISO date or time (UTC)"),
    end: datetime | None = Query(None, description="Exclusive, ISO date or time (UTC)"),
    format: Format | None = Query(None, description="json, csv or arrow; overrides Accept"),
    limit: int = Query(1000, ge=1, le=10_000, description="Bars per JSON page"),
    cursor: str | None = Query(None, max_length=24, description="next_cursor of a page"),
    offset: int | None = Query(None, ge=0, le=10_000_000, description="Bars to skip (JSON)"),
    context: ApiContext = Depends(context_of),
) -> Response:
    """Return an instrument's stored bars of one size in ``[start, end)``."""
    lo, hi = utc(start, "start"), utc(end, "end")
    if lo is not None and hi is not None and lo >= hi:
        raise ValidationError("start must be before end", field="start")
    if cursor is not None and offset is not None:
        raise ValidationError("give cursor or offset, not both", field="cursor")
    chosen = negotiate(format, request.headers.get("accept", ""))
    if chosen != "json":
        key, frame = read_bars(context.bars, context.catalog, instrument,
                               bar_size=bar_size, start=lo, end=hi)  # fmt: skip
        return _file(frame, chosen)
    if cursor is None:
        key, frame = read_bars(context.bars, context.catalog, instrument,
                               bar_size=bar_size, start=lo, end=hi)  # fmt: skip
    else:  # a later page: the range may hold no more bars, which is an empty page
        after = cursor_position(cursor) + pd.Timedelta(1, "ns")
        key = context.catalog.symbols.get(instrument).id
        frame = context.bars.read(key, bar_size, max(after, lo) if lo is not None else after, hi)
    return _page(key, bar_size, frame, limit=limit, offset=offset)


def _file(frame: pd.DataFrame, chosen: str) -> Response:
    if chosen == "arrow":
        return Response(arrow_stream(frame), media_type=ARROW_STREAM)
    text = frame.reset_index().to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    return Response(text, media_type="text/csv")


def _page(
    key: str, bar_size: str, frame: pd.DataFrame, *, limit: int, offset: int | None
) -> Response:
    start = offset or 0
    page = frame.iloc[start : start + limit]
    more = start + len(page) < len(frame)
    last = int(page.index[-1].value) if len(page) else None
    envelope = {
        "instrument": key,
        "bar_size": bar_size,
        "count": len(page),
        "next_cursor": str(last) if more and last is not None else None,
        "next_offset": start + len(page) if more else None,
    }
    rows = page.reset_index().to_json(orient="records", date_format="iso", double_precision=15)
    body = json.dumps(envelope)[:-1] + f', "bars": {rows}}}'
    return Response(body, media_type="application/json")
