"""Translations between ib_async objects and SCIZOR's domain types, done once, here.

Nothing outside ``actors/`` sees an ib_async object: contracts become
:class:`core.types.Instrument`, bars become SCIZOR's bar frame (UTC ``ts`` index, float64
``open high low close volume wap bar_count``), executions become :class:`core.types.Fill`
with ``Decimal`` quantities and prices (joined with their commission reports in
:mod:`actors.fills`), and IB errors become :mod:`core.errors` exceptions.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import ib_async
import pandas as pd

from actors.contracts import venue_from
from actors.fills import Commission, Execution
from core.errors import BrokerError, DataError, NotFound, PacingViolation
from core.instruments import VENUES
from core.types import Instrument, OrderType, Position, SecType, Side
from core.types import Order as CoreOrder

BAR_COLUMNS = ("open", "high", "low", "close", "volume", "wap", "bar_count")


def to_contract(instrument: Instrument) -> ib_async.Contract:
    """Return the ib_async contract for ``instrument`` (ETFs trade as ``STK`` at IB)."""
    return ib_async.Contract(
        conId=instrument.con_id or 0,
        symbol=instrument.symbol,
        secType="STK",
        exchange=instrument.exchange or "SMART",
        primaryExchange=instrument.primary_exchange,
        currency=instrument.currency,
    )


def from_details(details: ib_async.ContractDetails) -> Instrument:
    """Return the :class:`Instrument` described by IB contract details.

    The routing exchange is the venue's (:data:`core.instruments.VENUES`) whatever exchange
    the request named, so one listing is always sent to IB the same way.

    Raises:
        BrokerError: if the details carry no contract or no venue.
    """
    contract = details.contract
    if contract is None:
        raise BrokerError(0, "contract details arrived without a contract")
    venue = venue_from(primary_exchange=contract.primaryExchange, exchange=contract.exchange)
    if venue is None:
        raise BrokerError(
            0, f"contract details of {contract.symbol} (conId {contract.conId}) name no venue"
        )
    known = VENUES.get(venue)
    return Instrument(
        symbol=contract.symbol,
        sec_type=SecType.ETF if details.stockType == "ETF" else SecType.STOCK,
        exchange=known.routing if known else (contract.exchange or "SMART"),
        primary_exchange=venue,
        currency=contract.currency or "USD",
        con_id=contract.conId or None,
        name=details.longName or "",
    )


def details_record(details: ib_async.ContractDetails) -> dict[str, Any]:
    """Return the fields of IB contract details that SCIZOR keeps, as plain values."""
    contract = details.contract or ib_async.Contract()
    return {
        "instrument": from_details(details).id,
        "con_id": contract.conId,
        "symbol": contract.symbol,
        "sec_type": contract.secType,
        "exchange": contract.exchange,
        "primary_exchange": contract.primaryExchange,
        "currency": contract.currency,
        "local_symbol": contract.localSymbol,
        "long_name": details.longName,
        "min_tick": details.minTick,
        "industry": details.industry,
        "category": details.category,
        "subcategory": details.subcategory,
        "time_zone": details.timeZoneId,
        "trading_hours": details.tradingHours,
        "liquid_hours": details.liquidHours,
        "valid_exchanges": details.validExchanges,
        "stock_type": details.stockType,
    }


def _bar_ts(value: date | datetime) -> pd.Timestamp:
    if isinstance(value, datetime):
        if value.tzinfo is None:  # IB without a zone means the gateway's zone; we ask for UTC
            return pd.Timestamp(value, tz=UTC)
        return pd.Timestamp(value).tz_convert(UTC)
    # daily bars: stamped 00:00 UTC of the session date
    return pd.Timestamp(datetime(value.year, value.month, value.day, tzinfo=UTC))


def empty_bars() -> pd.DataFrame:
    """Return an empty frame in SCIZOR's bar format."""
    index = pd.DatetimeIndex([], tz=UTC, name="ts", dtype="datetime64[ns, UTC]")
    return pd.DataFrame({c: pd.Series([], dtype="float64") for c in BAR_COLUMNS}, index=index)


