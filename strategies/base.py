"""The strategy API: typed parameters with search ranges, and a vectorized target position.

A strategy turns a bar frame (UTC ``DatetimeIndex``; columns ``open high low close volume``)
into a target position per bar: ``+1`` long, ``-1`` short, ``0`` flat, or a fraction in
between. The engine acts on a bar's target only on a later bar (the next open by default),
so a strategy that only looks backwards is causal by construction.

Example:
    >>> import strategies
    >>> s = strategies.get("sma_cross")
    >>> s.resolve({"fast": 5, "slow": 20})
    {'fast': 5, 'slow': 20, 'allow_short': False}
    >>> s.resolve({"fats": 5})
    Traceback (most recent call last):
    ...
    core.errors.ParameterError: unknown parameter 'fats' for sma_cross; did you mean 'fast'?
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
import pandas as pd

from core.errors import DataError, ParameterError, ValidationError
from strategies import indicators

T = TypeVar("T")
COLUMNS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True, slots=True)
class IntParam:
    """An integer parameter searched on ``low..high`` in steps of ``step``."""

    default: int
    low: int
    high: int
    step: int = 1

    def validate(self, owner: str, name: str, value: Any) -> int:
        """Return ``value`` as an int, or raise ParameterError naming the parameter."""
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer):
            raise ParameterError(
                f"parameter '{name}' for {owner} must be an integer, got {value!r}", field=name
            )
        if isinstance(value, float | np.floating) and not math.isfinite(value):
            raise ParameterError(
                f"parameter '{name}' for {owner} must be a whole number between {self.low} "
                f"and {self.high}, got {value!r}",
                field=name,
            )
        if not isinstance(value, int | np.integer) and float(value) != int(value):
            raise ParameterError(
                f"parameter '{name}' for {owner} must be a whole number, got {value!r}",
                field=name,
            )
        _check_range(owner, name, int(value), self.low, self.high)
        return int(value)

    def to_json(self) -> dict[str, Any]:
        """Describe the parameter as plain JSON data."""
        return {
            "type": "int",
            "default": self.default,
            "low": self.low,
            "high": self.high,
            "step": self.step,
        }

    def suggest(self, trial: Any, name: str) -> int:
        """Ask an Optuna trial for a value in this range."""
        return int(trial.suggest_int(name, self.low, self.high, step=self.step))


@dataclass(frozen=True, slots=True)
class FloatParam:
    """A real-valued parameter searched on ``[low, high]``."""

    default: float
    low: float
    high: float

    def validate(self, owner: str, name: str, value: Any) -> float:
        """Return ``value`` as a float, or raise ParameterError naming the parameter."""
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise ParameterError(
                f"parameter '{name}' for {owner} must be a number, got {value!r}", field=name
            )
        try:
            number = float(value)
        except OverflowError:  # an int beyond float range
            number = math.inf
        if not math.isfinite(number):
            raise ParameterError(
                f"parameter '{name}' for {owner} must be a finite number between {self.low} "
                f"and {self.high}, got {value!r}",
                field=name,
            )
        _check_range(owner, name, number, self.low, self.high)
        return number

    def to_json(self) -> dict[str, Any]:
        """Describe the parameter as plain JSON data."""
        return {"type": "float", "default": self.default, "low": self.low, "high": self.high}

    def suggest(self, trial: Any, name: str) -> float:
        """Ask an Optuna trial for a value in this range."""
        return float(trial.suggest_float(name, self.low, self.high))


@dataclass(frozen=True, slots=True)
class ChoiceParam:
    """A parameter chosen from a fixed list of JSON scalars (str, int, float or bool)."""

    default: Any
    choices: tuple[Any, ...]

    def validate(self, owner: str, name: str, value: Any) -> Any:
        """Return ``value`` if it is one of the choices, else raise ParameterError."""
        for choice in self.choices:
            if type(choice) is type(value) and choice == value:
                return choice
        raise ParameterError(
            f"parameter '{name}' for {owner} must be one of {list(self.choices)}, got {value!r}",
            field=name,
        )

    def to_json(self) -> dict[str, Any]:
        """Describe the parameter as plain JSON data."""
        return {"type": "choice", "default": self.default, "choices": list(self.choices)}

    def suggest(self, trial: Any, name: str) -> Any:
        """Ask an Optuna trial for one of the choices."""
        return trial.suggest_categorical(name, list(self.choices))


Param = IntParam | FloatParam | ChoiceParam


def _check_range(owner: str, name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ParameterError(
            f"parameter '{name}' for {owner} must be between {low} and {high}, got {value}",
            field=name,
        )


class IndicatorCache:
    """Memoized indicator values over one bar frame, shared between parameter sets.

    ``cache("sma", "close", 10)`` calls ``strategies.indicators.sma(close, 10)`` once; later
    calls with the same arguments return the stored array. ``run_batch`` keeps one cache for
    all parameter sets, so ``sma(n)`` is computed once per distinct ``n``.
    """

    def __init__(
        self, bars: pd.DataFrame, *, columns: Mapping[str, np.ndarray] | None = None
    ) -> None:
        """Cache indicators over ``bars``; ``columns`` may pre-seed float64 column arrays."""
        self._bars = bars
        self._memo: dict[Any, Any] = {("column", c): v for c, v in (columns or {}).items()}

    def column(self, name: str) -> np.ndarray:
        """Return a bar column as a float64 array.

        Raises:
            DataError: the bars have no column ``name``, or it is not numeric.
        """
        return self.memo(("column", name), lambda: self._read(name))

    def _read(self, name: str) -> np.ndarray:
        if name not in self._bars.columns:
            raise DataError(
                f"the bars have no column {name!r}; they have {', '.join(map(str, self._bars))}",
                field=name,
            )
        try:
            return self._bars[name].to_numpy(np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"bar column {name!r} must be numeric ({exc})", field=name) from exc

    def __call__(self, name: str, *args: Any, **params: Any) -> Any:
        """Return indicator ``name``; string arguments name columns, the rest are params.

        Raises:
            ParameterError: ``name`` is not a function of :mod:`strategies.indicators`.
        """
        key = ("indicator", name, args, tuple(sorted(params.items())) if params else ())
        if key not in self._memo:
            values = [self.column(a) if isinstance(a, str) else a for a in args]
            self._memo[key] = _indicator(name)(*values, **params)
        return self._memo[key]

    def memo(self, key: Any, compute: Callable[[], T]) -> T:
        """Return the value stored under ``key``, computing and storing it on first use."""
        if key not in self._memo:
            self._memo[key] = compute()
        value: T = self._memo[key]
        return value


class Strategy:
    """Base class: declare ``name`` and ``params``; implement ``signal``.

    Subclasses override ``signal(bars, p, ind)`` to return one target per bar, and may
    override ``check(p)`` for constraints between parameters. A strategy that declares an
    ``allow_short`` parameter gets negative targets clipped to 0 when it is False.
    """

    name: ClassVar[str] = "strategy"
    description: ClassVar[str] = ""
    params: ClassVar[Mapping[str, Param]] = {}
    stop_loss_pct: float | None = None
    take_profit_pct: float | None = None

    def signal(self, bars: pd.DataFrame, p: Mapping[str, Any], ind: IndicatorCache) -> Any:
        """Return the target position per bar (array-like, NaN means flat)."""
        raise NotImplementedError(f"{type(self).__name__} must implement signal()")

    def check(self, p: Mapping[str, Any]) -> None:
        """Raise ParameterError when parameters break a constraint (e.g. fast < slow)."""

    def warmup(self, params: Mapping[str, Any] | None = None) -> int:
        """Return the bars of history the strategy needs before its targets mean anything.

        From bar ``warmup`` on, every indicator the strategy reads is defined: it is the
        indicators' TA-Lib look-back, plus one bar for a crossing (which compares the
        previous bar too). The library's values are exact, so every target before it is
        flat; a rule spec's is an upper bound. A live runner loads this many bars of
        history before acting (see :mod:`strategies.live`). The base class returns 0;
        strategies with indicators override it.

        Args:
            params: the strategy's parameters (defaults fill the gaps).

        Raises:
            ParameterError: ``params`` do not resolve.
        """
        self.resolve(params)
        return 0

    def defaults(self) -> dict[str, Any]:
        """Return the default value of every parameter."""
        return {k: v.default for k, v in self.params.items()}

    def resolve(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Validate ``params`` against the declared ones and fill in defaults.

        Raises:
            ParameterError: for an unknown name (suggesting the closest valid one), a value
                of the wrong type or out of range, or a broken constraint.
        """
        given = given_params(self.name, params)
        for key in given:
            if key not in self.params:
                raise ParameterError(_unknown_message(self.name, key, self.params), field=key)
        values = {
            k: spec.validate(self.name, k, given.get(k, spec.default))
            for k, spec in self.params.items()
        }
        self.check(values)
        return values

    def target(
        self,
        bars: pd.DataFrame,
        params: Mapping[str, Any] | None = None,
        *,
        indicators: IndicatorCache | None = None,
        resolved: bool = False,
    ) -> np.ndarray:
        """Return the target position per bar as float64 in [-1, 1], NaN replaced by 0.

        When ``signal`` already returned finite values in range, that array itself comes
        back (no copy): treat the result as read-only.

        Raises:
            ParameterError: ``params`` do not resolve (unless ``resolved``).
            ValidationError: ``signal`` returned something other than one number per bar
                (``field="signal"``).
        """
        p = dict(params or {}) if resolved else self.resolve(params)
        ind = indicators if indicators is not None else IndicatorCache(bars)
        raw = _as_targets(self.name, self.signal(bars, p, ind), n=len(bars))
        low = -1.0 if p.get("allow_short", "allow_short" not in self.params) else 0.0
        if len(raw) and low <= raw.min() and raw.max() <= 1.0:
            return raw  # already finite and in range (NaN fails both tests): two reductions
        # NaN and infinities mean flat; a fresh array, so clipping in place is safe. Plain
        # ufuncs: np.nan_to_num + np.clip cost several times more on a single backtest.
        out = np.where(np.isfinite(raw), raw, 0.0)
        np.maximum(out, low, out=out)
        np.minimum(out, 1.0, out=out)
        return out

    def targets_batch(
        self,
        bars: pd.DataFrame,
        param_sets: Sequence[Mapping[str, Any]],
        indicators: IndicatorCache,
    ) -> np.ndarray:
        """Return the targets of many resolved parameter sets as an (n_bars, n_sets) matrix.

        Column ``j`` equals ``target(bars, param_sets[j], resolved=True)``. This default
        calls :meth:`target` once per set (sharing ``indicators``); strategies override it
        with a vectorized version where one is natural. The matrix is Fortran-ordered, so
        each set's column is contiguous.
        """
        out = np.empty((len(bars), len(param_sets)), order="F")
        for j, p in enumerate(param_sets):
            out[:, j] = self.target(bars, p, indicators=indicators, resolved=True)
        return out

    def space(self) -> dict[str, Any]:
        """Return the optimization space as JSON-ready data (name, description, params)."""
        return {
            "name": self.name,
            "description": self.description,
            "params": {k: v.to_json() for k, v in self.params.items()},
        }

    def __repr__(self) -> str:
        return f"<Strategy {self.name}>"


