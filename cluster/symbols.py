"""The symbol universe service: populate from bundled lists, validate against IB, edit.

Validation asks IB for contract details of every symbol not verified within 90 days (or all
of them when forced), records ``con_id``, name and ``last_verified``, and marks the symbols
IB does not know (error 200) invalid: they leave the collectable universe (collection only
takes valid symbols) and stay in the catalog, with ``valid=False``, for the report and for
``scizor symbols list --invalid``. Other failures (a dropped gateway) leave a symbol
unverified, to be checked by the next validation.

The service is plain: IB is reached through a ``lookup`` callable, so unit tests pass a fake
and :func:`gateway_lookup` adapts the Ray gateway actor.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from cluster import universe
from core.clock import Clock, RealClock
from core.errors import Conflict, NotFound, ValidationError
from core.instruments import parse, venue
from core.types import Instrument, SecType
from storage.catalog import Catalog
from storage.catalog.records import SymbolRecord

MAX_AGE_DAYS = 90
"""A symbol verified more recently than this is not asked about again unless forced."""

Lookup = Callable[[Sequence[Instrument]], list[Any]]
"""``lookup(instruments) -> [details | exception, ...]`` aligned with its input."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidationReport:
    """What one validation pass did."""

    checked: int = 0
    verified: list[SymbolRecord] = field(default_factory=list)
    invalid: list[SymbolRecord] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    """Instrument id -> why IB could not be asked (retried next time)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PopulateReport:
    """What ``populate`` did: symbols upserted per universe, and the validation (if any)."""

    upserted: dict[str, int]
    validation: ValidationReport | None


class SymbolService:
    """Populate, validate, add, remove and list the symbols of the catalog.

    Args:
        catalog: A :class:`storage.catalog.Catalog`.
        lookup: Asks IB for contract details (see :data:`Lookup`); needed to validate.
        clock: Supplies "now" for ``last_verified`` and the 90-day rule.
        max_age_days: How long a verification stays fresh.
    """

    def __init__(
        self,
        catalog: Catalog,
        *,
        lookup: Lookup | None = None,
        clock: Clock | None = None,
        max_age_days: int = MAX_AGE_DAYS,
    ) -> None:
        self._catalog = catalog
        self._lookup = lookup
        self._clock = clock or RealClock()
        self._max_age_days = max_age_days

    def populate(
        self, universes: Sequence[str] | None = None, *, force: bool = False
    ) -> PopulateReport:
        """Insert the bundled universes' symbols, then validate what is due.

        Args:
            universes: Bundled universe names; all of them when empty.
            force: Skip validation: symbols are present but unverified.
        """
        members = universe.select(universes)
        records = [
            SymbolRecord(
                symbol=m.symbol,
                sec_type=m.sec_type,
                exchange=m.exchange,
                primary_exchange=m.primary_exchange,
                currency=m.currency,
                name=m.name,
                universe=m.universe,
            )
            for m in members
        ]
        self._catalog.symbols.upsert_many(records, at=self._clock.now())
        upserted: dict[str, int] = {}
        for m in members:
            upserted[m.universe] = upserted.get(m.universe, 0) + 1
        validation = None if force else self.validate()
        return PopulateReport(upserted=upserted, validation=validation)

    def validate(
        self, *, force_revalidate: bool = False, limit: int | None = None
    ) -> ValidationReport:
        """Ask IB about every symbol due for validation and record the answers.

        Args:
            force_revalidate: Check every symbol, however recently verified.
            limit: Check at most this many (never-verified first, then the stalest).
        """
        if limit is not None and limit < 1:
            raise ValidationError(f"limit must be at least 1; got {limit}", field="limit")
        due = self._catalog.symbols.due_for_validation(
            max_age_days=self._max_age_days,
            now=self._clock.now(),
            force=force_revalidate,
            limit=limit,
        )
        if not due:
            return ValidationReport()
        answers = self._require_lookup()([r.instrument for r in due])
        report = ValidationReport(checked=len(due))
        for record, answer in zip(due, answers, strict=True):
            self._record(record, answer, report)
        return report

    def add(self, instrument: str, *, validate: bool = True) -> SymbolRecord:
        """Add one listing by canonical id (universe ``custom``); validate it now unless told
        not to. The venue gives its currency and IB routing (:data:`core.instruments.VENUES`).

        Raises:
            ValidationError: if ``instrument`` is not ``SYMBOL.VENUE``.
            NotFound: if the venue is unknown, or IB does not know the listing (nothing is
                added).
        """
        parsed = parse(instrument)
        place = venue(parsed.venue)
        record = SymbolRecord(
            symbol=parsed.symbol, exchange=place.routing, primary_exchange=place.code,
            currency=place.currency, universe="custom",
        )  # fmt: skip
        if validate:
            (answer,) = self._require_lookup()([record.instrument])
            if isinstance(answer, Exception):
                if isinstance(answer, NotFound):
                    raise NotFound(f"IB has no contract for {parsed} ({place.currency})")
                raise answer
            record = _verified(record, answer, at=self._clock.now())
        self._catalog.symbols.upsert_many([record], at=self._clock.now())
        return self._catalog.symbols.get(record.id)

    def remove(self, instrument: str) -> SymbolRecord:
        """Delete a listing from the catalog (its stored bars are kept).

        Raises:
            AmbiguousInstrument: if a bare symbol names several listings.
        """
        return self._catalog.symbols.delete(instrument)

    def list(
        self, *, universe: str | None = None, invalid: bool = False
    ) -> builtins.list[SymbolRecord]:
        """Return the collectable symbols (valid or not yet checked), or the invalid ones."""
        records = self._catalog.symbols.list(universe=universe)
        if invalid:
            return [r for r in records if r.valid is False]
        return [r for r in records if r.valid is not False]

    def collectable(self, universes: Sequence[str] | None = None) -> builtins.list[SymbolRecord]:
        """Return the valid symbols of the given universes (all when empty)."""
        records = self._catalog.symbols.list(valid=True)
        if not universes:
            return records
        wanted = {universe_key(u) for u in universes}
        return [r for r in records if r.universe in wanted]

    def _record(self, record: SymbolRecord, answer: Any, report: ValidationReport) -> None:
        if isinstance(answer, NotFound):
            report.invalid.append(
                self._catalog.symbols.mark_invalid(record.id, at=self._clock.now())
            )
        elif isinstance(answer, Exception):
            report.errors[record.id] = f"{type(answer).__name__}: {answer}"
        else:
            done = _verified(record, answer, at=self._clock.now())
            details = {"name": done.name} if done.name else {}
            try:
                verified = self._catalog.symbols.mark_verified(
                    record.id, con_id=done.con_id or 0, at=done.last_verified, details=details
                )
            except Conflict as exc:  # e.g. two listings resolving to one contract id
                report.errors[record.id] = f"{type(exc).__name__}: {exc}"
                return
            report.verified.append(verified)

    def _require_lookup(self) -> Lookup:
        if self._lookup is None:
            raise ValidationError("validation needs the IB gateway; none was given", field="lookup")
        return self._lookup


def universe_key(name: str) -> str:
    """A bundled universe's canonical name, or ``name`` itself for catalog-only universes."""
    from cluster.universes import canonical_name

    try:
        return canonical_name(name)
    except ValidationError:
        return name


