"""Unit tests of the pre-trade risk engine (actors.risk_rules, risk_limits, risk_state).

Plain classes, no Ray. Trading hours use real exchange_calendars sessions (XASX, XNAS).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest

from actors.risk_limits import LimitBook, RiskLimits
from actors.risk_rules import Decision, RiskContext, RiskEngine, exchange_open
from actors.risk_state import SYSTEM, KillSwitch, TradingState
from core.errors import Conflict, RiskRejected, ValidationError
from core.types import Order, OrderType, Side

D = Decimal
# Thursday 24 April 2025, 12:00 in Sydney: the ASX is open.
T0 = datetime(2025, 4, 24, 2, 0, tzinfo=UTC)


def order(
    side: str = "BUY",
    qty: str | int = 100,
    *,
    instrument: str = "BHP.ASX",
    limit: str | None = None,
    deployment: int | None = None,
    order_type: OrderType | None = None,
) -> Order:
    kind = order_type or (OrderType.MARKET if limit is None else OrderType.LIMIT)
    return Order(
        instrument=instrument,
        side=Side(side),
        quantity=D(qty),
        order_type=kind,
        limit_price=None if limit is None else D(limit),
        deployment_id=deployment,
    )


def ctx(**kwargs: Any) -> RiskContext:
    kwargs.setdefault("now", T0)
    kwargs.setdefault("last_prices", {"BHP.ASX": D(40), "CBA.ASX": D(150)})
    return RiskContext(**kwargs)


def engine(**limits: Any) -> RiskEngine:
    return RiskEngine(LimitBook(global_=RiskLimits.from_mapping(limits)))


def breached(decision: Decision) -> list[str]:
    return [b.limit for b in decision.breaches]


# --- each limit: accepted at the boundary, refused one step beyond -------------------------


def test_no_limits_accepts_any_order() -> None:
    decision = RiskEngine().check(order(qty=10**9), ctx(last_prices={}))
    assert decision.accepted
    assert decision.message == "accepted"


@pytest.mark.parametrize(("qty", "accepted"), [("1000", True), ("1000.0001", False)])
def test_max_order_quantity_boundary(qty: str, accepted: bool) -> None:
    decision = engine(max_order_quantity=1000).check(order(qty=qty), ctx())
    assert decision.accepted is accepted
    assert breached(decision) == ([] if accepted else ["max_order_quantity"])
    if not accepted:
        assert decision.message == "order quantity 1,000.0001 exceeds max_order_quantity 1,000"


@pytest.mark.parametrize(("price", "accepted"), [("100", True), ("100.01", False)])
def test_max_order_notional_uses_the_limit_price(price: str, accepted: bool) -> None:
    decision = engine(max_order_notional=100_000).check(order(qty=1000, limit=price), ctx())
    assert decision.accepted is accepted
    if not accepted:
        (breach,) = decision.breaches
        assert breach.message == "order notional 100,010.00 exceeds max_order_notional 100,000"
        assert (breach.limit_value, breach.observed) == (D(100_000), D("100010.00"))


def test_max_order_notional_of_a_market_order_uses_the_last_price() -> None:
    risk = engine(max_order_notional=4000)
    assert risk.check(order(qty=100), ctx()).accepted  # 100 x 40
    assert breached(risk.check(order(qty=101), ctx())) == ["max_order_notional"]


def test_max_order_notional_without_any_price_refuses_the_market_order() -> None:
    decision = engine(max_order_notional=4000).check(order(qty=1), ctx(last_prices={}))
    (breach,) = decision.breaches
    assert breach.observed is None
    assert "BHP.ASX's price is unknown" in breach.message


@pytest.mark.parametrize(
    ("held", "side", "qty", "accepted"),
    [
        ("600", "BUY", "400", True),  # ends at 1000
        ("600", "BUY", "401", False),
        ("-600", "SELL", "400", True),  # ends at -1000
        ("-600", "SELL", "401", False),
        ("1500", "SELL", "200", True),  # above the limit, but reducing
        ("1500", "SELL", "3000", False),  # crosses flat into a new short of 1500
        ("0", "SELL", "1001", False),
    ],
)
def test_max_position_is_absolute_and_lets_reducing_orders_through(
    held: str, side: str, qty: str, accepted: bool
) -> None:
    context = ctx(positions={"BHP.ASX": D(held)})
    decision = engine(max_position=1000).check(order(side, qty), context)
    assert decision.accepted is accepted
    assert breached(decision) == ([] if accepted else ["max_position"])


# BHP 1000 x 40 = 40,000 long, CBA -100 x 150 = 15,000 short: gross 55,000, net 25,000.
BOOK = {"BHP.ASX": D(1000), "CBA.ASX": D(-100)}


@pytest.mark.parametrize(
    ("limits", "qty", "accepted"),
    [
        ({"max_gross_exposure": 60_000}, 125, True),  # 60,000
        ({"max_gross_exposure": 60_000}, 126, False),  # 60,040
        ({"max_net_exposure": 30_000}, 125, True),  # 30,000
        ({"max_net_exposure": 30_000}, 126, False),
    ],
)
def test_exposure_after_the_order_boundary(
    limits: dict[str, int], qty: int, accepted: bool
) -> None:
    decision = engine(**limits).check(order(qty=qty), ctx(positions=BOOK))
    assert decision.accepted is accepted
    if not accepted:
        (breach,) = decision.breaches
        assert breach.limit == next(iter(limits))
        assert breach.observed in (D(60_040), D(30_040))


def test_exposure_an_order_that_lowers_an_over_limit_exposure_passes() -> None:
    risk = engine(max_gross_exposure=50_000, max_net_exposure=20_000)
    assert risk.check(order("SELL", 100), ctx(positions=BOOK)).accepted  # 51,000 / 21,000
    assert breached(risk.check(order("BUY", 1), ctx(positions=BOOK))) == [
        "max_gross_exposure",
        "max_net_exposure",
    ]


def test_exposure_a_position_without_a_last_price_refuses_the_order() -> None:
    context = ctx(positions={**BOOK, "WES.ASX": D(10)})
    decision = engine(max_gross_exposure=10**9).check(order(qty=1), context)
    (breach,) = decision.breaches
    assert "the last price of WES.ASX is unknown" in breach.message


def test_allowed_instruments_refuses_others() -> None:
    risk = engine(allowed_instruments=["bhp.asx"])
    assert risk.check(order(), ctx()).accepted
    decision = risk.check(order(instrument="CBA.ASX"), ctx())
    assert breached(decision) == ["allowed_instruments"]
    assert decision.breaches[0].message == "CBA.ASX is not in allowed_instruments (BHP.ASX)"


@pytest.mark.parametrize(
    ("side", "price", "accepted"),
    [
        ("BUY", "42", True),  # 5% above 40
        ("BUY", "42.01", False),
        ("BUY", "38", True),
        ("SELL", "38", True),  # 5% below
        ("SELL", "37.99", False),
        ("SELL", "42.01", False),
    ],
)
def test_price_band_fat_finger_on_limit_prices(side: str, price: str, accepted: bool) -> None:
    decision = engine(price_band_pct=5).check(order(side, limit=price), ctx())
    assert decision.accepted is accepted
    if not accepted:
        assert breached(decision) == ["price_band_pct"]
        assert f"{side} limit price {D(price):,.2f} is" in decision.breaches[0].message


def test_price_band_without_a_last_price_refuses_market_orders() -> None:
    risk = engine(price_band_pct=5)
    assert risk.check(order(), ctx()).accepted
    decision = risk.check(order(), ctx(last_prices={}))
    assert breached(decision) == ["price_band_pct"]
    assert "last price of BHP.ASX is unknown" in decision.message


@pytest.mark.parametrize(
    ("equity", "accepted"), [("95000", True), ("94999.99", False), (None, False)]
)
def test_max_daily_loss_from_the_context(equity: str | None, accepted: bool) -> None:
    context = ctx(equity=None if equity is None else D(equity), day_start_equity=D(100_000))
    decision = engine(max_daily_loss=5000).check(order(), context)
    assert decision.accepted is accepted
    assert breached(decision) == ([] if accepted else ["max_daily_loss"])


@pytest.mark.parametrize(("equity", "accepted"), [("180000", True), ("179999.99", False)])
def test_max_drawdown_pct_from_the_high_water_mark(equity: str, accepted: bool) -> None:
    context = ctx(equity=D(equity), high_water_mark=D(200_000))
    decision = engine(max_drawdown_pct=10).check(order(), context)
    assert decision.accepted is accepted
    assert breached(decision) == ([] if accepted else ["max_drawdown_pct"])


def test_every_breach_is_reported_together() -> None:
    risk = engine(
        max_order_quantity=500,
        max_order_notional=20_000,
        max_position=800,
        price_band_pct=10,
        allowed_instruments=["CBA.ASX"],
    )
    decision = risk.check(order(qty=1000, limit="50"), ctx())
    assert breached(decision) == [
        "allowed_instruments",
        "max_order_quantity",
        "max_order_notional",
        "price_band_pct",
        "max_position",
    ]
    assert "order quantity 1,000 exceeds max_order_quantity 500" in decision.message
    with pytest.raises(RiskRejected, match="max_order_notional 20,000"):
        decision.raise_if_rejected()
    json.dumps([b.to_mapping() for b in decision.breaches])


# --- orders per minute -------------------------------------------------------------------


def test_orders_per_minute_window_slides() -> None:
    sent = [T0 - timedelta(seconds=s) for s in (50, 30, 10)]
    risk = engine(max_orders_per_minute=3)
    assert breached(risk.check(order(), ctx(recent_orders={None: sent}))) == [
        "max_orders_per_minute"
    ]
    # the oldest (T0-50s) leaves the window once it is exactly a minute old
    just_before = ctx(now=T0 + timedelta(seconds=10, microseconds=-1), recent_orders={None: sent})
    assert not risk.check(order(), just_before).accepted
    at_a_minute = ctx(now=T0 + timedelta(seconds=10), recent_orders={None: sent})
    assert risk.check(order(), at_a_minute).accepted
    # orders of every deployment count against the account's limit
    spread = {None: sent[:1], 7: sent[1:2], 8: sent[2:]}
    assert not risk.check(order(deployment=9), ctx(recent_orders=spread)).accepted


def test_orders_per_minute_a_deployment_override_counts_its_own_orders() -> None:
    book = LimitBook(
        global_=RiskLimits(max_orders_per_minute=100),
        per_deployment={7: RiskLimits(max_orders_per_minute=2)},
    )
    risk = RiskEngine(book)
    recent = {7: [T0 - timedelta(seconds=5)] * 2, 8: [T0 - timedelta(seconds=5)] * 2}
    decision = risk.check(order(deployment=7), ctx(recent_orders=recent))
    assert breached(decision) == ["max_orders_per_minute"]
    assert "order 3 of deployment 7" in decision.message
    assert risk.check(order(deployment=8), ctx(recent_orders=recent)).accepted
    assert risk.check(order(), ctx(recent_orders=recent)).accepted


# --- trading hours on real calendars -----------------------------------------------------


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("instrument", "at", "open_"),
    [
        ("BHP.ASX", "2025-04-26 02:00", False),  # Saturday
        ("BHP.ASX", "2025-04-23 23:59", False),  # 09:59 Sydney, before the open
        ("BHP.ASX", "2025-04-24 00:00", True),  # 10:00 Sydney, the open
        ("BHP.ASX", "2025-04-24 05:59", True),
        ("BHP.ASX", "2025-04-24 06:00", False),  # 16:00 Sydney, the close
        ("BHP.ASX", "2025-04-25 02:00", False),  # Anzac Day
        ("AAPL.NASDAQ", "2025-07-05 15:00", False),  # Saturday
        ("AAPL.NASDAQ", "2025-07-07 13:29", False),  # 09:29 New York
        ("AAPL.NASDAQ", "2025-07-07 13:30", True),
        ("AAPL.NASDAQ", "2025-07-07 19:59", True),
        ("AAPL.NASDAQ", "2025-07-07 20:00", False),  # 16:00, the close
        ("AAPL.NASDAQ", "2025-07-03 17:30", False),  # early close at 13:00 before the 4th
        ("AAPL.NASDAQ", "2025-07-04 15:00", False),  # Independence Day
    ],
)
def test_trading_hours_refuse_market_orders_outside_the_session(
    instrument: str, at: str, open_: bool
) -> None:
    assert exchange_open(instrument, utc(at)) is open_
    risk = engine(trading_hours=True)
    context = ctx(now=utc(at))
    decision = risk.check(order(instrument=instrument), context)
    assert decision.accepted is open_
    if not open_:
        assert breached(decision) == ["trading_hours"]
        assert f"{instrument}'s exchange is closed" in decision.message
    # a limit order may rest until the open
    assert risk.check(order(instrument=instrument, limit="40"), context).accepted
    # without the limit the session does not matter
    assert RiskEngine().check(order(instrument=instrument), context).accepted


def test_trading_hours_a_venue_without_a_calendar_is_refused() -> None:
    decision = engine(trading_hours=True).check(order(instrument="VOD.LSEX"), ctx())
    assert breached(decision) == ["trading_hours"]
    assert "VOD.LSEX's session is unknown" in decision.message


# --- global and per-deployment limits ----------------------------------------------------


def test_limit_book_effective_limit_is_the_stricter_of_global_and_deployment() -> None:
    book = LimitBook(
        global_=RiskLimits.from_mapping(
            {
                "max_order_notional": 100_000,
                "max_position": 500,
                "allowed_instruments": ["BHP.ASX", "CBA.ASX"],
            }
        ),
        per_deployment={
            7: RiskLimits.from_mapping(
                {
                    "max_order_notional": 50_000,
                    "max_position": 900,
                    "max_order_quantity": 10,
                    "allowed_instruments": ["CBA.ASX", "WES.ASX"],
                    "trading_hours": True,
                }
            )
        },
    )
    eff = book.effective(7)
    assert eff.max_order_notional == D(50_000)  # the deployment's is stricter
    assert eff.max_position == D(500)  # an override cannot loosen the global limit
    assert eff.max_order_quantity == D(10)  # set only by the deployment
    assert eff.allowed_instruments == frozenset({"CBA.ASX"})
    assert eff.trading_hours is True
    assert book.effective(8) == book.global_
    assert book.effective(None) == book.global_
    risk = RiskEngine(book)
    cba = order(qty=5, instrument="CBA.ASX", limit="150")
    assert risk.check(cba, ctx()).accepted
    assert breached(
        risk.check(order(qty=400, limit="150", instrument="CBA.ASX", deployment=7), ctx())
    ) == [
        "max_order_quantity",
        "max_order_notional",
    ]
    assert risk.check(
        order(qty=400, limit="150", instrument="CBA.ASX", deployment=8), ctx()
    ).accepted


# --- reading limits ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "field", "text"),
    [
        ({"max_order_notionl": 1}, "limits.max_order_notionl", "did you mean max_order_notional?"),
        ({"max_order_notional": -1}, "limits.max_order_notional", "must not be negative"),
        ({"max_daily_loss": "-500"}, "limits.max_daily_loss", "a loss limit is a positive"),
        ({"max_order_notional": float("nan")}, "limits.max_order_notional", "finite number"),
        ({"max_position": "Infinity"}, "limits.max_position", "finite number"),
        ({"max_position": "lots"}, "limits.max_position", "finite number"),
        ({"max_position": True}, "limits.max_position", "finite number"),
        ({"max_orders_per_minute": 2.5}, "limits.max_orders_per_minute", "whole number"),
        ({"trading_hours": "yes"}, "limits.trading_hours", "true or false"),
        ({"allowed_instruments": "BHP.ASX"}, "limits.allowed_instruments", "a list of"),
        ({"allowed_instruments": ["BHP"]}, "limits.allowed_instruments", "SYMBOL.VENUE"),
    ],
)
def test_risk_limits_from_mapping_names_the_bad_field(
    data: dict[str, Any], field: str, text: str
) -> None:
    with pytest.raises(ValidationError, match=text) as caught:
        RiskLimits.from_mapping(data)
    assert caught.value.field == field


def test_risk_limits_constructor_checks_as_from_mapping_does() -> None:
    with pytest.raises(ValidationError) as caught:
        RiskLimits(max_gross_exposure=D(-1))
    assert caught.value.field == "limits.max_gross_exposure"


def test_risk_limits_round_trip_through_json() -> None:
    limits = RiskLimits.from_mapping(
        {
            "max_order_quantity": 1000,
            "max_order_notional": "100000.50",
            "max_orders_per_minute": "30",
            "allowed_instruments": ["aapl.nasdaq", "BHP.ASX"],
            "trading_hours": True,
            "max_drawdown_pct": 7.5,
            "price_band_pct": None,
        }
    )
    assert limits.max_order_notional == D("100000.50")
    assert limits.max_orders_per_minute == 30
    assert limits.max_drawdown_pct == D("7.5")
    data = json.loads(json.dumps(limits.to_mapping()))
    assert data["allowed_instruments"] == ["AAPL.NASDAQ", "BHP.ASX"]
    assert data["price_band_pct"] is None
    assert RiskLimits.from_mapping(data) == limits


def test_limit_book_round_trip_and_errors_name_the_deployment() -> None:
    book = LimitBook(
        global_=RiskLimits(max_position=D(100)),
        per_deployment={7: RiskLimits(max_orders_per_minute=5)},
    )
    assert LimitBook.from_mapping(json.loads(json.dumps(book.to_mapping()))) == book
    with pytest.raises(ValidationError) as caught:
        LimitBook.from_mapping({"deployments": {"7": {"max_position": -5}}})
    assert caught.value.field == "limits.deployments.7.max_position"
    with pytest.raises(ValidationError) as caught:
        LimitBook.from_mapping({"deployments": {"seven": {}}})
    assert caught.value.field == "limits.deployments.seven"


def test_risk_context_canonicalizes_ids_and_refuses_bad_input() -> None:
    context = RiskContext(now=T0, positions={"bhp.asx": 5}, last_prices={"bhp.asx": "40.5"})
    assert context.positions == {"BHP.ASX": D(5)}
    assert context.last_prices == {"BHP.ASX": D("40.5")}
    with pytest.raises(ValidationError):
        RiskContext(now=datetime(2025, 4, 24, 2, 0))
    with pytest.raises(ValidationError) as caught:
        RiskContext(now=T0, last_prices={"BHP.ASX": float("nan")})
    assert caught.value.field == "last_prices[BHP.ASX]"


# --- kill switch ---------------------------------------------------------------------------


def test_kill_switch_trips_on_daily_loss_and_rejects_everything() -> None:
    risk = engine(max_daily_loss=5000)
    assert risk.observe_equity(D(100_000), T0) is None
    assert risk.observe_equity(D(95_000), T0 + timedelta(hours=1)) is None  # at the limit
    event = risk.observe_equity(D("94999.99"), T0 + timedelta(hours=2))
    assert event is not None
    assert (event.kind, event.limit, event.by) == ("halted", "max_daily_loss", SYSTEM)
    assert event.reason == "daily loss 5,000.01 exceeds max_daily_loss 5,000"
    assert risk.kill_switch.state is TradingState.HALTED
    decision = risk.check(order(qty=1), ctx().with_marks(risk.kill_switch.marks))
    assert breached(decision) == ["halted", "max_daily_loss"]
    assert "trading is halted" in decision.message
    assert "daily loss 5,000.01 exceeds max_daily_loss 5,000" in decision.message
    # without equity in the context the loss limit cannot be checked, which refuses too
    assert breached(risk.check(order(qty=1), ctx())) == ["halted", "max_daily_loss"]
    # recovering, or a new trading day, does not lift the halt
    assert risk.observe_equity(D(110_000), T0 + timedelta(days=1)) is None
    assert risk.kill_switch.halted


def test_kill_switch_daily_loss_restarts_each_trading_day() -> None:
    switch = KillSwitch()
    limit = {"max_daily_loss": D(5000)}
    switch.observe_equity(D(100_000), utc("2025-04-24 10:00"), **limit)
    assert switch.observe_equity(D(96_000), utc("2025-04-24 23:59"), **limit) is None
    # UTC midnight: the day starts again from 96,000, so 91,500 is a 4,500 loss
    assert switch.observe_equity(D(96_000), utc("2025-04-25 00:00"), **limit) is None
    assert switch.marks is not None
    assert (switch.marks.trading_day, switch.marks.day_start_equity) == (
        date(2025, 4, 25),
        D(96_000),
    )
    assert switch.observe_equity(D(91_500), utc("2025-04-25 01:00"), **limit) is None
    assert switch.observe_equity(D(90_999), utc("2025-04-25 02:00"), **limit) is not None


def test_kill_switch_trading_day_start_is_a_parameter() -> None:
    sydney = KillSwitch(timezone="Australia/Sydney")
    # 13:59 UTC is 23:59 in Sydney (AEST, UTC+10); 14:00 UTC starts the next day there
    assert sydney.trading_day(utc("2025-06-02 13:59")) == date(2025, 6, 2)
    assert sydney.trading_day(utc("2025-06-02 14:00")) == date(2025, 6, 3)
    late = KillSwitch(day_start=time(17, 0), timezone="America/New_York")
    assert late.trading_day(utc("2025-06-02 20:59")) == date(2025, 6, 1)  # 16:59 EDT
    assert late.trading_day(utc("2025-06-02 21:00")) == date(2025, 6, 2)
    assert KillSwitch().trading_day(utc("2025-06-02 23:59")) == date(2025, 6, 2)
    with pytest.raises(ValidationError):
        KillSwitch(timezone="Mars/Olympus")


def test_kill_switch_trips_on_drawdown_from_the_high_water_mark() -> None:
    risk = engine(max_drawdown_pct=10)
    risk.observe_equity(D(100_000), T0)
    risk.observe_equity(D(120_000), T0 + timedelta(days=1))  # the mark is kept across days
    assert risk.observe_equity(D(108_000), T0 + timedelta(days=2)) is None  # exactly 10%
    event = risk.observe_equity(D("107999.99"), T0 + timedelta(days=2, hours=1))
    assert event is not None
    assert event.limit == "max_drawdown_pct"
    assert "from the high-water mark 120,000.00" in event.reason
    assert not risk.check(order(), ctx()).accepted


def test_kill_switch_daily_high_water_mark_restarts_each_day() -> None:
    switch = KillSwitch(daily_high_water_mark=True)
    limit = {"max_drawdown_pct": D(10)}
    switch.observe_equity(D(120_000), T0, **limit)
    assert switch.observe_equity(D(100_000), T0 + timedelta(days=1), **limit) is None
    assert switch.marks is not None and switch.marks.high_water_mark == D(100_000)


def test_kill_switch_survives_serialize_and_restore_still_halted() -> None:
    risk = engine(max_daily_loss=1000)
    risk.observe_equity(D(50_000), T0)
    assert risk.observe_equity(D(48_000), T0 + timedelta(minutes=5)) is not None
    saved = json.dumps(risk.kill_switch.to_mapping())
    restored = KillSwitch.from_mapping(json.loads(saved))
    assert restored == risk.kill_switch
    assert restored.halted_at == T0 + timedelta(minutes=5)
    after_restart = RiskEngine(risk.book, kill_switch=restored)
    context = ctx().with_marks(restored.marks)
    assert breached(after_restart.check(order(qty=1), context)) == ["halted", "max_daily_loss"]
    # restored marks keep measuring from the same day start
    assert restored.marks is not None and restored.marks.day_start_equity == D(50_000)


def test_kill_switch_from_mapping_refuses_what_it_did_not_write() -> None:
    good = KillSwitch().to_mapping()
    with pytest.raises(ValidationError):
        KillSwitch.from_mapping({**good, "format": 99})
    with pytest.raises(ValidationError):
        KillSwitch.from_mapping({**good, "state": "PAUSED"})
    with pytest.raises(ValidationError):
        KillSwitch.from_mapping({**good, "state": "HALTED"})  # without halted_at
    with pytest.raises(ValidationError):
        KillSwitch.from_mapping({k: v for k, v in good.items() if k != "marks"})


def test_kill_switch_reset_only_by_an_explicit_call() -> None:
    risk = engine(max_daily_loss=1000)
    risk.observe_equity(D(50_000), T0)
    risk.observe_equity(D(48_000), T0 + timedelta(minutes=1))
    event = risk.kill_switch.reset(by="admin", now=T0 + timedelta(minutes=2))
    assert (event.kind, event.by) == ("reset", "admin")
    assert risk.kill_switch.state is TradingState.ACTIVE
    assert event.reason.startswith("reset after: daily loss 2,000.00")
    # no longer halted, but the day's loss is still beyond the limit: the check refuses
    # and the next observation trips the switch again
    marks = risk.kill_switch.marks
    assert breached(risk.check(order(), ctx().with_marks(marks))) == ["max_daily_loss"]
    assert risk.observe_equity(D(48_000), T0 + timedelta(minutes=3)) is not None
    # a rebased reset measures the day's loss from the last equity instead
    risk.kill_switch.reset(by="admin", now=T0 + timedelta(minutes=4), rebase=True)
    assert risk.check(order(), ctx().with_marks(risk.kill_switch.marks)).accepted
    assert risk.observe_equity(D(48_000), T0 + timedelta(minutes=5)) is None
    assert risk.observe_equity(D(47_000), T0 + timedelta(minutes=6)) is None  # 1,000: at it
    assert risk.observe_equity(D("46999.99"), T0 + timedelta(minutes=7)) is not None
    with pytest.raises(Conflict):
        KillSwitch().reset(by="admin", now=T0)


def test_emergency_stop_halts_records_flatten_and_rejects() -> None:
    risk = RiskEngine()
    event = risk.kill_switch.emergency_stop(
        "operator saw a runaway", by="alice", now=T0, flatten=True
    )
    assert (event.kind, event.by, event.flatten, event.limit) == (
        "emergency_stop",
        "alice",
        True,
        None,
    )
    assert json.loads(json.dumps(event.to_mapping()))["flatten"] is True
    assert risk.kill_switch.halted and risk.kill_switch.flatten
    decision = risk.check(order(), ctx())
    assert breached(decision) == ["halted"]
    assert "by alice" in decision.message and "runaway" in decision.message
    restored = KillSwitch.from_mapping(risk.kill_switch.to_mapping())
    assert (restored.halted_by, restored.flatten) == ("alice", True)
    # a halted switch ignores loss trips (it is already halted) but keeps the marks moving
    assert restored.observe_equity(D(1), T0, max_daily_loss=D(0)) is None
    assert restored.marks is not None and restored.marks.equity == D(1)
    with pytest.raises(ValidationError):
        KillSwitch().emergency_stop(" ", by="alice", now=T0)


def test_halted_check_still_reports_the_other_breaches() -> None:
    risk = engine(max_order_quantity=10)
    risk.kill_switch.emergency_stop("drill", by="ops", now=T0)
    assert breached(risk.check(order(qty=11), ctx())) == ["halted", "max_order_quantity"]
