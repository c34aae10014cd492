"""The search space of a study: one dimension per searched parameter, and constraints.

A dimension is an integer or real range (``low``, ``high``, ``step``) inside the strategy's
typed range, or a list of values (categorical). Constraints compare two parameters, or a
parameter and a number (``"fast < slow"``, ``"period >= 5"``); the strategy's own check
(e.g. sma_cross's fast < slow) always applies as well. :func:`grid` enumerates every
feasible point and :func:`sample` draws feasible points at random, both in bulk, so grid
and random studies never go through a sampler one trial at a time.
"""

from __future__ import annotations

import itertools
import math
import operator
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from core.errors import ParameterError, ValidationError
from strategies.base import ChoiceParam, FloatParam, IntParam, Param, Strategy

MAX_GRID = 200_000
"""Most points a grid may have (before constraints): a bigger one is a random study."""
MAX_VALUES = 1_000
"""Most values of one categorical dimension."""
OPS: dict[str, Callable[[Any, Any], Any]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "!=": operator.ne,
    "==": operator.eq,
    "<": operator.lt,
    ">": operator.gt,
}
_SIDE = r"([A-Za-z_][A-Za-z0-9_]*|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
_CONSTRAINT = re.compile(rf"^\s*{_SIDE}\s*(<=|>=|!=|==|<|>)\s*{_SIDE}\s*$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Dimension:
    """One searched parameter: ``kind`` ``int``/``float`` over ``[low, high]`` (on ``step``
    when set), or ``categorical`` over ``values``."""

    name: str
    kind: str
    low: float = 0
    high: float = 0
    step: float | None = None
    values: tuple[Any, ...] = ()

    def distribution(self) -> BaseDistribution:
        """The Optuna distribution of this dimension (what the trials record)."""
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), step=int(self.step or 1))
        if self.kind == "float":
            return FloatDistribution(self.low, self.high, step=self.step)
        return CategoricalDistribution(list(self.values))

    def points(self) -> list[Any]:
        """Every value a grid takes (a real range needs a ``step``)."""
        if self.kind == "categorical":
            return list(self.values)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        step = float(self.step or 0)
        count = math.floor((self.high - self.low) / step + 1e-9) + 1
        return [round(self.low + k * step, 12) for k in range(count)]

    def size(self) -> int:
        """How many points :meth:`points` has (math.inf for a real range without step)."""
        if self.kind == "categorical":
            return len(self.values)
        if self.kind == "float" and not self.step:
            return math.inf  # type: ignore[return-value]
        return math.floor((self.high - self.low) / float(self.step or 1) + 1e-9) + 1

    def draw(self, rng: np.random.Generator, n: int) -> list[Any]:
        """``n`` values drawn uniformly (on the step for stepped ranges)."""
        if self.kind == "categorical":
            return [self.values[i] for i in rng.integers(0, len(self.values), n)]
        if self.kind == "int" or self.step:
            picks = rng.integers(0, self.size(), n)
            if self.kind == "int":
                return [int(self.low) + int(k) * int(self.step or 1) for k in picks]
            return [round(self.low + int(k) * float(self.step or 0), 12) for k in picks]
        return [float(x) for x in rng.uniform(self.low, self.high, n)]

    def to_json(self) -> Any:
        """The spec's own spelling of this dimension."""
        if self.kind == "categorical":
            return {"values": list(self.values)}
        out: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.step is not None:
            out["step"] = self.step
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Constraint:
    """``left op right``, each side a parameter name or a number."""

    left: str | float
    op: str
    right: str | float

    def holds(self, params: Mapping[str, Any]) -> bool:
        """True when ``params`` satisfy the constraint."""
        a = params[self.left] if isinstance(self.left, str) else self.left
        b = params[self.right] if isinstance(self.right, str) else self.right
        return bool(OPS[self.op](a, b))

    def __str__(self) -> str:
        return f"{self.left} {self.op} {self.right}"