def _verified(record: SymbolRecord, answer: Any, *, at: Any) -> SymbolRecord:
    """``record`` updated from IB's contract details (a dict, dataclass or Instrument)."""
    con_id = _field(answer, "con_id", "conId")
    if not con_id:
        raise ValidationError(f"IB answered {record.symbol} without a con_id", field="con_id")
    name = _field(answer, "long_name", "longName", "name") or record.name
    primary = _field(answer, "primary_exchange", "primaryExchange") or record.primary_exchange
    sec_type = _field(answer, "sec_type", "secType")
    return replace(
        record,
        con_id=int(con_id),
        name=str(name),
        primary_exchange=str(primary),
        sec_type=SecType(str(sec_type)) if str(sec_type) in ("STK", "ETF") else record.sec_type,
        valid=True,
        last_verified=at,
    )


def _field(answer: Any, *names: str) -> Any:
    for name in names:
        value = answer.get(name) if isinstance(answer, dict) else getattr(answer, name, None)
        if value not in (None, ""):
            return value
        nested = answer.get("contract") if isinstance(answer, dict) else None
        if nested is not None:
            found = _field(nested, name)
            if found not in (None, ""):
                return found
    return None


def gateway_lookup(gateway: Any, *, window: int = 32, timeout: float = 120.0) -> Lookup:
    """Adapt the gateway actor: ask ``contract_details`` for many instruments at once.

    At most ``window`` requests are in flight; the actor paces them. Each answer is the
    details record, or the exception the gateway raised (NotFound for error 200).
    """
    import ray

    from core.errors import NotConnected

    def lookup(instruments: Sequence[Instrument]) -> list[Any]:
        out: list[Any] = [None] * len(instruments)
        pending: dict[Any, int] = {}
        queue = list(enumerate(instruments))
        while queue or pending:
            while queue and len(pending) < window:
                index, inst = queue.pop(0)
                pending[gateway.contract_details.remote(inst)] = index
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=timeout)
            if not ready:
                for ref, index in pending.items():
                    out[index] = TimeoutError(f"no answer from the gateway in {timeout:.0f} s")
                    ray.cancel(ref)
                pending.clear()
                continue
            for ref in ready:
                index = pending.pop(ref)
                try:
                    out[index] = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    out[index] = exc.cause if isinstance(exc.cause, Exception) else exc
                except ray.exceptions.RayActorError as exc:
                    out[index] = NotConnected(f"gateway actor unavailable: {exc}")
        return out

    return lookup
