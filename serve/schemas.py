"""Pydantic models of the HTTP API: request bodies and response shapes (the OpenAPI schema).

Field constraints here are the first line of validation: a value out of range is a 422 naming
the field before any handler runs. Responses are built from the catalog's frozen records.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from storage.catalog.records import CollectionItem, CollectionRun, SymbolRecord

BarSizeName = Literal["1s", "5s", "30s", "1m", "5m", "15m", "30m", "1h", "1d"]
INSTRUMENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 &+\-]{0,30}(\.[A-Za-z][A-Za-z0-9]{0,15})?$"
"""A canonical id ``SYMBOL.VENUE`` or a bare symbol (resolved against the catalog)."""
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 &+\-]{0,30}\.[A-Za-z][A-Za-z0-9]{0,15}$"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$"
"""A universe or run kind: letters, digits, ``_`` and ``-``."""
UniverseName = Annotated[str, Field(pattern=NAME_PATTERN)]


class Strict(BaseModel):
    """A request body: unknown fields are refused (a typo is a 422, not ignored)."""

    model_config = ConfigDict(extra="forbid")


class Problem(BaseModel):
    """An error: its type, what went wrong and how to fix it, and the field at fault."""

    error: str = Field(examples=["ValidationError"])
    detail: str
    field: str | None = None
    problems: list[dict[str, str]] | None = None
    required_scope: str | None = None
    token_scope: str | None = None
    retry_after: int | None = None
    candidates: list[str] | None = None
    code: int | None = None


class Health(BaseModel):
    """Whether the API and each part behind it work."""

    status: Literal["ok", "degraded"]
    version: str
    time: datetime
    checks: dict[str, dict[str, Any]]


class Symbol(BaseModel):
    """One listing of the universe."""

    instrument: str = Field(description="Canonical id SYMBOL.VENUE", examples=["BHP.ASX"])
    symbol: str
    name: str
    sec_type: str
    exchange: str
    primary_exchange: str
    currency: str
    con_id: int | None
    universe: str | None
    valid: bool | None = Field(description="None until IB has been asked")
    last_verified: datetime | None
    added_at: datetime | None

    @classmethod
    def of(cls, record: SymbolRecord) -> Symbol:
        """The API view of a catalog record."""
        return cls(
            instrument=record.id, symbol=record.symbol, name=record.name,
            sec_type=str(record.sec_type), exchange=record.exchange,
            primary_exchange=record.primary_exchange, currency=record.currency,
            con_id=record.con_id, universe=record.universe, valid=record.valid,
            last_verified=record.last_verified, added_at=record.added_at,
        )  # fmt: skip


class SymbolPage(BaseModel):
    """A page of listings."""

    items: list[Symbol]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class NewSymbol(Strict):
    """A listing to add: IB is asked about it first."""

    instrument: str = Field(
        pattern=ID_PATTERN, max_length=48, examples=["VEA.ASX"],
        description="Canonical id SYMBOL.VENUE, the venue being the primary exchange",
    )  # fmt: skip


class ValidateRequest(Strict):
    """Options of ``scizor symbols validate``."""

    force_revalidate: bool = Field(
        default=False, description="Check even symbols verified < 90 days"
    )
    limit: int | None = Field(default=None, ge=1, le=100_000, description="Check at most N symbols")


class DailyCollectRequest(Strict):
    """Options of ``scizor collect daily``."""

    years: int = Field(default=5, ge=1, le=30, description="Look-back in years")
    universe: list[UniverseName] | None = Field(
        default=None,
        max_length=10,
        description="Bundled universes (asx200, nasdaq, etfs); all if none",
    )


class InstrumentDailyRequest(Strict):
    """Options of one instrument's daily collection."""

    years: int = Field(default=5, ge=1, le=30, description="Look-back in years")