def parse_space(
    strategy: Strategy, raw: Any, *, fixed: Mapping[str, Any]
) -> tuple[dict[str, Dimension], dict[str, Any]]:
    """Return the searched dimensions and the parameters fixed by ``space`` itself.

    With no ``space``, every int and float parameter not fixed in ``params`` is searched
    over its typed range (choice parameters keep their defaults unless named).

    Raises:
        ValidationError: a bad entry, ``field="space.<name>"``.
        ParameterError: an unknown parameter, with the closest valid name.
    """
    if raw is None:
        return {
            name: _typed(name, p)
            for name, p in strategy.params.items()
            if name not in fixed and isinstance(p, IntParam | FloatParam)
        }, {}
    if not isinstance(raw, Mapping):
        raise ValidationError(
            'space must be an object of parameter: {"low": .., "high": .., "step": ..}, '
            '{"values": [..]} or a fixed value',
            field="space",
        )
    dims: dict[str, Dimension] = {}
    also_fixed: dict[str, Any] = {}
    for name, entry in raw.items():
        param = _known(strategy, str(name), prefix="space")
        if name in fixed:
            raise ValidationError(
                f"{name} is both fixed (params) and searched (space): keep one",
                field=f"space.{name}",
            )
        if isinstance(entry, Mapping):
            dims[name] = _dimension(strategy, name, param, entry)
        else:
            also_fixed[name] = _value(strategy, name, param, entry, field=f"space.{name}")
    if not dims:
        raise ValidationError(
            "space searches no parameter: give at least one a range or values", field="space"
        )
    return dims, also_fixed


def _typed(name: str, p: IntParam | FloatParam) -> Dimension:
    if isinstance(p, IntParam):
        return Dimension(name=name, kind="int", low=p.low, high=p.high, step=p.step)
    return Dimension(name=name, kind="float", low=p.low, high=p.high)


def _known(strategy: Strategy, name: str, *, prefix: str) -> Param:
    if name not in strategy.params:
        try:
            strategy.resolve({name: None})
        except ParameterError as exc:
            raise ParameterError(exc.message, field=f"{prefix}.{name}") from None
    return strategy.params[name]


def _value(strategy: Strategy, name: str, param: Param, value: Any, *, field: str) -> Any:
    try:
        return param.validate(strategy.name, name, value)
    except ValidationError as exc:
        raise ParameterError(exc.message, field=field) from None


def _dimension(strategy: Strategy, name: str, param: Param, entry: Mapping[str, Any]) -> Dimension:
    field = f"space.{name}"
    if "values" in entry:
        if set(entry) != {"values"}:
            raise ValidationError(
                f"{field} gives values; leave out low, high and step", field=field
            )
        values = entry["values"]
        if not isinstance(values, list) or not values or len(values) > MAX_VALUES:
            raise ValidationError(
                f"{field}.values must be a non-empty list of at most {MAX_VALUES} values",
                field=field,
            )
        checked = [_value(strategy, name, param, v, field=field) for v in values]
        return Dimension(name=name, kind="categorical", values=tuple(dict.fromkeys(checked)))
    if isinstance(param, ChoiceParam):
        raise ValidationError(
            f'{name} is a choice of {list(param.choices)}: write {{"values": [...]}}',
            field=field,
        )
    unknown = set(entry) - {"low", "high", "step"}
    if unknown:
        raise ValidationError(
            f"unknown key '{sorted(unknown)[0]}' in {field}; write low, high and step, or values",
            field=field,
        )
    return _range(strategy, name, param, entry)


def _range(
    strategy: Strategy, name: str, param: IntParam | FloatParam, entry: Mapping[str, Any]
) -> Dimension:
    field = f"space.{name}"
    low = _value(strategy, name, param, entry.get("low", param.low), field=field)
    high = _value(strategy, name, param, entry.get("high", param.high), field=field)
    if low > high:
        raise ValidationError(f"{field}: low {low} is above high {high}", field=field)
    step = entry.get("step")
    if isinstance(param, IntParam):
        step = param.step if step is None else step
        if isinstance(step, bool) or not isinstance(step, int) or step < 1:
            raise ValidationError(f"{field}.step must be a whole number >= 1", field=field)
        return Dimension(name=name, kind="int", low=low, high=high, step=step)
    if step is not None and (
        isinstance(step, bool)
        or not isinstance(step, int | float)
        or not 0 < step <= max(high - low, 1e-12)
    ):
        raise ValidationError(
            f"{field}.step must be a number in (0, high - low], got {step!r}", field=field
        )
    return Dimension(
        name=name, kind="float", low=low, high=high, step=None if step is None else float(step)
    )


