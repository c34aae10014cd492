"""The grammar of rule-spec expressions: parsed with :mod:`ast` and checked against a
whitelist before anything is computed (the rules are in :mod:`strategies.rulespec`).

:func:`parse_rule` checks one expression; :class:`Checker` walks it and tells each node's
kind; :func:`bind_params` and :func:`input_nodes` read an indicator call's parameters and
series inputs, which the evaluator in :mod:`strategies.rulespec` reads the same way.
"""

from __future__ import annotations

import ast
from typing import Any

import numpy as np

from core.errors import ScizorError, ValidationError
from strategies.base import COLUMNS
from strategies.indicator_registry import INDICATORS
from strategies.library import crosses_above, crosses_below

MAX_LENGTH = 1000
MAX_NODES = 200
MAX_DEPTH = 12
MAX_CONSTANT = 1e9
MAX_PERIOD = 5_000  # bars, for every period parameter of an indicator in a rule spec
CROSSES = {"crosses_above": crosses_above, "crosses_below": crosses_below}
COMPARE = {
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
    ast.Eq: np.equal,
    ast.NotEq: np.not_equal,
}
ARITH = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide}


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
    kind = Checker(source.strip()).check(tree.body, depth=0)
    if kind != "bool":
        raise RuleError(
            f"the expression must be a condition (a comparison, crossing or and/or), "
            f"not a {kind}: {source.strip()!r}"
        )
    return tree


class Checker:
    """Walk the AST with a whitelist; return each node's kind: bool, series, number, tuple."""

    def __init__(self, source: str) -> None:
        """Check nodes of ``source`` (the text quoted in error messages; may be empty)."""
        self.source = source

    def fail(self, node: ast.AST, why: str) -> RuleError:
        """Return the RuleError for ``node``, quoting it and its column."""
        part = ast.get_source_segment(self.source, node) or type(node).__name__
        col = getattr(node, "col_offset", 0) + 1
        return RuleError(f"{why} (at column {col}: {part!r})")

    def check(self, node: ast.AST, *, depth: int) -> str:
        """Return ``node``'s kind, or raise RuleError for anything off the whitelist."""
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
        if type(node.op) not in ARITH:
            raise self.fail(node, f"operator {type(node.op).__name__} is not allowed; use + - * /")
        kinds = {
            self._want(side, depth, ("series", "number"), "arithmetic")
            for side in (node.left, node.right)
        }
        return "series" if "series" in kinds else "number"

    def _Compare(self, node: ast.Compare, depth: int) -> str:
        if len(node.ops) != 1:
            raise self.fail(node, "chained comparisons are not allowed; combine with and")
        if type(node.ops[0]) not in COMPARE:
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
        if node.args and literal(node.args[0]) is None:
            if len(node.args) < n_in:
                raise self.fail(
                    node,
                    f"{name} needs {n_in} series input(s) ({', '.join(spec.inputs)}), "
                    f"or none to read those columns",
                )
            for arg in node.args[:n_in]:
                self._want(arg, depth, ("series",), f"an input of {name}")
        bind_params(self, node, spec)
        return "series" if len(spec.outputs) == 1 else f"tuple{len(spec.outputs)}"


def literal(node: ast.AST) -> float | None:
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


def input_nodes(node: ast.Call, spec: Any) -> list[ast.expr]:
    """Return the call's series inputs: its leading arguments, or the default columns.

    The inputs are implicit exactly when the first argument is a numeric literal (or there
    is none); :meth:`Checker._Call` and :func:`bind_params` use the same test.
    """
    if node.args and literal(node.args[0]) is None:
        return list(node.args[: len(spec.inputs)])
    return [ast.Name(id=column, ctx=ast.Load()) for column in spec.inputs]


def bind_params(checker: Checker, node: ast.Call, spec: Any) -> dict[str, Any]:
    """Return the call's parameters by name after checking them with the registry."""
    explicit = bool(node.args) and literal(node.args[0]) is None
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
        number = literal(value)
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


def periods(tree: ast.Expression) -> list[tuple[str, str, int]]:
    """Return (indicator, parameter, bars) for every period parameter in a checked tree."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            spec = INDICATORS.get(node.func.id)
            if spec is None:
                continue
            given = bind_params(Checker(""), node, spec)
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