class HistoryRequest(Strict):
    """Options of ``scizor collect history``."""

    bar_size: BarSizeName = "1d"
    start: date | None = Field(default=None, description="First day (default: 3 years back)")
    end: date | None = Field(default=None, description="Day after the last (default: today)")

    @model_validator(mode="after")
    def _ordered(self) -> HistoryRequest:
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError("start must be before end; give an earlier start or a later end")
        return self


class RunRef(BaseModel):
    """A collection run a job recorded."""

    id: int
    url: str


class JobAccepted(BaseModel):
    """Long work accepted: poll ``status_url`` (also the ``Location`` header)."""

    job_id: str = Field(examples=["collect-3f9c0a1b2c3d4e5f"])
    kind: str
    status: str
    status_url: str
    command: str = Field(description="The scizor command the job runs")


class JobView(BaseModel):
    """A Ray Job the API submitted, and the collection run it recorded once known."""

    job_id: str
    kind: str
    status: str
    message: str | None
    command: str
    requested_by: str | None
    start_time: datetime | None
    end_time: datetime | None
    run: RunRef | None


class CollectionItemView(BaseModel):
    """One instrument and bar size of a run."""

    instrument: str
    bar_size: str
    start: datetime | None
    end: datetime | None
    status: str
    bars_written: int
    error: str | None
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, item: CollectionItem) -> CollectionItemView:
        """The API view of a catalog item."""
        return cls(
            instrument=item.instrument, bar_size=item.bar_size, start=item.start, end=item.end,
            status=str(item.status), bars_written=item.bars_written, error=item.error,
            attempts=item.attempts, started_at=item.started_at, finished_at=item.finished_at,
        )  # fmt: skip


class CollectionRunView(BaseModel):
    """A collection run: status, item counts and progress."""

    id: int
    kind: str
    status: str
    created_at: datetime
    finished_at: datetime | None
    owner: str | None
    counts: dict[str, int]
    total: int
    bars_written: int
    progress: float = Field(ge=0, le=1, description="Share of items done or failed")

    @classmethod
    def of(cls, run: CollectionRun) -> CollectionRunView:
        """The API view of a catalog run."""
        counts = {str(k): v for k, v in run.counts.items()}
        settled = counts.get("done", 0) + counts.get("failed", 0)
        return cls(
            id=run.id, kind=run.kind, status=str(run.status), created_at=run.created_at,
            finished_at=run.finished_at, owner=run.owner, counts=counts, total=run.total,
            bars_written=run.bars_written, progress=settled / run.total if run.total else 1.0,
        )  # fmt: skip


class CollectionRunDetail(CollectionRunView):
    """A collection run with the status of every instrument."""

    items: list[CollectionItemView]


class RunPage(BaseModel):
    """A page of collection runs, newest first."""

    items: list[CollectionRunView]
    limit: int
    offset: int
    next_offset: int | None


class Bar(BaseModel):
    """One bar (UTC timestamp; daily bars are stamped 00:00 UTC of the session)."""

    ts: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    wap: float | None
    bar_count: int


class BarsPage(BaseModel):
    """A page of bars; ``next_cursor`` (or ``next_offset``) fetches the next one."""

    instrument: str
    bar_size: str
    count: int
    bars: list[Bar]
    next_cursor: str | None
    next_offset: int | None


class StrategyParam(BaseModel):
    """A strategy parameter: its type, default and range or choices."""

    model_config = ConfigDict(extra="allow")

    type: str
    default: Any = None
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: list[Any] | None = None


class StrategyInfo(BaseModel):
    """A library strategy with its parameters."""

    name: str
    description: str
    params: dict[str, StrategyParam]


class IndicatorParam(BaseModel):
    """An indicator parameter: type, default and inclusive bounds."""

    name: str
    type: str
    default: float
    min: float
    max: float
    description: str


class IndicatorInfo(BaseModel):
    """An indicator: the bar columns it reads, its parameters and outputs."""

    name: str
    description: str
    inputs: list[str]
    params: list[IndicatorParam]
    outputs: list[str]
