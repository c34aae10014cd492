"""Indicators by name: their inputs, parameters and outputs, for rule specs and the HTTP API.

``INDICATORS`` maps a lower-case name to an :class:`IndicatorSpec`; :func:`compute` calls one
by name on a bars frame (or a mapping of arrays) after checking its parameters, and
:func:`indicator_schema` returns the JSON-ready description served at ``GET /indicators``.

Example:
    >>> import numpy as np
    >>> from strategies.indicator_registry import compute
    >>> bars = {"close": np.arange(1.0, 6.0)}
    >>> compute("sma", bars, timeperiod=2).tolist()
    [nan, 1.5, 2.5, 3.5, 4.5]
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.errors import DataError, ParameterError
from strategies import indicators as ind

__all__ = ["INDICATORS", "IndicatorSpec", "ParamSpec", "compute", "indicator_schema"]

_MAX = 100_000


@dataclass(frozen=True, slots=True, kw_only=True)
class ParamSpec:
    """One indicator parameter: its type, default and inclusive bounds.

    ``period`` marks a window length in bars (rule specs cap those; see
    :mod:`strategies.rulespec`).
    """

    name: str
    type: type
    default: int | float
    min: int | float
    max: int | float
    description: str = ""
    period: bool = False

    def check(self, value: object) -> int | float:
        """Return ``value`` converted to this parameter's type or raise ParameterError."""
        if isinstance(value, bool):
            raise ParameterError(
                f"{self.name} must be {self.type.__name__}, got bool", field=self.name
            )
        if self.type is int:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if not isinstance(value, int | np.integer):
                raise ParameterError(
                    f"{self.name} must be an integer, got {value!r}", field=self.name
                )
        elif not isinstance(value, int | float | np.number):
            raise ParameterError(f"{self.name} must be a number, got {value!r}", field=self.name)
        converted: int | float = self.type(value)
        if not self.min <= converted <= self.max:
            raise ParameterError(
                f"{self.name} must be between {self.min} and {self.max}, got {converted}",
                field=self.name,
            )
        return converted


@dataclass(frozen=True, slots=True, kw_only=True)
class IndicatorSpec:
    """An indicator: the function, the bar columns it reads, its parameters and outputs."""

    name: str
    function: Callable[..., Any]
    inputs: tuple[str, ...]
    params: tuple[ParamSpec, ...]
    outputs: tuple[str, ...]
    description: str = ""

    def param(self, name: str) -> ParamSpec:
        """Return the parameter called ``name`` or raise ParameterError suggesting one."""
        for p in self.params:
            if p.name == name:
                return p
        names = [p.name for p in self.params]
        hint = difflib.get_close_matches(name, names, n=1)
        suggestion = f" Did you mean: {hint[0]}?" if hint else f" Valid: {', '.join(names)}."
        raise ParameterError(f"{self.name} has no parameter {name!r}.{suggestion}", field=name)


def _period(
    name: str = "timeperiod", default: int = 14, minimum: int = 2, maximum: int = _MAX
) -> ParamSpec:
    return ParamSpec(
        name=name,
        type=int,
        default=default,
        min=minimum,
        max=maximum,
        description="bars",
        period=True,
    )


def _dev(name: str, default: float = 2.0) -> ParamSpec:
    return ParamSpec(
        name=name, type=float, default=default, min=0.0, max=100.0, description="std devs"
    )


def _matype(name: str) -> ParamSpec:
    return ParamSpec(name=name, type=int, default=0, min=0, max=1, description="0=SMA, 1=EMA")


_C = ("close",)
_HLC = ("high", "low", "close")


def _spec(
    name: str,
    inputs: tuple[str, ...],
    params: tuple[ParamSpec, ...],
    outputs: tuple[str, ...] = ("real",),
) -> IndicatorSpec:
    function = getattr(ind, name)
    doc = (function.__doc__ or "").strip().splitlines()
    return IndicatorSpec(
        name=name,
        function=function,
        inputs=inputs,
        params=params,
        outputs=outputs,
        description=doc[0] if doc else "",
    )


