"""IB's pre-trade margin check, as ibsim models it: initial margin against equity.

ibsim's account is a margin account whose initial and maintenance requirement is 25% of the
gross position value (the same rate behind ``AvailableFunds`` in
:meth:`ibsim.orders.Broker.account_values`). An order is refused when the initial margin of
the positions it would leave behind exceeds the Equity with Loan Value; only the part of an
order that opens or grows a position counts (closing a position frees margin). IB refuses
such an order with orderStatus ``Inactive`` and error 201; reqCompletedOrders later reports
it ``Cancelled``.
"""

from __future__ import annotations

from decimal import Decimal

from ibsim.orders import AUD_USD, Broker, Quote, SimOrder

INITIAL_MARGIN_RATE = 0.25
"""Initial margin per unit of gross position value."""
_TEXT = (
    "We are unable to accept your order. Your Available Funds are in sufficient to cover the "
    "change in the account's margin requirements if this order executes. In order to obtain "
    "the desired position your Equity with Loan Value [{elv:.2f} USD] must exceed the new "
    "total Initial Margin of [{margin:.2f} USD]."
)
"""IB's wording (error 201 after ``Order rejected - reason:``), including its typo."""


def opening_quantity(broker: Broker, order: SimOrder, qty: Decimal) -> Decimal:
    """The part of ``qty`` (on ``order``'s side) that opens or grows a position."""
    pos = broker.positions.get(order.contract.con_id)
    held = pos.qty if pos is not None else Decimal(0)
    closing = held > 0 if order.action == "SELL" else held < 0
    return max(Decimal(0), qty - abs(held)) if closing else qty


def margin_shortfall(
    broker: Broker, order: SimOrder, *, quote: Quote, prices: dict[int, float]
) -> str:
    """Return IB's rejection text when ``order`` needs more margin than the equity covers.

    Args:
        broker: The account.
        order: The order (new, or the new version of a modified one): its unfilled part counts.
        quote: The order's market now (the ask for a buy, the bid for a sell, or the limit).
        prices: Last prices of the held contracts by conId.

    Returns:
        The text, or "" when the order fits.
    """
    opening = opening_quantity(broker, order, order.remaining)
    if opening == 0:
        return ""
    price = quote.ask if order.action == "BUY" else quote.bid
    if order.order_type in ("LMT", "STP LMT") and order.lmt_price:
        price = order.lmt_price
    rate = AUD_USD if order.contract.currency == "AUD" else 1.0
    values = broker.account_values(prices)
    elv, gross = values["EquityWithLoanValue"][0], values["GrossPositionValue"][0]
    margin = INITIAL_MARGIN_RATE * (gross + float(opening) * price * rate)
    return "" if margin <= elv else _TEXT.format(elv=elv, margin=margin)
