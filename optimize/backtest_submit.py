"""Submitting a backtest job: resolve its instruments against the catalog, check they can
run, and turn the spec into a catalog row (and back).

Instruments: a list names canonical ids or bare symbols with one listing
(:func:`core.instruments.resolve`: an ambiguous symbol is an ``AmbiguousInstrument``
error listing the candidates, an unknown one suggests close ids); a universe or ``all``
takes the catalog's valid listings. An explicitly named instrument without stored bars of
the job's bar size is refused with the command that collects them; of a universe, such
instruments get an error row when the job runs. Each instrument keeps its listing's
currency, which prices ``commission="ibkr"``; a portfolio over several currencies is
refused as the engine refuses it (no FX rates).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

import pandas as pd

from core.errors import NotFound, ValidationError
from core.instruments import resolve
from optimize import spec_checks as check
from optimize.backtest_spec import BacktestSpec, Selection, parse_spec
from storage.bars import BarStore
from storage.catalog.records import BacktestRecord, SymbolRecord


def listings(catalog: Any, selection: Selection) -> list[SymbolRecord]:
    """Return the listings a selection names, in its order (universe/all: by id).

    Raises:
        AmbiguousInstrument: a bare symbol names several listings (``field="instruments"``).
        ValidationError: an unknown or invalid instrument, an unknown or empty universe, or
            no valid listing at all (``field`` ``instruments`` or ``universe``).
    """
    if selection.everything:
        found = catalog.symbols.list(valid=True)
        if not found:
            raise ValidationError(
                "the catalog has no valid listings; run 'scizor symbols populate' and "
                "'scizor symbols validate' first",
                field="instruments",
            )
        return sorted(found, key=lambda r: r.id)
    if selection.universe is not None:
        return _universe(catalog, selection.universe)
    every = {r.id: r for r in catalog.symbols.list()}
    names = {i: r.name for i, r in every.items()}
    chosen = []
    for text in selection.instruments:
        try:
            record = every[resolve(text, names, field="instruments")]
        except NotFound as exc:
            raise ValidationError(str(exc), field="instruments") from None
        if record.valid is False:
            raise ValidationError(
                f"{record.id} was found invalid by IB ('scizor symbols validate'); remove it "
                "from instruments",
                field="instruments",
            )
        chosen.append(record)
    return list({r.id: r for r in chosen}.values())


def _universe(catalog: Any, name: str) -> list[SymbolRecord]:
    every = catalog.symbols.list()
    universes = sorted({r.universe for r in every if r.universe})
    wanted = next((u for u in universes if u.lower() == name.lower()), None)
    if wanted is None:
        close = difflib.get_close_matches(name.lower(), universes, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(universes)}"
        if not universes:
            hint = "the catalog has none: run 'scizor symbols populate'"
        raise ValidationError(f"universe {name!r} is not in the catalog; {hint}", field="universe")
    found = sorted((r for r in every if r.universe == wanted and r.valid), key=lambda r: r.id)
    if not found:
        raise ValidationError(
            f"universe {wanted!r} has no valid listings; run 'scizor symbols validate'",
            field="universe",
        )
    return found


def check_bars(spec: BacktestSpec, chosen: Sequence[SymbolRecord], bar_store: str) -> None:
    """Refuse a job whose instruments have no stored bars of its bar size.

    Named instruments (and every instrument of a portfolio) must have bars; of a universe
    or ``all``, at least one must.

    Raises:
        ValidationError: naming ``instruments`` and the collect command.
    """
    store = BarStore(bar_store)
    stored = set(store.instruments(spec.bar_size))
    missing = [r.id for r in chosen if r.id not in stored]
    named = not spec.selection.everything and spec.selection.universe is None
    every = named or spec.options.mode == "portfolio"  # else one instrument is enough
    if missing and (every or len(missing) == len(chosen)):
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ValidationError(
            f"no {spec.bar_size} bars of {missing[0]}{more} are stored; collect them with: "
            f"scizor collect history {missing[0]} --bar-size {spec.bar_size}",
            field="instruments",
        )
    if spec.start is None and spec.end is None:
        return
    lo = pd.Timestamp(spec.start) if spec.start is not None else pd.Timestamp.min.tz_localize("UTC")
    hi = pd.Timestamp(spec.end) if spec.end is not None else pd.Timestamp.max.tz_localize("UTC")
    outside = [
        r.id
        for r in chosen
        if r.id in stored
        and not any(a < hi and b > lo for a, b in store.coverage(r.id, spec.bar_size))
    ]
    if outside and (every or len(outside) == len(chosen) - len(missing)):
        more = f" (and {len(outside) - 1} more)" if len(outside) > 1 else ""
        field = "start" if spec.start is not None else "end"
        raise ValidationError(
            f"no stored {spec.bar_size} bars of {outside[0]}{more} fall in "
            f"[{_day(spec.start)}, {_day(spec.end)}); choose dates inside what was collected "
            f"(scizor bars {outside[0]} --bar-size {spec.bar_size} shows it), or collect "
            f"that range with: scizor collect history {outside[0]} --bar-size {spec.bar_size}",
            field=field,
        )


def _day(moment: datetime | None) -> str:
    return "..." if moment is None else moment.isoformat()


def check_currencies(spec: BacktestSpec, chosen: Sequence[SymbolRecord]) -> None:
    """Let the engine check the job's costs in each instrument's currency (``ibkr`` has
    schedules for some currencies only), and a portfolio's mix of currencies.

    Raises:
        ValidationError: the engine's error, naming the spec field.
    """
    strategy = spec.build_strategy()
    codes = sorted({r.currency for r in chosen})
    for code in codes:
        check.engine_check(strategy, spec.params, spec.engine_kwargs(currency=code))
    if spec.options.mode == "portfolio":
        one_each = {next(r.id for r in chosen if r.currency == c): c for c in codes}
        check.portfolio_check(strategy, spec.params, spec.engine_kwargs(), one_each)


def record_fields(spec: BacktestSpec, chosen: Sequence[SymbolRecord]) -> dict[str, Any]:
    """Return the keyword arguments of ``catalog.backtests.create`` for this job."""
    selection = spec.selection.to_json()
    if spec.selection.universe is not None:  # as the catalog spells it
        selection = {"universe": chosen[0].universe or spec.selection.universe}
    options = asdict(spec.options) | {
        "kind": spec.kind,
        "rules": spec.rules,
        "selection": selection,
        "currencies": {r.id: r.currency for r in chosen},
    }
    return {
        "strategy": spec.strategy,
        "instruments": [r.id for r in chosen],
        "bar_size": spec.bar_size,
        "params": dict(spec.params),
        "start": spec.start,
        "end": spec.end,
        "costs": asdict(spec.costs),
        "options": options,
    }


def spec_of(record: BacktestRecord) -> tuple[BacktestSpec, dict[str, str]]:
    """Rebuild a stored job's spec (checked again) and its instruments' currencies."""
    options = dict(record.options)
    rules = options.pop("rules", None)
    currencies: Mapping[str, str] = options.pop("currencies", None) or {}
    for extra in ("kind", "selection"):
        options.pop(extra, None)
    data: dict[str, Any] = {
        "instruments": list(record.instruments),
        "bar_size": record.bar_size,
        "start": record.start,
        "end": record.end,
        "costs": record.costs,
        "options": options,
    }
    if rules is not None:
        data["rules"] = rules
    else:
        data |= {"strategy": record.strategy, "params": record.params}
    return parse_spec(data), dict(currencies)