INDICATORS: dict[str, IndicatorSpec] = {
    s.name: s
    for s in (
        _spec("sma", _C, (_period(default=30),)),
        _spec("ema", _C, (_period(default=30),)),
        _spec("wma", _C, (_period(default=30),)),
        _spec("rsi", _C, (_period(),)),
        _spec(
            "macd",
            _C,
            (
                _period("fastperiod", 12),
                _period("slowperiod", 26),
                _period("signalperiod", 9, minimum=1),
            ),
            ("macd", "macdsignal", "macdhist"),
        ),
        _spec(
            "bbands",
            _C,
            (_period(default=20), _dev("nbdevup"), _dev("nbdevdn"), _matype("matype")),
            ("upperband", "middleband", "lowerband"),
        ),
        _spec(
            "stoch",
            _HLC,
            (
                _period("fastk_period", 5, minimum=1),
                _period("slowk_period", 3, minimum=1),
                _matype("slowk_matype"),
                _period("slowd_period", 3, minimum=1),
                _matype("slowd_matype"),
            ),
            ("slowk", "slowd"),
        ),
        _spec("atr", _HLC, (_period(minimum=1),)),
        _spec("adx", _HLC, (_period(),)),
        _spec("plus_di", _HLC, (_period(),)),
        _spec("minus_di", _HLC, (_period(),)),
        _spec("cci", _HLC, (_period(maximum=ind.CCI_MAX_PERIOD),)),
        _spec("willr", _HLC, (_period(),)),
        _spec("roc", _C, (_period(default=10, minimum=1),)),
        _spec("mom", _C, (_period(default=10, minimum=1),)),
        _spec("obv", ("close", "volume"), ()),
        _spec("stddev", _C, (_period(default=5), _dev("nbdev", 1.0))),
        _spec("trange", _HLC, ()),
        _spec("highest", _C, (_period(default=30),)),
        _spec("lowest", _C, (_period(default=30),)),
        _spec("donchian", ("high", "low"), (_period(default=20, minimum=1),), ("upper", "lower")),
    )
}


def get(name: str) -> IndicatorSpec:
    """Return the spec of indicator ``name`` or raise ParameterError suggesting a close name."""
    spec = INDICATORS.get(name.lower()) if isinstance(name, str) else None
    if spec is None:
        hint = difflib.get_close_matches(str(name).lower(), list(INDICATORS), n=1)
        suggestion = f" Did you mean: {hint[0]}?" if hint else f" Known: {', '.join(INDICATORS)}."
        raise ParameterError(f"unknown indicator {name!r}.{suggestion}", field="indicator")
    return spec


def _column(
    data: pd.DataFrame | Mapping[str, Any] | np.ndarray, spec: IndicatorSpec, col: str
) -> np.ndarray:
    if isinstance(data, np.ndarray | pd.Series):
        if spec.inputs != ("close",):
            raise ParameterError(
                f"{spec.name} needs columns {', '.join(spec.inputs)}; pass a bars frame",
                field=col,
            )
        return _numbers(data, col)
    if not isinstance(data, pd.DataFrame | Mapping):
        raise DataError(
            f"bars must be a DataFrame, a mapping of columns or an array of closes, "
            f"got {type(data).__name__}",
            field="bars",
        )
    if col not in data:
        raise ParameterError(
            f"{spec.name} needs a {col!r} column; the bars have {', '.join(map(str, data.keys()))}",
            field=col,
        )
    return _numbers(data[col], col)


def _numbers(values: Any, col: str) -> np.ndarray:
    """Return ``values`` as a float64 array, or raise DataError naming the column."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"column {col!r} must be numeric ({exc})", field=col) from None


def compute(
    name: str, bars: pd.DataFrame | Mapping[str, Any] | np.ndarray, **params: Any
) -> np.ndarray | tuple[np.ndarray, ...]:
    """Compute indicator ``name`` on ``bars`` with ``params`` (defaults fill the rest).

    Args:
        name: A key of :data:`INDICATORS` (case-insensitive), e.g. ``"rsi"``.
        bars: A DataFrame or mapping with the indicator's input columns (``open high low
            close volume``), or a bare array of closes for single-input indicators.
        **params: Parameter values by name, e.g. ``timeperiod=14``.

    Returns:
        One float64 array as long as ``bars``, or a tuple of arrays in the order of
        ``spec.outputs`` for indicators with several outputs.

    Raises:
        ParameterError: Unknown indicator or parameter, a value out of range, or a missing
            input column; the message names it and suggests the fix.
    """
    spec = get(name)
    checked = {key: spec.param(key).check(value) for key, value in params.items()}
    arrays = [_column(bars, spec, col) for col in spec.inputs]
    result: np.ndarray | tuple[np.ndarray, ...] = spec.function(*arrays, **checked)
    return result


def indicator_schema() -> list[dict[str, Any]]:
    """Return every indicator as a JSON-ready dict (name, inputs, params, outputs)."""
    return [
        {
            "name": spec.name,
            "description": spec.description,
            "inputs": list(spec.inputs),
            "params": [
                {
                    "name": p.name,
                    "type": p.type.__name__,
                    "default": p.default,
                    "min": p.min,
                    "max": p.max,
                    "description": p.description,
                }
                for p in spec.params
            ],
            "outputs": list(spec.outputs),
        }
        for spec in INDICATORS.values()
    ]