def bars_to_frame(bars: list[ib_async.BarData]) -> pd.DataFrame:
    """Return IB bars as SCIZOR's bar frame (sorted, duplicates dropped, UTC ``ts`` index)."""
    if not bars:
        return empty_bars()
    index = pd.DatetimeIndex([_bar_ts(b.date) for b in bars], name="ts").as_unit("ns")
    frame = pd.DataFrame(
        {
            "open": [b.open for b in bars],
            "high": [b.high for b in bars],
            "low": [b.low for b in bars],
            "close": [b.close for b in bars],
            "volume": [b.volume for b in bars],
            "wap": [b.average for b in bars],
            "bar_count": [b.barCount for b in bars],
        },
        index=index,
        dtype="float64",
    )
    return merge_bars([frame])


def merge_bars(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate bar frames; keep the last copy of each timestamp; sort by time."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_bars()
    merged = pd.concat(frames)
    merged = merged[~merged.index.duplicated(keep="last")].sort_index()
    merged.index.name = "ts"
    return merged


def to_ib_order(order: CoreOrder, *, account: str = "") -> ib_async.Order:
    """Return the ib_async order for a SCIZOR :class:`core.types.Order`."""
    ib_order = ib_async.Order(
        action=order.side.value,
        totalQuantity=float(order.quantity),
        orderType=order.order_type.value,
        tif=order.tif.value,
        orderRef=order.order_ref,
    )
    if account:
        ib_order.account = account
    if order.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.LIMIT_ON_CLOSE):
        ib_order.lmtPrice = float(order.limit_price or 0)
    if order.order_type in (OrderType.STOP, OrderType.STOP_LIMIT):
        ib_order.auxPrice = float(order.stop_price or 0)
    return ib_order


def decimal(value: float) -> Decimal:
    """Return ``value`` as a Decimal without binary-float noise (``0.1`` → ``Decimal('0.1')``)."""
    return Decimal(repr(float(value)))


def execution_of(fill: ib_async.Fill, *, instrument: str) -> Execution:
    """Return what an ib_async fill says traded (listing ``instrument``), commission aside."""
    ex = fill.execution
    when = ex.time if ex.time.tzinfo else ex.time.replace(tzinfo=UTC)
    return Execution(
        exec_id=ex.execId,
        order_ref=ex.orderRef or str(ex.orderId),
        instrument=instrument,
        con_id=fill.contract.conId or None,
        side=Side.BUY if ex.side.upper() in ("BOT", "BUY") else Side.SELL,
        quantity=decimal(ex.shares),
        price=decimal(ex.price),
        time=when.astimezone(UTC),
    )


def commission_of(report: ib_async.CommissionReport) -> Commission | None:
    """Return IB's commission report, or None while it has not arrived (no execId yet).

    Raises:
        DataError: if the report carries no finite commission.
    """
    if not report.execId:
        return None
    if not math.isfinite(report.commission):
        raise DataError(
            f"commission report of {report.execId} has no commission ({report.commission})",
            field="commission",
        )
    return Commission(
        exec_id=report.execId, commission=decimal(report.commission), currency=report.currency
    )


def to_position(position: ib_async.Position, *, instrument: str) -> Position:
    """Return a SCIZOR :class:`core.types.Position` of listing ``instrument``."""
    return Position(
        instrument=instrument,
        con_id=position.contract.conId or None,
        quantity=decimal(position.position),
        avg_cost=decimal(position.avgCost),
        account=position.account,
    )


def price_or_none(value: float | None) -> float | None:
    """Return a tick price, or None for IB's "no value" (NaN, -1, unset)."""
    if value is None or math.isnan(value) or value < 0 or value >= 1.7e308:
        return None
    return float(value)


def request_error(code: int, message: str) -> BrokerError | NotFound:
    """Translate an IB error code into the :mod:`core.errors` exception to raise."""
    if code == 162 and "pacing" in message.lower():
        return PacingViolation(message)
    if code == 200:
        return NotFound(f"IB error 200: {message}")
    return BrokerError(code, message)