def parse_constraints(raw: Any, *, names: Sequence[str]) -> tuple[Constraint, ...]:
    """Parse ``["fast < slow", "period >= 5"]``; every name must be a strategy parameter.

    Raises:
        ValidationError: ``field="constraints.<i>"`` with the accepted form.
    """
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ValidationError(
            'constraints must be a list of strings such as "fast < slow"', field="constraints"
        )
    out = []
    for i, text in enumerate(raw):
        field = f"constraints.{i}"
        match = _CONSTRAINT.match(text) if isinstance(text, str) else None
        if match is None:
            raise ValidationError(
                f"{field} {text!r} is not NAME|NUMBER OP NAME|NUMBER with OP one of "
                f'{" ".join(OPS)} (e.g. "fast < slow")',
                field=field,
            )
        left, op, right = (_side(match.group(1)), match.group(2), _side(match.group(3)))
        for side in (left, right):
            if isinstance(side, str) and side not in names:
                raise ValidationError(
                    f"{field} names '{side}', not a parameter; parameters: {', '.join(names)}",
                    field=field,
                )
        if not isinstance(left, str) and not isinstance(right, str):
            raise ValidationError(f"{field} compares two numbers: name a parameter", field=field)
        out.append(Constraint(left=left, op=op, right=right))
    return tuple(out)


def _side(text: str) -> str | float:
    return text if text[0].isalpha() or text[0] == "_" else float(text)


def feasible(
    strategy: Strategy, constraints: Sequence[Constraint], params: Mapping[str, Any]
) -> str | None:
    """Return why ``params`` (every parameter) break a constraint, or None when feasible."""
    for c in constraints:
        if not c.holds(params):
            return f"breaks {c}"
    try:
        strategy.check(params)
    except ValidationError as exc:
        return exc.message
    return None


def grid_size(dims: Mapping[str, Dimension]) -> float:
    """How many points the grid of ``dims`` has before constraints."""
    return math.prod(d.size() for d in dims.values())


def grid(
    strategy: Strategy,
    dims: Mapping[str, Dimension],
    constraints: Sequence[Constraint],
    fixed: Mapping[str, Any],
) -> Iterator[dict[str, Any]]:
    """Yield every feasible grid point (searched parameters only), in lexicographic order."""
    names = list(dims)
    for combo in itertools.product(*(dims[n].points() for n in names)):
        point = dict(zip(names, combo, strict=True))
        if feasible(strategy, constraints, {**fixed, **point}) is None:
            yield point


def sample(
    strategy: Strategy,
    dims: Mapping[str, Dimension],
    constraints: Sequence[Constraint],
    fixed: Mapping[str, Any],
    *,
    n: int,
    rng: np.random.Generator,
) -> list[dict[str, Any]]:
    """Draw ``n`` feasible points uniformly (rejecting infeasible draws).

    Raises:
        ValidationError: when fewer than 1 in 1,000 draws is feasible (``field="constraints"``).
    """
    out: list[dict[str, Any]] = []
    drawn = 0
    while len(out) < n:
        want = max(64, 2 * (n - len(out)))
        columns = {name: d.draw(rng, want) for name, d in dims.items()}
        for i in range(want):
            point = {name: columns[name][i] for name in dims}
            if feasible(strategy, constraints, {**fixed, **point}) is None:
                out.append(point)
                if len(out) == n:
                    break
        drawn += want
        if drawn >= 1000 * max(n, 1) and len(out) < n:
            raise ValidationError(
                "fewer than 1 in 1,000 random points meets the constraints; widen space",
                field="constraints",
            )
    return out