def given_params(owner: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return a copy of ``params`` as a dict, or raise ParameterError unless it is a mapping."""
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise ParameterError(
            f"parameters for {owner} must be a mapping of name to value, "
            f"got {type(params).__name__}",
            field="params",
        )
    return dict(params)


def _indicator(name: str) -> Callable[..., Any]:
    """Return the function ``name`` of :mod:`strategies.indicators`, or raise ParameterError."""
    function = getattr(indicators, name, None) if name in indicators.__all__ else None
    if function is None:
        close = difflib.get_close_matches(str(name), indicators.__all__, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ParameterError(
            f"unknown indicator {name!r}{hint} (see strategies.indicators.__all__)",
            field="indicator",
        )
    found: Callable[..., Any] = function
    return found


def _as_targets(owner: str, values: Any, *, n: int) -> np.ndarray:
    """Return ``values`` as a float64 array of ``n`` targets, or raise ValidationError."""
    try:
        raw = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"{owner}.signal must return one number per bar, got {type(values).__name__} "
            f"({exc}); return a float array as long as the bars",
            field="signal",
        ) from None
    if raw.shape != (n,):
        raise ValidationError(
            f"{owner}.signal returned shape {raw.shape}; expected ({n},): one target per bar",
            field="signal",
        )
    return raw


def _unknown_message(owner: str, key: str, known: Sequence[str] | Mapping[str, Any]) -> str:
    names = list(known)
    close = difflib.get_close_matches(key, names, n=1)
    if close:
        return f"unknown parameter '{key}' for {owner}; did you mean '{close[0]}'?"
    valid = ", ".join(names) if names else "none"
    return f"unknown parameter '{key}' for {owner}; valid parameters: {valid}"


def require_less(p: Mapping[str, Any], small: str, big: str, owner: str) -> None:
    """Raise ParameterError unless ``p[small] < p[big]``."""
    if not p[small] < p[big]:
        raise ParameterError(
            f"{owner} needs {small} < {big}, got {small}={p[small]} and {big}={p[big]}",
            field=small,
        )
