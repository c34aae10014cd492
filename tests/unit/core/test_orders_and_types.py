import pickle
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from core import errors as E
from core.errors import Conflict, ValidationError
from core.orders import TERMINAL, TRANSITIONS, can_transition, transition
from core.types import Fill, Order, OrderStatus, OrderType, Side


def test_transition_table_covers_every_status():
    assert set(TRANSITIONS) == set(OrderStatus)


def test_terminal_statuses_are_filled_cancelled_rejected():
    assert TERMINAL == {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED}


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (OrderStatus.PENDING_SUBMIT, OrderStatus.SUBMITTED),
        (OrderStatus.SUBMITTED, OrderStatus.PARTIALLY_FILLED),
        (OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED),
        (OrderStatus.PENDING_CANCEL, OrderStatus.CANCELLED),
        (OrderStatus.SUBMITTED, OrderStatus.SUBMITTED),
    ],
)
def test_legal_transitions_pass(current, new):
    assert can_transition(current, new)
    assert transition(current, new) is new


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (OrderStatus.FILLED, OrderStatus.SUBMITTED),
        (OrderStatus.CANCELLED, OrderStatus.FILLED),
        (OrderStatus.PARTIALLY_FILLED, OrderStatus.SUBMITTED),
        (OrderStatus.REJECTED, OrderStatus.PENDING_SUBMIT),
    ],
)
def test_illegal_transitions_raise_conflict_naming_both_statuses(current, new):
    with pytest.raises(Conflict, match=f"from {current} to {new}"):
        transition(current, new)


def test_order_requires_positive_quantity_and_prices_for_its_type():
    with pytest.raises(ValidationError, match="quantity") as info:
        Order(instrument="AAPL.NASDAQ", side=Side.BUY, quantity=Decimal(0))
    assert info.value.field == "quantity"
    with pytest.raises(ValidationError, match="limit_price") as info:
        Order(
            instrument="AAPL.NASDAQ", side=Side.BUY, quantity=Decimal(1), order_type=OrderType.LIMIT
        )
    assert info.value.field == "limit_price"
    with pytest.raises(ValidationError, match="stop_price") as info:
        Order(
            instrument="AAPL.NASDAQ",
            side=Side.SELL,
            quantity=Decimal(1),
            order_type=OrderType.STOP_LIMIT,
            limit_price=Decimal("10"),
        )
    assert info.value.field == "stop_price"
    with pytest.raises(ValidationError, match="positive") as info:
        Order(
            instrument="AAPL.NASDAQ",
            side=Side.BUY,
            quantity=Decimal(1),
            order_type=OrderType.LIMIT,
            limit_price=Decimal("-1"),
        )
    assert info.value.field == "limit_price"
    order = Order(
        instrument="AAPL.NASDAQ",
        side=Side.BUY,
        quantity=Decimal("10"),
        order_type=OrderType.LIMIT,
        limit_price=Decimal("101.25"),
    )
    assert order.created_at.tzinfo is UTC


def test_invalid_order_is_a_validation_error_that_is_still_a_value_error():
    # serve/ maps ValidationError to 422; existing `except ValueError` callers keep working.
    with pytest.raises(ValueError) as info:
        Order(instrument="AAPL.NASDAQ", side=Side.BUY, quantity=Decimal(-5))
    assert isinstance(info.value, E.ValidationError)


def test_order_coerces_floats_ints_and_strings_to_exact_decimals():
    order = Order(
        instrument="AAPL.NASDAQ",
        side=Side.BUY,
        quantity=1.5,  # type: ignore[arg-type]
        order_type=OrderType.STOP_LIMIT,
        limit_price=0.1,  # type: ignore[arg-type]
        stop_price="99.95",  # type: ignore[arg-type]
    )
    assert order.quantity == Decimal("1.5") and type(order.quantity) is Decimal
    assert order.limit_price == Decimal("0.1") and type(order.limit_price) is Decimal
    assert order.stop_price == Decimal("99.95") and type(order.stop_price) is Decimal
    whole = Order(instrument="AAPL.NASDAQ", side=Side.BUY, quantity=3)  # type: ignore[arg-type]
    assert type(whole.quantity) is Decimal and whole.quantity == 3


@pytest.mark.parametrize(
    "quantity",
    [float("nan"), float("inf"), Decimal("NaN"), Decimal("Infinity"), "abc", True, None],
    ids=["nan", "inf", "decimal-nan", "decimal-inf", "text", "bool", "none"],
)
def test_order_rejects_non_finite_or_non_numeric_quantity_naming_the_field(quantity):
    with pytest.raises(ValidationError, match="finite number") as info:
        Order(instrument="AAPL.NASDAQ", side=Side.BUY, quantity=quantity)
    assert info.value.field == "quantity"


def test_order_created_at_in_another_zone_is_converted_to_utc():
    new_york = datetime(2024, 3, 1, 9, 30, tzinfo=ZoneInfo("America/New_York"))
    order = Order(instrument="AAPL.NASDAQ", side=Side.BUY, quantity=Decimal(1), created_at=new_york)
    assert order.created_at.tzinfo is UTC
    assert order.created_at == datetime(2024, 3, 1, 14, 30, tzinfo=UTC)


def _fill(**kw) -> Fill:
    base = {
        "exec_id": "e1",
        "order_ref": "r1",
        "instrument": "AAPL.NASDAQ",
        "side": Side.BUY,
        "quantity": Decimal(1),
        "price": Decimal(1),
        "commission": Decimal(1),
        "time": datetime(2024, 1, 1, tzinfo=UTC),
    }
    return Fill(**(base | kw))


def test_fill_rejects_naive_time_naming_the_field():
    with pytest.raises(ValidationError, match="timezone-aware") as info:
        _fill(time=datetime(2024, 1, 1))
    assert info.value.field == "time"
    fill = _fill()
    with pytest.raises(AttributeError):
        fill.price = Decimal(2)  # type: ignore[misc]


def test_fill_time_in_another_zone_is_converted_to_utc():
    fill = _fill(time=datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=2))))
    assert fill.time.tzinfo is UTC
    assert fill.time == datetime(2024, 1, 1, 10, tzinfo=UTC)


def test_fill_coerces_quantity_price_and_commission_to_decimal():
    fill = _fill(quantity=100, price=187.35, commission=-0.35)
    assert (fill.quantity, fill.price, fill.commission) == (
        Decimal(100),
        Decimal("187.35"),
        Decimal("-0.35"),
    )
    assert {type(v) for v in (fill.quantity, fill.price, fill.commission)} == {Decimal}


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("quantity", 0, "positive"),
        ("price", -1.0, "positive"),
        ("price", float("nan"), "finite"),
        ("commission", float("inf"), "finite"),
    ],
)
def test_fill_rejects_bad_numbers_naming_the_field(field, value, match):
    with pytest.raises(ValidationError, match=match) as info:
        _fill(**{field: value})
    assert info.value.field == field


@pytest.mark.parametrize(
    "error",
    [
        E.ScizorError("x"),
        E.ValidationError("bad", field="quantity"),
        E.DataError("bad bar", field="high"),
        E.BrokerError(321, "bad request"),
        E.PacingViolation(),
        E.NotConnected(),
        E.RiskRejected("max position"),
        E.NotFound("missing"),
    ],
)
def test_every_error_survives_pickling_with_its_attributes(error):
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error)
    assert str(back) == str(error)
    assert back.__dict__ == error.__dict__
