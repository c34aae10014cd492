"""Rule-spec strategies: a JSON document of entry/exit conditions, compiled without ``eval``.

This is how strategies arrive over HTTP: no uploaded code ever runs. A spec is a JSON object:

.. code-block:: json

    {"name": "sma_rsi",
     "entry": "crosses_above(sma(close, 10), sma(close, 50))",
     "exit": "rsi(close, 14) > 70 or crosses_below(close, sma(close, 50))",
     "direction": "long", "stop_loss_pct": 5, "take_profit_pct": 10}

``entry`` and ``exit`` are expressions in a small grammar, parsed with :mod:`ast` and checked
against a whitelist before anything is computed:

* columns ``open high low close volume``; numeric constants (finite, |x| <= 1e9);
* indicator calls by registry name (``strategies.indicator_registry.INDICATORS``): series
  inputs first, then parameters positionally or by name: ``sma(close, 20)``,
  ``atr(high, low, close, timeperiod=14)``, ``bbands(close, 20, 2, 2)[2]``. When the first
  argument is a number (or there is none) the indicator reads its default columns
  (``close``; ``high, low, close`` for atr, stoch, ...): ``rsi(14) < 30`` is
  ``rsi(close, 14) < 30`` and ``atr(14)`` is ``atr(high, low, close, 14)``;
  multi-output indicators need an output index: ``macd(close)[0] > macd(close)[1]``;
* ``crosses_above(a, b)`` / ``crosses_below(a, b)`` (b may be a number);
* comparisons ``< <= > >= == !=``, ``and or not``, arithmetic ``+ - * /`` and unary minus.

Everything else (names, attributes, ``**``, lambdas, comprehensions, strings, keywords other
than indicator parameters) is rejected with a message that quotes the offending part.
Periods (``timeperiod``, ``fastperiod``, ...) are capped at :data:`MAX_PERIOD` bars, and
``compile_rules(spec, bars=n)`` also rejects a period longer than the ``n`` bars it will run
on, so a spec's cost is bounded (every indicator is O(bars), CCI O(bars x period)).
``direction`` is ``long`` (entry buys, exit sells) or ``short`` (entry sells short, exit
covers). With no ``exit`` the position is closed only by the stop loss or take profit.

Undefined inputs: a comparison is *unknown* on a bar where an operand is not a finite
number (an indicator's warm-up, a division by zero), and so is a crossing until both sides
are defined on this bar and the previous one. ``not`` keeps unknown unknown; ``and`` is
False if any side is False, ``or`` True if any side is True (three-valued logic); an
unknown entry or exit condition does not fire. So ``not (close > sma(close, 50))`` waits
for the 50-bar warm-up instead of firing on it, and ``!=`` is never True against a NaN.

Example:
    >>> s = compile_rules({"entry": "crosses_above(sma(close, 5), sma(close, 20))",
    ...                    "exit": "crosses_below(sma(close, 5), sma(close, 20))"})
    >>> s.name
    'rulespec'
    >>> compile_rules({"entry": "__import__('os')"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    core.errors.ValidationError: invalid rule spec: entry: '__import__' is not allowed...
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np
import pandas as pd
import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.errors import ValidationError
from strategies._signal_kernels import latch
from strategies.base import IndicatorCache, Param, Strategy
from strategies.indicator_registry import INDICATORS
from strategies.rule_grammar import (
    ARITH,
    COMPARE,
    CROSSES,
    MAX_LENGTH,
    MAX_PERIOD,
    Checker,
    RuleError,
    bind_params,
    input_nodes,
    parse_rule,
    periods,
)

__all__ = [
    "MAX_LENGTH",
    "MAX_PERIOD",
    "RuleError",
    "RuleSpec",
    "RuleStrategy",
    "compile_rules",
    "parse_rule",
]


class RuleSpec(BaseModel):
    """The JSON schema of a rule-spec strategy (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("rulespec", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    entry: str = Field(min_length=1, max_length=MAX_LENGTH)
    exit: str | None = Field(None, min_length=1, max_length=MAX_LENGTH)
    direction: Literal["long", "short"] = "long"
    stop_loss_pct: float | None = Field(None, gt=0, lt=100)
    take_profit_pct: float | None = Field(None, gt=0, le=10_000)

    @field_validator("entry", "exit")
    @classmethod
    def _grammar(cls, value: str | None) -> str | None:
        if value is not None:
            parse_rule(value)
        return value


class RuleStrategy(Strategy):
    """A strategy compiled from a :class:`RuleSpec`; it has no tunable parameters."""

    params: ClassVar[Mapping[str, Param]] = {}

    def __init__(self, spec: RuleSpec) -> None:
        self.spec = spec
        self.name = spec.name  # type: ignore[misc]
        self.description = f"entry: {spec.entry}; exit: {spec.exit}"  # type: ignore[misc]
        self.stop_loss_pct = spec.stop_loss_pct
        self.take_profit_pct = spec.take_profit_pct
        self._entry = parse_rule(spec.entry)
        self._exit = parse_rule(spec.exit) if spec.exit else None

    def check_bars(self, bars: int) -> None:
        """Raise ValidationError when a period in the spec is longer than ``bars`` bars.

        Such an indicator never leaves its warm-up, so the rule could never fire; the
        message names the rule, the indicator and the parameter.
        """
        rules = [("entry", self._entry), ("exit", self._exit)]
        for field, tree in rules:
            if tree is None:
                continue
            for indicator, param, length in periods(tree):
                if length > bars:
                    raise ValidationError(
                        f"invalid rule spec: {field}: {indicator}: {param} is {length} bars "
                        f"but the data has only {bars} bars; use at most {bars}",
                        field=field,
                    )

    def warmup(self, params: Mapping[str, Any] | None = None) -> int:
        """Return an upper bound of the bars before the entry rule can first fire.

        Twice the sum of the entry rule's periods, plus one bar for a crossing: no
        indicator of the registry looks back further than twice its periods (ADX's
        look-back is ``2 x timeperiod - 1``), and nesting adds look-backs up. The exit rule
        does not count: it cannot move a flat position.

        Raises:
            ParameterError: ``params`` is not empty (a rule spec has no parameters).
        """
        self.resolve(params)
        return 2 * sum(length for _, _, length in periods(self._entry)) + 1

    def signal(self, bars: pd.DataFrame, p: Mapping[str, Any], ind: IndicatorCache) -> Any:
        """Latch the entry/exit conditions (True where definitely true) into a target."""
        n = len(bars)
        entry = _fires(self._entry.body, ind, n)
        exit_ = _fires(self._exit.body, ind, n) if self._exit else np.zeros(n, dtype=np.bool_)
        off = np.zeros(n, dtype=np.bool_)
        if self.spec.direction == "long":
            return latch(entry, exit_, off, off)
        return latch(off, off, entry, exit_)


class _Truth(NamedTuple):
    """A condition in three-valued logic: where it is definitely true and definitely false.

    Bars in neither mask are unknown (an input is not yet defined there).
    """

    true: Any
    false: Any


def _fires(node: ast.AST, ind: IndicatorCache, n: int) -> np.ndarray:
    """Return the bars where the condition ``node`` is definitely true, as n booleans."""
    truth: _Truth = _evaluate(node, ind)
    return np.ascontiguousarray(np.broadcast_to(np.asarray(truth.true, dtype=np.bool_), (n,)))


def _evaluate(node: ast.AST, ind: IndicatorCache) -> Any:
    """Evaluate a checked node (memoized per sub-expression).

    Values are arrays or numbers; conditions are :class:`_Truth` pairs.
    """
    return ind.memo(("rule", ast.dump(node)), lambda: _compute(node, ind))


def _defined(value: Any) -> Any:
    """Return where ``value`` (an array or a number) is a finite number."""
    return np.isfinite(value)


def _compute(node: ast.AST, ind: IndicatorCache) -> Any:
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if isinstance(node, ast.Constant):
            return float(node.value)  # type: ignore[arg-type]
        if isinstance(node, ast.Name):
            return ind.column(node.id)
        if isinstance(node, ast.BoolOp):
            sides: list[_Truth] = [_evaluate(v, ind) for v in node.values]
            trues = [side.true for side in sides]
            falses = [side.false for side in sides]
            if isinstance(node.op, ast.And):  # false if any side is false
                return _Truth(np.logical_and.reduce(trues), np.logical_or.reduce(falses))
            return _Truth(np.logical_or.reduce(trues), np.logical_and.reduce(falses))
        if isinstance(node, ast.UnaryOp):
            value = _evaluate(node.operand, ind)
            if isinstance(node.op, ast.Not):
                return _Truth(value.false, value.true)  # unknown stays unknown
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp):
            arith: Any = ARITH[type(node.op)]
            return arith(_evaluate(node.left, ind), _evaluate(node.right, ind))
        if isinstance(node, ast.Compare):
            compare: Any = COMPARE[type(node.ops[0])]
            left = _evaluate(node.left, ind)
            right = _evaluate(node.comparators[0], ind)
            known = _defined(left) & _defined(right)
            hit = compare(left, right)
            return _Truth(hit & known, ~hit & known)
        if isinstance(node, ast.Subscript):
            assert isinstance(node.slice, ast.Constant)
            return _evaluate(node.value, ind)[node.slice.value]
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        return _call(node, node.func.id, ind)


def _call(node: ast.Call, name: str, ind: IndicatorCache) -> Any:
    if name in CROSSES:
        a = np.asarray(_evaluate(node.args[0], ind), dtype=np.float64)
        b = np.broadcast_to(np.asarray(_evaluate(node.args[1], ind), dtype=np.float64), a.shape)
        hit = CROSSES[name](a, b)
        now = _defined(a) & _defined(b)
        known = np.zeros(a.shape, dtype=np.bool_)
        known[1:] = now[1:] & now[:-1]  # a crossing needs this bar and the previous one
        return _Truth(hit & known, ~hit & known)
    spec = INDICATORS[name]
    inputs = input_nodes(node, spec)
    params = bind_params(Checker(""), node, spec)
    # Keyed by what is computed, so rsi(14), rsi(close, 14) and rsi(close, timeperiod=14)
    # share one array.
    key = (
        "rule-indicator",
        name,
        tuple(ast.dump(i) for i in inputs),
        tuple(sorted(params.items())),
    )
    return ind.memo(
        key,
        lambda: spec.function(
            *(np.asarray(_evaluate(i, ind), dtype=np.float64) for i in inputs), **params
        ),
    )


def compile_rules(
    spec: RuleSpec | Mapping[str, Any] | str, *, bars: int | None = None
) -> RuleStrategy:
    """Validate a rule spec (a RuleSpec, a mapping or a JSON string) and compile it.

    Args:
        spec: The rule spec.
        bars: The number of bars the strategy will run on, when known (an HTTP request
            names its data): a period longer than that is rejected too.

    Raises:
        ValidationError: naming the offending field and quoting the offending part.
    """
    strategy = _compile(spec)
    if bars is not None:
        strategy.check_bars(bars)
    return strategy


def _compile(spec: RuleSpec | Mapping[str, Any] | str) -> RuleStrategy:
    if isinstance(spec, RuleSpec):
        return RuleStrategy(spec)
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"rule spec is not valid JSON: {exc}", field="spec") from None
    if not isinstance(spec, Mapping):
        raise ValidationError("a rule spec must be a JSON object", field="spec")
    try:
        return RuleStrategy(RuleSpec.model_validate(dict(spec)))
    except pydantic.ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(part) for part in err["loc"]) or "spec"
            problems.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
        first = str(exc.errors()[0]["loc"][0]) if exc.errors()[0]["loc"] else "spec"
        raise ValidationError("invalid rule spec: " + "; ".join(problems), field=first) from None
