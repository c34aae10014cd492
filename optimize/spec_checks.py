"""Field checks of a backtest job spec: caps, key names, dates, numbers and an engine dry run.

Every check raises a :class:`~core.errors.ValidationError` (or ``ParameterError``) whose
``field`` is the spec's path to the bad value (``costs.slippage_bps``, ``params.fast``,
``rules.entry``) and whose message says what to write instead; the HTTP API answers it with
422. Nothing here touches the catalog or the bar store.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd

from core.errors import ParameterError, ValidationError
from strategies.engine import run_backtest, run_portfolio

MAX_SPEC_BYTES = 64 * 1024
"""A job spec is at most this long as JSON (the instrument list is most of it)."""
MAX_RULES_BYTES = 8 * 1024
"""A rule spec is at most this long as JSON (each expression is capped by the rule grammar)."""
MAX_DEPTH = 4
"""Objects and lists nest at most this deep in a job spec (its own structure needs 3)."""

# Where each engine argument lives in a job spec, for errors the engine raises.
ENGINE_FIELDS = {
    "cash": "costs.cash",
    "commission": "costs.commission",
    "currency": "costs.commission",
    "slippage_bps": "costs.slippage_bps",
    **{
        name: f"options.{name}"
        for name in (
            "size",
            "stop_loss_pct",
            "take_profit_pct",
            "allow_short",
            "margin",
            "fill",
            "finalize_trades",
        )
    },
}


def json_object(
    data: Mapping[str, Any] | str | bytes, *, what: str, holds: str
) -> Mapping[str, Any]:
    """``data`` as a mapping: itself, or the JSON object its text holds.

    Raises:
        ValidationError: on field ``spec``: text that is not JSON, or not an object
            (the message says ``what`` it is and what it ``holds``).
    """
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValidationError(f"the {what} is not valid JSON: {exc}", field="spec") from None
    if not isinstance(data, Mapping):
        raise ValidationError(f"a {what} is a JSON object with {holds}", field="spec")
    return data


def check_json(data: Any, *, what: str, field: str, limit: int) -> None:
    """Refuse a document longer than ``limit`` bytes as JSON or nested deeper than allowed.

    Raises:
        ValidationError: naming ``field``.
    """
    _check_depth(data, what=what, field=field, depth=0)
    try:
        size = len(json.dumps(data, default=str))  # NaN and inf: refused per field
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{what} must be plain JSON data ({exc})", field=field) from None
    if size > limit:
        raise ValidationError(
            f"{what} is {size} bytes as JSON; the limit is {limit}: name a universe or 'all' "
            "instead of a long instrument list, or shorten the rules",
            field=field,
        )


def _check_depth(data: Any, *, what: str, field: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValidationError(
            f"{what} nests deeper than {MAX_DEPTH} levels of objects and lists", field=field
        )
    children: Iterable[Any] = ()
    if isinstance(data, Mapping):
        children = data.values()
    elif isinstance(data, list | tuple):
        children = data
    for child in children:
        _check_depth(child, what=what, field=field, depth=depth + 1)


def section(data: Mapping[str, Any], key: str, *, prefix: str = "") -> Mapping[str, Any]:
    """Return the object under ``key`` ({} when absent).

    Raises:
        ValidationError: naming the key when it is not an object.
    """
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(
            f"{prefix}{key} must be an object of name: value, got {type(value).__name__}",
            field=f"{prefix}{key}",
        )
    return value


def known_keys(data: Mapping[str, Any], allowed: Iterable[str], *, prefix: str = "") -> None:
    """Refuse keys of ``data`` outside ``allowed``, suggesting the closest allowed one.

    Raises:
        ValidationError: naming the first unknown key.
    """
    names = list(allowed)
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(names)}"
            raise ValidationError(f"unknown field '{prefix}{key}'; {hint}", field=f"{prefix}{key}")


def choice(value: Any, choices: Iterable[str], *, field: str) -> str:
    """Return ``value`` if it is one of ``choices`` (case-insensitive), else suggest one.

    Raises:
        ValidationError: naming ``field``.
    """
    names = list(choices)
    if isinstance(value, str) and value.strip().lower() in names:
        return value.strip().lower()
    close = difflib.get_close_matches(str(value), names, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise ValidationError(
        f"{field} must be one of {', '.join(names)}, got {value!r}{hint}", field=field
    )


def number(value: Any, *, field: str, low: float, high: float, low_open: bool = False) -> float:
    """Return ``value`` as a finite float in ``[low, high]`` (``(low, high]`` if ``low_open``).

    Raises:
        ValidationError: naming ``field`` and the range.
    """
    bracket = "(" if low_open else "["
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(
            f"{field} must be a number in {bracket}{low:g}, {high:g}], got {value!r}", field=field
        )
    x = float(value)
    if not math.isfinite(x) or x > high or x < low or (low_open and x == low):
        raise ValidationError(
            f"{field} must be a number in {bracket}{low:g}, {high:g}], got {value!r}", field=field
        )
    return x


def optional_number(value: Any, *, field: str, low: float, high: float) -> float | None:
    """Return None for None, else :func:`number` in ``(low, high]``."""
    return None if value is None else number(value, field=field, low=low, high=high, low_open=True)


def flag(value: Any, *, field: str, optional: bool = False) -> bool | None:
    """Return a JSON boolean (None allowed when ``optional``).

    Raises:
        ValidationError: naming ``field``.
    """
    if value is None and optional:
        return None
    if not isinstance(value, bool):
        allowed = "true, false or null" if optional else "true or false"
        raise ValidationError(f"{field} must be {allowed}, got {value!r}", field=field)
    return value


def moment(value: Any, *, field: str) -> datetime | None:
    """Return a date (``YYYY-MM-DD``, 00:00 UTC) or an ISO-8601 time as an aware UTC datetime.

    A time without an offset is read as UTC.

    Raises:
        ValidationError: naming ``field`` with the accepted forms.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        stamp = value
    elif isinstance(value, date):
        stamp = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            stamp = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(
                f"{field} {value!r} is not a date: write YYYY-MM-DD or an ISO-8601 time such "
                "as 2024-01-02T00:00:00Z",
                field=field,
            ) from None
    else:
        raise ValidationError(f"{field} must be a date string, got {value!r}", field=field)
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def remap(exc: ValidationError, *, params: bool = True) -> ValidationError:
    """Return ``exc`` with its field as a spec path (engine argument or ``params.<name>``)."""
    field = exc.field or "strategy"
    if field in ENGINE_FIELDS:
        path = ENGINE_FIELDS[field]
    elif field in ("strategy", "params") or not params:
        path = field
    else:
        path = f"params.{field}"
    cls = ParameterError if isinstance(exc, ParameterError) else ValidationError
    return cls(exc.message, field=path)


