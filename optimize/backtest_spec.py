"""The backtest job spec: which strategy, on which instruments, over which bars, at what cost.

A spec is plain JSON (the body of ``POST /backtests``, the file of ``scizor backtest --spec``);
strategies arrive as a library name with parameters or as a rule spec, never as code::

    {
      "strategy": "sma_cross", "params": {"fast": 10, "slow": 50},
      "instruments": ["AAPL.NASDAQ", "BHP"],
      "bar_size": "1d", "start": "2021-01-01", "end": "2025-01-01",
      "costs": {"cash": 100000, "commission": "ibkr", "slippage_bps": 2},
      "options": {"mode": "per_instrument", "sort": "sharpe", "size": 1.0,
                  "stop_loss_pct": null, "take_profit_pct": null, "allow_short": false,
                  "fill": "next_open", "margin": 1.0, "finalize_trades": false}
    }

* ``strategy`` + ``params`` (a library strategy, see ``strategies.list_strategies()``;
  parameters checked against their typed ranges, missing ones take their defaults), or
  ``rules``: a rule spec (see :mod:`strategies.rulespec`), whose ``name`` becomes the strategy
  name.
* ``instruments``: a list of canonical ids (``BHP.ASX``) or bare symbols naming one listing,
  or ``"all"`` (every valid listing); or ``universe`` instead (a universe of the catalog).
* ``bar_size`` (default ``1d``); ``start`` inclusive and ``end`` exclusive, as ``YYYY-MM-DD``
  or ISO-8601 times (UTC unless they say otherwise); absent means every stored bar.
* ``costs``: ``cash`` per account (per instrument in ``per_instrument`` mode), ``commission``
  a fraction of traded value or ``ibkr`` (Interactive Brokers' fixed pricing in each
  instrument's currency), ``slippage_bps``.
* ``options``: ``mode`` ``per_instrument`` (one account and one result per instrument,
  ranked) or ``portfolio`` (one account over all of them); ``sort``, the metric results are
  ranked by; ``size`` a fraction of equity, ``{"shares": 100}`` or ``{"vol_target": 0.15,
  "lookback": 20, "max_fraction": 1.0}``; stops in percent; ``allow_short``; ``fill``;
  ``margin``; ``finalize_trades``.

:func:`parse_spec` checks all of it without touching the catalog; every bad field is a
``ValidationError`` (``ParameterError`` for strategy parameters) whose ``field`` is the
path to it (``costs.slippage_bps``, ``params.fast``, ``rules.entry``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import strategies
from core.barsize import bar_size as parse_bar_size
from core.errors import NotFound, ParameterError, ValidationError
from optimize import spec_checks as check
from strategies.base import Strategy
from strategies.engine import FixedShares, Size, VolTarget
from strategies.rulespec import compile_rules

MODES = ("per_instrument", "portfolio")
FILLS = ("next_open", "close")
COMMISSIONS = ("ibkr", "ibkr_us", "ibkr_asx")
TOP_KEYS = (
    "strategy",
    "params",
    "rules",
    "instruments",
    "universe",
    "bar_size",
    "start",
    "end",
    "costs",
    "options",
)
COST_KEYS = ("cash", "commission", "slippage_bps")
OPTION_KEYS = (
    "mode",
    "sort",
    "size",
    "stop_loss_pct",
    "take_profit_pct",
    "allow_short",
    "fill",
    "margin",
    "finalize_trades",
)
MAX_INSTRUMENTS = 5000
MAX_PARAMS = 32


@dataclass(frozen=True, slots=True, kw_only=True)
class Costs:
    """Cash and trading costs of each account."""

    cash: float = 100_000.0
    commission: float | str = 0.0
    slippage_bps: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """How the job trades and reports (see the module docstring). ``size`` keeps its JSON
    form; :meth:`engine_size` turns it into the engine's sizing."""

    mode: str = "per_instrument"
    sort: str = "sharpe"
    size: float | dict[str, float] = 1.0
    stop_loss_pct: float | None = None
    take_profit_pct: float | None = None
    allow_short: bool | None = None
    fill: str = "next_open"
    margin: float = 1.0
    finalize_trades: bool = False

    def engine_size(self) -> Size:
        """Return ``size`` as the engine takes it (a fraction, FixedShares or VolTarget)."""
        if not isinstance(self.size, dict):
            return self.size
        if "shares" in self.size:
            return FixedShares(int(self.size["shares"]))
        return VolTarget(
            annual_vol=self.size["vol_target"],
            lookback=int(self.size.get("lookback", 20)),
            max_fraction=self.size.get("max_fraction", 1.0),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Selection:
    """Which instruments a job names, before the catalog resolves them: ``instruments`` as
    given, a ``universe``, or ``everything`` (``"all"``)."""

    instruments: tuple[str, ...] = ()
    universe: str | None = None
    everything: bool = False

    def to_json(self) -> Any:
        """The spec's own spelling: a list, ``"all"``, or ``{"universe": name}``."""
        if self.everything:
            return "all"
        if self.universe is not None:
            return {"universe": self.universe}
        return list(self.instruments)


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestSpec:
    """A checked backtest job spec (build it with :func:`parse_spec`).

    Attributes:
        strategy: The library strategy's name, or the rule spec's name.
        params: The strategy's parameters, every one resolved (defaults filled in).
        rules: The rule spec, for a rule-spec strategy (None for a library one).
        selection: The instruments as named (resolved against the catalog on submit).
        bar_size: ``1s 5s 30s 1m 5m 15m 30m 1h 1d``.
        start: First bar time (inclusive, UTC), or None for the first stored bar.
        end: Last bar time (exclusive, UTC), or None for the last stored bar.
        costs: Cash, commission and slippage.
        options: Mode, ranking metric, sizing, stops, shorts, fill, margin.
    """

    strategy: str
    params: dict[str, Any] = field(default_factory=dict)
    rules: dict[str, Any] | None = None
    selection: Selection
    bar_size: str = "1d"
    start: datetime | None = None
    end: datetime | None = None
    costs: Costs = field(default_factory=Costs)
    options: Options = field(default_factory=Options)

    @property
    def kind(self) -> str:
        """``library`` or ``rule_spec``."""
        return "library" if self.rules is None else "rule_spec"

    def build_strategy(self) -> Strategy:
        """Return the strategy to run (the library one, or the rules compiled)."""
        if self.rules is not None:
            return compile_rules(self.rules)
        return strategies.get(self.strategy)

    def engine_kwargs(self, *, currency: str | None = None) -> dict[str, Any]:
        """Keyword arguments of ``run_backtest`` (``currency`` for one instrument's run;
        leave it out for ``run_portfolio``)."""
        o = self.options
        kwargs: dict[str, Any] = {
            "cash": self.costs.cash,
            "commission": self.costs.commission,
            "slippage_bps": self.costs.slippage_bps,
            "fill": o.fill,
            "size": o.engine_size(),
            "stop_loss_pct": o.stop_loss_pct,
            "take_profit_pct": o.take_profit_pct,
            "allow_short": o.allow_short,
            "margin": o.margin,
            "finalize_trades": o.finalize_trades,
        }
        if currency is not None:
            kwargs["currency"] = currency
        return kwargs

    def to_json(self) -> dict[str, Any]:
        """Return the spec as JSON data; ``parse_spec(spec.to_json()) == spec``."""
        out: dict[str, Any] = {"strategy": self.strategy, "params": dict(self.params)}
        if self.rules is not None:
            out = {"rules": dict(self.rules)}
        if self.selection.universe is not None:
            out["universe"] = self.selection.universe
        else:
            out["instruments"] = self.selection.to_json()
        out["bar_size"] = self.bar_size
        out["start"] = None if self.start is None else self.start.isoformat()
        out["end"] = None if self.end is None else self.end.isoformat()
        out["costs"] = asdict(self.costs)
        out["options"] = asdict(self.options)
        return out


def parse_spec(data: Mapping[str, Any] | str | bytes) -> BacktestSpec:
    """Check a job spec (a mapping or JSON text) and return it; nothing is stored.

    Raises:
        ValidationError: a bad field, named by its path, with the fix in the message.
        ParameterError: a strategy parameter unknown (with "did you mean") or out of range.
        AmbiguousInstrument: never here (instruments are resolved on submit).
    """
    spec = check.json_object(data, what="backtest spec", holds="strategy, instruments, ...")
    check.check_json(spec, what="the backtest spec", field="spec", limit=check.MAX_SPEC_BYTES)
    check.known_keys(spec, TOP_KEYS)
    strategy, params, rules = _strategy(spec)
    start = check.moment(spec.get("start"), field="start")
    end = check.moment(spec.get("end"), field="end")
    if start is not None and end is not None and not start < end:
        raise ValidationError(
            f"start {start:%Y-%m-%d %H:%M} must be before end {end:%Y-%m-%d %H:%M} (end is "
            "exclusive)",
            field="end",
        )
    parsed = BacktestSpec(
        strategy=strategy.name,
        params=params,
        rules=rules,
        selection=_selection(spec),
        bar_size=parse_bar_size(spec.get("bar_size") or "1d").name,
        start=start,
        end=end,
        costs=_costs(check.section(spec, "costs")),
        options=_options(check.section(spec, "options")),
    )
    check.engine_check(strategy, params, parsed.engine_kwargs())
    return parsed


def _strategy(spec: Mapping[str, Any]) -> tuple[Strategy, dict[str, Any], dict[str, Any] | None]:
    rules, name = spec.get("rules"), spec.get("strategy")
    params = check.section(spec, "params")
    if len(params) > MAX_PARAMS:
        raise ParameterError(f"params has more than {MAX_PARAMS} entries", field="params")
    if rules is not None:
        return _rule_strategy(rules, name, params)
    if name is None:
        raise ValidationError(
            "name a strategy (strategy: a library name such as 'sma_cross', with params) or "
            "give rules (a rule spec)",
            field="strategy",
        )
    try:
        strategy = strategies.get(name)
    except (NotFound, ParameterError) as exc:
        raise ParameterError(f"{exc}", field="strategy") from None
    try:
        return strategy, strategy.resolve(params), None
    except ValidationError as exc:
        raise check.remap(exc) from None


def _rule_strategy(
    rules: Any, name: Any, params: Mapping[str, Any]
) -> tuple[Strategy, dict[str, Any], dict[str, Any]]:
    if name is not None:
        raise ValidationError(
            "give either strategy (a library name) or rules (a rule spec), not both; a rule "
            "spec is named by its own 'name'",
            field="strategy",
        )
    if not isinstance(rules, Mapping):
        raise ValidationError("rules must be a rule-spec object", field="rules")
    check.check_json(rules, what="the rule spec", field="rules", limit=check.MAX_RULES_BYTES)
    if params:
        raise ParameterError(
            "a rule-spec strategy has no parameters: write the numbers into its rules",
            field=f"params.{next(iter(params))}",
        )
    try:
        strategy = compile_rules(rules)
    except ValidationError as exc:
        raise ValidationError(exc.message, field=f"rules.{exc.field or 'spec'}") from None
    return strategy, {}, dict(rules)


def _selection(spec: Mapping[str, Any]) -> Selection:
    given, universe = spec.get("instruments"), spec.get("universe")
    if universe is not None:
        if given is not None:
            raise ValidationError("give instruments or universe, not both", field="universe")
        if not isinstance(universe, str) or not universe.strip():
            raise ValidationError("universe must be a universe name", field="universe")
        return Selection(universe=universe.strip())
    if isinstance(given, str) and given.strip().lower() == "all":
        return Selection(everything=True)
    if not isinstance(given, list) or not given:
        raise ValidationError(
            "instruments must be a non-empty list of instrument ids (e.g. ['BHP.ASX']) or "
            "'all'; or give a universe instead",
            field="instruments",
        )
    if len(given) > MAX_INSTRUMENTS:
        raise ValidationError(
            f"instruments lists {len(given)}; the limit is {MAX_INSTRUMENTS} (use 'all')",
            field="instruments",
        )
    bad = [i for i in given if not isinstance(i, str) or not i.strip()]
    if bad:
        raise ValidationError(
            f"instruments must be strings like 'BHP.ASX', got {bad[0]!r}", field="instruments"
        )
    return Selection(instruments=tuple(dict.fromkeys(i.strip().upper() for i in given)))


# (low, high, low excluded) of every number of a spec, by its path.
RANGES: dict[str, tuple[float, float, bool]] = {
    "costs.cash": (0, 1e12, True),
    "costs.commission": (0, 0.0999, False),
    "costs.slippage_bps": (0, 999, False),
    "options.stop_loss_pct": (0, 99.99, True),
    "options.take_profit_pct": (0, 10_000, True),
    "options.margin": (0, 1, True),
    "options.size": (0, 1, True),
    "options.size.shares": (1, 1e9, False),
    "options.size.vol_target": (0, 10, True),
    "options.size.lookback": (2, 10_000, False),
    "options.size.max_fraction": (0, 1, True),
}


def _number(data: Mapping[str, Any], path: str, default: Any) -> Any:
    """Return the number at ``path`` (its last part a key of ``data``) checked against
    :data:`RANGES`; None stays None when ``default`` is None."""
    value = data.get(path.rsplit(".", 1)[1], default)
    if value is None and default is None:
        return None
    low, high, low_open = RANGES[path]
    return check.number(value, field=path, low=low, high=high, low_open=low_open)


def _costs(data: Mapping[str, Any]) -> Costs:
    check.known_keys(data, COST_KEYS, prefix="costs.")
    commission: Any = data.get("commission", 0.0)
    if isinstance(commission, str):
        commission = check.choice(commission, COMMISSIONS, field="costs.commission")
    else:
        commission = _number(data, "costs.commission", 0.0)
    return Costs(
        cash=_number(data, "costs.cash", 100_000.0),
        commission=commission,
        slippage_bps=_number(data, "costs.slippage_bps", 0.0),
    )


def _options(data: Mapping[str, Any]) -> Options:
    check.known_keys(data, OPTION_KEYS, prefix="options.")
    d, get = Options(), data.get
    finalize = check.flag(get("finalize_trades", False), field="options.finalize_trades")
    return Options(
        mode=check.choice(get("mode", d.mode), MODES, field="options.mode"),
        sort=check.choice(get("sort", d.sort), check.metric_names(), field="options.sort"),
        size=_size(get("size", d.size)),
        stop_loss_pct=_number(data, "options.stop_loss_pct", None),
        take_profit_pct=_number(data, "options.take_profit_pct", None),
        allow_short=check.flag(get("allow_short"), field="options.allow_short", optional=True),
        fill=check.choice(get("fill", d.fill), FILLS, field="options.fill"),
        margin=_number(data, "options.margin", d.margin),
        finalize_trades=bool(finalize),
    )


def _size(value: Any) -> float | dict[str, float]:
    where = "options.size"
    if not isinstance(value, Mapping):
        return float(_number({"size": value}, where, 1.0))
    if "shares" in value:
        check.known_keys(value, ("shares",), prefix=f"{where}.")
        shares = _number(value, f"{where}.shares", None)
        if shares != int(shares):
            raise ValidationError(f"{where}.shares must be a whole number", field=where)
        return {"shares": shares}
    check.known_keys(value, ("vol_target", "lookback", "max_fraction"), prefix=f"{where}.")
    if "vol_target" not in value:
        raise ValidationError(
            f"{where} is a fraction of equity (0.5), {{'shares': 100}} or "
            "{'vol_target': 0.15, 'lookback': 20, 'max_fraction': 1.0}",
            field=where,
        )
    return {
        "vol_target": _number(value, f"{where}.vol_target", None),
        "lookback": _number(value, f"{where}.lookback", 20),
        "max_fraction": _number(value, f"{where}.max_fraction", 1.0),
    }
