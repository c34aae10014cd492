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

from core.errors import ScizorError, ValidationError
from strategies._signal_kernels import latch
from strategies.base import COLUMNS, IndicatorCache, Param, Strategy
from strategies.indicator_registry import INDICATORS
from strategies.library import crosses_above, crosses_below

MAX_LENGTH = 1000
MAX_NODES = 200
MAX_DEPTH = 12
MAX_CONSTANT = 1e9
MAX_PERIOD = 5_000  # bars, for every period parameter of an indicator in a rule spec
CROSSES = {"crosses_above": crosses_above, "crosses_below": crosses_below}
_COMPARE = {
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
    ast.Eq: np.equal,
    ast.NotEq: np.not_equal,
}
_ARITH = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide}


class RuleError(ValidationError):
    """A rule expression broke the grammar; the message quotes the offending part.

    A :class:`core.errors.ValidationError` (so also a ``ValueError``, which is how pydantic
    validators report a bad value). ``field`` is ``"rule"``: :func:`compile_rules` names
    the spec field (``entry`` or ``exit``) instead.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, field="rule")


def parse_rule(source: str) -> ast.Expression:
    """Parse and check one expression; return its AST or raise RuleError."""
    if len(source) > MAX_LENGTH:
        raise RuleError(f"expression is {len(source)} characters; the limit is {MAX_LENGTH}")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except (SyntaxError, RecursionError, MemoryError, ValueError) as exc:
        raise RuleError(f"not a valid expression: {getattr(exc, 'msg', exc)}") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise RuleError(f"expression has more than {MAX_NODES} parts; simplify it")
    kind = _Checker(source.strip()).check(tree.body, depth=0)
    if kind != "bool":
        raise RuleError(
            f"the expression must be a condition (a comparison, crossing or and/or), "
            f"not a {kind}: {source.strip()!r}"
        )
    return tree


class _Checker:
    """Walk the AST with a whitelist; return each node's kind: bool, series, number, tuple."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, node: ast.AST, why: str) -> RuleError:
        part = ast.get_source_segment(self.source, node) or type(node).__name__
        col = getattr(node, "col_offset", 0) + 1
        return RuleError(f"{why} (at column {col}: {part!r})")

    def check(self, node: ast.AST, *, depth: int) -> str:
        if depth > MAX_DEPTH:
            raise self.fail(node, f"expression nests deeper than {MAX_DEPTH} levels")
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise self.fail(node, f"{_describe(node)} is not allowed")
        kind: str = method(node, depth + 1)
        return kind

    def _want(self, node: ast.AST, depth: int, kinds: tuple[str, ...], role: str) -> str:
        kind = self.check(node, depth=depth)
        if kind not in kinds:
            if kind.startswith("tuple"):
                raise self.fail(
                    node,
                    f"{role}: this indicator has {kind[5:]} outputs; pick one with [0], [1], ...",
                )
            raise self.fail(node, f"{role} must be a {' or '.join(kinds)}, not a {kind}")
        return kind

    def _Constant(self, node: ast.Constant, depth: int) -> str:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(node, "only numeric constants are allowed")
        if not abs(value) <= MAX_CONSTANT:
            raise self.fail(node, f"numbers must lie within ±{MAX_CONSTANT:g}")
        return "number"

    def _Name(self, node: ast.Name, depth: int) -> str:
        if node.id not in COLUMNS:
            raise self.fail(
                node, f"'{node.id}' is not allowed; names allowed: {', '.join(COLUMNS)}"
            )
        return "series"

    def _BoolOp(self, node: ast.BoolOp, depth: int) -> str:
        for value in node.values:
            self._want(value, depth, ("bool",), "each side of and/or")
        return "bool"

    def _UnaryOp(self, node: ast.UnaryOp, depth: int) -> str:
        if isinstance(node.op, ast.Not):
            self._want(node.operand, depth, ("bool",), "the operand of not")
            return "bool"
        if isinstance(node.op, ast.USub | ast.UAdd):
            return self._want(node.operand, depth, ("series", "number"), "a signed value")
        raise self.fail(node, "operator is not allowed")

    def _BinOp(self, node: ast.BinOp, depth: int) -> str:
        if type(node.op) not in _ARITH:
            raise self.fail(node, f"operator {type(node.op).__name__} is not allowed; use + - * /")
        kinds = {
            self._want(side, depth, ("series", "number"), "arithmetic")
            for side in (node.left, node.right)
        }
        return "series" if "series" in kinds else "number"

    def _Compare(self, node: ast.Compare, depth: int) -> str:
        if len(node.ops) != 1:
            raise self.fail(node, "chained comparisons are not allowed; combine with and")
        if type(node.ops[0]) not in _COMPARE:
            raise self.fail(node, "only < <= > >= == != comparisons are allowed")
        for side in (node.left, node.comparators[0]):
            self._want(side, depth, ("series", "number"), "a compared value")
        return "bool"

    def _Subscript(self, node: ast.Subscript, depth: int) -> str:
        kind = self.check(node.value, depth=depth) if isinstance(node.value, ast.Call) else ""
        if not kind.startswith("tuple"):
            raise self.fail(node, "[i] selects an output of a multi-output indicator call only")
        index = node.slice
        if not (
            isinstance(index, ast.Constant)
            and type(index.value) is int
            and 0 <= index.value < int(kind[5:])
        ):
            raise self.fail(node, f"the output index must be an integer 0..{int(kind[5:]) - 1}")
        return "series"

    def _Call(self, node: ast.Call, depth: int) -> str:
        if not isinstance(node.func, ast.Name):
            raise self.fail(
                node, "only calls of indicators and crosses_above/crosses_below are allowed"
            )
        name = node.func.id
        if name in CROSSES:
            if len(node.args) != 2 or node.keywords:
                raise self.fail(node, f"{name} takes exactly two arguments")
            self._want(node.args[0], depth, ("series",), f"the first argument of {name}")
            self._want(node.args[1], depth, ("series", "number"), f"the second argument of {name}")
            return "bool"
        spec = INDICATORS.get(name)
        if spec is None:
            raise self.fail(
                node,
                f"'{name}' is not allowed; functions allowed: {', '.join([*INDICATORS, *CROSSES])}",
            )
        n_in = len(spec.inputs)
        # A leading number (or no argument) means "the default columns": rsi(14), atr(14).
        if node.args and _literal(node.args[0]) is None:
            if len(node.args) < n_in:
                raise self.fail(
                    node,
                    f"{name} needs {n_in} series input(s) ({', '.join(spec.inputs)}), "
                    f"or none to read those columns",
                )
            for arg in node.args[:n_in]:
                self._want(arg, depth, ("series",), f"an input of {name}")
        _bind_params(self, node, spec)
        return "series" if len(spec.outputs) == 1 else f"tuple{len(spec.outputs)}"