@functools.cache
def _probe_bars() -> pd.DataFrame:
    """Sixty calm daily bars: enough for the engine to check every argument."""
    idx = pd.date_range("2020-01-01", periods=60, freq="D", tz="UTC")
    close = 100.0 + np.sin(np.arange(60) / 5.0)
    return pd.DataFrame(
        {"open": close, "high": close + 1, "low": close - 1, "close": close, "volume": 1e6},
        index=idx,
    )


def engine_check(strategy: Any, params: Mapping[str, Any], kwargs: Mapping[str, Any]) -> None:
    """Run the engine once on tiny synthetic bars so it checks every argument its own way.

    Raises:
        ValidationError: the engine's error, its field mapped to the spec's path.
    """
    try:
        run_backtest(_probe_bars(), strategy, params, benchmark=False, **kwargs)
    except ValidationError as exc:
        raise remap(exc) from None


@functools.cache
def metric_names() -> tuple[str, ...]:
    """The metrics a backtest reports (what results can be ranked by)."""
    return tuple(run_backtest(_probe_bars(), "buy_hold").stats)


LOWER_IS_BETTER = frozenset(
    {"volatility_pct", "max_drawdown_duration", "max_drawdown_days", "ulcer_index", "beta"}
)
"""Metrics where a smaller value ranks first (drawdowns are negative: larger is better)."""


def portfolio_check(
    strategy: Any,
    params: Mapping[str, Any],
    kwargs: Mapping[str, Any],
    currencies: Mapping[str, str],
) -> None:
    """Run ``run_portfolio`` once on tiny synthetic bars of one instrument per currency, so
    a mix of currencies it cannot hold in one account is refused as the engine refuses it.

    Raises:
        ValidationError: the engine's error (naming ``instruments`` when it is about FX).
    """
    frames = {instrument: _probe_bars() for instrument in currencies}
    try:
        run_portfolio(
            frames, strategy, params, benchmark=False, currencies=dict(currencies), **kwargs
        )
    except ValidationError as exc:
        if exc.field in ("fx", "currencies", "base_currency"):
            raise ValidationError(
                f"{exc.message} (a portfolio of {', '.join(sorted(set(currencies.values())))} "
                "listings: choose instruments of one currency, or mode per_instrument)",
                field="instruments",
            ) from None
        raise remap(exc) from None
