"""The symbol service against a real catalog (SQLite and PostgreSQL) and a fake IB lookup."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cluster.symbols import SymbolService
from core.clock import ManualClock
from core.errors import NotConnected, NotFound, ValidationError
from core.instruments import AmbiguousInstrument
from core.types import Instrument

T0 = datetime(2025, 1, 6, 12, tzinfo=UTC)


class FakeIB:
    """Answers contract-details lookups like IB: unknown symbols raise NotFound (error 200)."""

    def __init__(
        self,
        *,
        unknown: set[str] = frozenset(),
        down: set[str] = frozenset(),
        con_ids: dict[str, int] | None = None,
    ) -> None:
        self.unknown, self.down = set(unknown), set(down)
        self.con_ids = dict(con_ids or {})
        self.asked: list[str] = []

    def __call__(self, instruments: Sequence[Instrument]) -> list[Any]:
        out: list[Any] = []
        for inst in instruments:
            self.asked.append(inst.symbol)
            if inst.symbol in self.unknown:
                out.append(NotFound(f"No security definition has been found for {inst.symbol}"))
            elif inst.symbol in self.down:
                out.append(NotConnected())
            else:
                out.append(
                    {
                        "con_id": self.con_ids.get(inst.symbol, 1000 + len(self.asked)),
                        "long_name": f"{inst.symbol} Corp (IB)",
                        "primary_exchange": inst.primary_exchange or "NASDAQ",
                    }
                )
        return out


def service(catalog: Any, ib: FakeIB, clock: ManualClock) -> SymbolService:
    return SymbolService(catalog, lookup=ib, clock=clock)


def test_populate_inserts_universe_and_validates_removing_unknown(catalog: Any) -> None:
    ib, clock = FakeIB(unknown={"XBI", "ARKK"}), ManualClock(T0)
    report = service(catalog, ib, clock).populate(["etfs"])
    assert report.validation is not None
    n = report.upserted["etfs"]
    assert report.validation.checked == n == len(ib.asked)
    assert {r.symbol for r in report.validation.invalid} == {"XBI", "ARKK"}
    listed = service(catalog, ib, clock).list()
    assert len(listed) == n - 2 and all(r.valid for r in listed)
    assert {r.symbol for r in service(catalog, ib, clock).list(invalid=True)} == {"XBI", "ARKK"}
    spy = catalog.symbols.get("SPY")
    assert spy.con_id and spy.name == "SPY Corp (IB)" and spy.last_verified == T0


def test_populate_force_skips_validation_leaving_symbols_unverified(catalog: Any) -> None:
    ib = FakeIB()
    report = service(catalog, ib, ManualClock(T0)).populate(["etfs"], force=True)
    assert report.validation is None and ib.asked == []
    records = catalog.symbols.list()
    assert records and all(r.valid is None and r.last_verified is None for r in records)


def test_validate_skips_symbols_verified_within_90_days(catalog: Any) -> None:
    ib, clock = FakeIB(), ManualClock(T0)
    svc = service(catalog, ib, clock)
    total = svc.populate(["etfs"]).upserted["etfs"]
    clock.advance(timedelta(days=89).total_seconds())
    assert svc.validate().checked == 0
    assert svc.validate(force_revalidate=True).checked == total
    clock.advance(timedelta(days=90, seconds=1).total_seconds())
    assert svc.validate(limit=5).checked == 5
    assert svc.validate().checked == total - 5
    assert len(ib.asked) == 3 * total


def test_validate_leaves_symbols_unverified_when_the_gateway_fails(catalog: Any) -> None:
    ib, clock = FakeIB(down={"SPY"}), ManualClock(T0)
    svc = service(catalog, ib, clock)
    report = svc.populate(["etfs"]).validation
    assert report is not None and "NotConnected" in report.errors["SPY.ARCA"]
    assert catalog.symbols.get("SPY").valid is None
    ib.down.clear()
    assert [r.id for r in svc.validate().verified] == ["SPY.ARCA"]


def test_two_listings_with_one_contract_id_are_reported_not_fatal(catalog: Any) -> None:
    ib, clock = FakeIB(con_ids={"SPY": 42, "QQQ": 42}), ManualClock(T0)
    report = service(catalog, ib, clock).populate(["etfs"]).validation
    assert report is not None
    clash = [s for s in ("SPY.ARCA", "QQQ.NASDAQ") if "Conflict" in report.errors.get(s, "")]
    assert len(clash) == 1  # the second to claim con_id 42 is refused; the run goes on
    assert len(report.verified) > 10
    assert catalog.symbols.get(clash[0]).valid is None


def test_add_validates_first_and_refuses_unknown_symbols(catalog: Any) -> None:
    ib, clock = FakeIB(unknown={"NOPE"}), ManualClock(T0)
    svc = service(catalog, ib, clock)
    added = svc.add("bhp.asx")
    assert (added.id, added.primary_exchange, added.currency, added.valid) == (
        "BHP.ASX", "ASX", "AUD", True,
    )  # fmt: skip
    assert added.universe == "custom"
    with pytest.raises(NotFound, match="NOPE"):
        svc.add("NOPE.NYSE")
    with pytest.raises(ValidationError, match=r"SYMBOL\.VENUE") as err:
        svc.add("NOPE")  # a bare ticker does not say which listing
    assert err.value.field == "instrument"
    with pytest.raises(NotFound, match="known venues"):
        svc.add("BHP.LSE")
    assert [r.id for r in catalog.symbols.list()] == ["BHP.ASX"]
    assert svc.remove("BHP").id == "BHP.ASX"
    assert catalog.symbols.list() == []


def test_one_ticker_on_two_venues_is_two_listings_and_bare_use_is_refused(catalog: Any) -> None:
    svc = service(catalog, FakeIB(), ManualClock(T0))
    svc.populate(["asx200", "etfs"])
    ids = {r.id for r in svc.collectable()}
    assert {"VEA.ASX", "VEA.ARCA"} <= ids
    with pytest.raises(AmbiguousInstrument) as err:
        svc.remove("VEA")
    assert err.value.candidates == ["VEA.ARCA", "VEA.ASX"]
    assert str(err.value).startswith("VEA is ambiguous: VEA.ARCA (")
    assert {r.id for r in svc.collectable()} == ids  # nothing removed


def test_validate_rejects_bad_limit_and_needs_a_gateway(catalog: Any) -> None:
    with pytest.raises(ValidationError, match="limit"):
        service(catalog, FakeIB(), ManualClock(T0)).validate(limit=0)
    SymbolService(catalog, clock=ManualClock(T0)).populate(["etfs"], force=True)
    with pytest.raises(ValidationError, match="needs the IB gateway"):
        SymbolService(catalog, clock=ManualClock(T0)).validate()


def test_collectable_filters_valid_symbols_by_universe(catalog: Any) -> None:
    svc = service(catalog, FakeIB(unknown={"SPY"}), ManualClock(T0))
    svc.populate(["etfs", "nasdaq"])
    etfs = svc.collectable(["etfs"])
    assert etfs and {r.universe for r in etfs} == {"etfs"}
    assert "SPY" not in {r.symbol for r in etfs}
    assert len(svc.collectable()) == len(svc.list())
    svc.add("BHP.ASX")
    assert [r.id for r in svc.collectable(["custom"])] == ["BHP.ASX"]
    assert svc.collectable(["no-such-universe"]) == []