def _literal(node: ast.AST) -> float | None:
    """Return the value of a numeric literal (``5``, ``-5``, ``2.5``), else None."""
    sign = 1
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        sign = -1 if isinstance(node.op, ast.USub) else 1
        node = node.operand
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return sign * value
    return None


def _input_nodes(node: ast.Call, spec: Any) -> list[ast.expr]:
    """Return the call's series inputs: its leading arguments, or the default columns.

    The inputs are implicit exactly when the first argument is a numeric literal (or there
    is none); :meth:`_Checker._Call` and :func:`_bind_params` use the same test.
    """
    if node.args and _literal(node.args[0]) is None:
        return list(node.args[: len(spec.inputs)])
    return [ast.Name(id=column, ctx=ast.Load()) for column in spec.inputs]


def _bind_params(checker: _Checker, node: ast.Call, spec: Any) -> dict[str, Any]:
    """Return the call's parameters by name after checking them with the registry."""
    explicit = bool(node.args) and _literal(node.args[0]) is None
    extra = node.args[len(spec.inputs) :] if explicit else node.args
    if len(extra) > len(spec.params):
        raise checker.fail(
            node,
            f"{spec.name} takes at most {len(spec.params)} parameter(s): "
            f"{', '.join(p.name for p in spec.params)}",
        )
    pairs = [(p.name, a) for p, a in zip(spec.params, extra, strict=False)]
    pairs += [(kw.arg or "**", kw.value) for kw in node.keywords]
    out: dict[str, Any] = {}
    for key, value in pairs:
        number = _literal(value)
        if number is None:
            raise checker.fail(value, f"the parameter {key} of {spec.name} must be a number")
        try:
            param = spec.param(key)
            out[key] = param.check(number)
        except ScizorError as exc:
            raise checker.fail(value, f"{spec.name}: {exc}") from None
        if param.period and out[key] > MAX_PERIOD:
            raise checker.fail(
                value,
                f"{spec.name}: {key} must be at most {MAX_PERIOD} bars in a rule spec, "
                f"got {out[key]}",
            )
    return out


def _periods(tree: ast.Expression) -> list[tuple[str, str, int]]:
    """Return (indicator, parameter, bars) for every period parameter in a checked tree."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            spec = INDICATORS.get(node.func.id)
            if spec is None:
                continue
            given = _bind_params(_Checker(""), node, spec)
            for p in spec.params:
                if p.period:
                    found.append((spec.name, p.name, int(given.get(p.name, p.default))))
    return found


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"attribute access '.{node.attr}'"
    return {"Lambda": "lambda", "Starred": "unpacking", "JoinedStr": "an f-string"}.get(
        type(node).__name__, f"a {type(node).__name__} expression"
    )


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
            for indicator, param, length in _periods(tree):
                if length > bars:
                    raise ValidationError(
                        f"invalid rule spec: {field}: {indicator}: {param} is {length} bars "
                        f"but the data has only {bars} bars; use at most {bars}",
                        field=field,
                    )

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
            arith: Any = _ARITH[type(node.op)]
            return arith(_evaluate(node.left, ind), _evaluate(node.right, ind))
        if isinstance(node, ast.Compare):
            compare: Any = _COMPARE[type(node.ops[0])]
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
    inputs = _input_nodes(node, spec)
    params = _bind_params(_Checker(""), node, spec)
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
