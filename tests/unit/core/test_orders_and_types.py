import pickle
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from core import errors as E
from core.errors import Conflict
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
    with pytest.raises(ValueError, match="quantity"):
        Order(symbol="AAPL", side=Side.BUY, quantity=Decimal(0))
    with pytest.raises(ValueError, match="limit_price"):
        Order(symbol="AAPL", side=Side.BUY, quantity=Decimal(1), order_type=OrderType.LIMIT)
    with pytest.raises(ValueError, match="stop_price"):
        Order(
            symbol="AAPL",
            side=Side.SELL,
            quantity=Decimal(1),
            order_type=OrderType.STOP_LIMIT,
            limit_price=Decimal("10"),
        )
    order = Order(
        symbol="AAPL",
        side=Side.BUY,
        quantity=Decimal("10"),
        order_type=OrderType.LIMIT,
        limit_price=Decimal("101.25"),
    )
    assert order.created_at.tzinfo is not None


def test_fill_rejects_naive_time():
    with pytest.raises(ValueError, match="timezone-aware"):
        Fill(
            exec_id="e1",
            order_ref="r1",
            symbol="AAPL",
            side=Side.BUY,
            quantity=Decimal(1),
            price=Decimal(1),
            commission=Decimal(1),
            time=datetime(2024, 1, 1),
        )
    fill = Fill(
        exec_id="e1",
        order_ref="r1",
        symbol="AAPL",
        side=Side.BUY,
        quantity=Decimal(1),
        price=Decimal(1),
        commission=Decimal(1),
        time=datetime(2024, 1, 1, tzinfo=UTC),
    )
    with pytest.raises(AttributeError):
        fill.price = Decimal(2)  # type: ignore[misc]


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
