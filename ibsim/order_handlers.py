"""Handlers of the order, execution, position and account requests.

Orders live in the shared :class:`~ibsim.orders.Broker`, not in the connection, so a client
that reconnects (or a new client after a gateway restart) finds the earlier orders' final
states through reqCompletedOrders and their fills through reqExecutions.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from ibsim import messages as m
from ibsim import order_messages as om
from ibsim.handlers import Handler, resolve_one
from ibsim.orders import SimOrder
from ibsim.state import Peer


def place_order(peer: Peer, fields: list[str]) -> None:
    """``3,orderId,C12,secIdType,secId,action,totalQty,orderType,lmtPrice,auxPrice,...``."""
    order_id = int(fields[1])
    c = resolve_one(peer, order_id, fields, 2)
    if c is None:
        return
    try:
        qty = Decimal(fields[17] or "0")
    except InvalidOperation:
        peer.error(order_id, 320, f"Error reading request: totalQuantity {fields[17]!r}")
        return
    sim = peer.sim
    sim.note_order_id(order_id)
    order = SimOrder(
        order_id=order_id,
        client_id=peer.client_id,
        perm_id=sim.broker.next_perm_id(),
        contract=c,
        exchange=fields[9] or "SMART",
        action=fields[16].upper(),
        total_qty=qty,
        order_type=fields[18].upper(),
        lmt_price=float(fields[19]) if fields[19] else None,
        aux_price=float(fields[20]) if fields[20] else None,
        tif=fields[21] or "DAY",
        account=fields[23] or sim.account,
        order_ref=fields[26],
        parent_id=int(fields[28] or 0),
        outside_rth=fields[33] == "1" if len(fields) > 33 else False,
    )
    sim.submit(order)


def cancel_order(peer: Peer, fields: list[str]) -> None:
    """``4,1,orderId[,manualOrderCancelTime]`` -> error 202 and the Cancelled status."""
    order_id = int(fields[2])
    order = peer.sim.broker.cancel(peer.client_id, order_id, peer.sim.clock.now())
    if order is None:
        peer.error(
            order_id,
            10148,
            f"OrderId {order_id} that needs to be cancelled "
            "cannot be cancelled, state: unknown or done.",
        )
        return
    peer.error(order_id, 202, "Order Canceled - reason:")
    peer.sim.report_order(peer, order)


def req_open_orders(peer: Peer, fields: list[str]) -> None:
    """reqOpenOrders (5: this client's; all for client 0) or reqAllOpenOrders (16)."""
    scope = None if peer.client_id == 0 or fields[0] == "16" else peer.client_id
    for order in peer.sim.broker.working(scope):
        peer.sim.report_order(peer, order)
    peer.send(om.open_order_end())


def req_completed_orders(peer: Peer, fields: list[str]) -> None:
    """``99,apiOnly`` -> completedOrder per finished order of this ibsim, then the end.

    Every order ibsim has seen is an API order, so ``apiOnly`` changes nothing; orders of
    earlier connections are included, as TWS keeps them for the day.
    """
    for order in peer.sim.broker.completed():
        peer.send(om.completed_order(order, version=peer.version))
    peer.send(om.completed_orders_end())


def req_executions(peer: Peer, fields: list[str]) -> None:
    """``7,3,reqId,clientId,...`` -> execDetails and commissionReport per fill, then the end."""
    req_id, wanted = int(fields[2]), int(fields[3] or 0)
    for e in peer.sim.broker.executions:
        if wanted in (0, e.client_id):
            peer.send(om.exec_details(req_id, e, version=peer.version))
            peer.send(om.commission_report(e))
    peer.send(om.exec_details_end(req_id))


def req_positions(peer: Peer, fields: list[str]) -> None:
    """``61,1`` -> every position, then positionEnd; later fills are pushed too."""
    peer.wants_positions = True
    for pos_fields in peer.sim.position_messages():
        peer.send(pos_fields)
    peer.send(m.position_end())


def cancel_positions(peer: Peer, fields: list[str]) -> None:
    """``64,1``: stop pushing positions."""
    peer.wants_positions = False


def req_account_updates(peer: Peer, fields: list[str]) -> None:
    """``6,2,subscribe,account`` -> account values, portfolio and the download end."""
    peer.account_updates = fields[2] == "1"
    if peer.account_updates:
        peer.sim.send_account_updates(peer)
        peer.send(m.account_download_end(peer.sim.account))


def req_account_updates_multi(peer: Peer, fields: list[str]) -> None:
    """``76,1,reqId,account,modelCode,ledgerAndNLV`` -> values, then the end."""
    req_id = int(fields[2])
    peer.multi_req_ids.add(req_id)
    for key, value, cur in peer.sim.account_rows():
        peer.send(m.account_update_multi(req_id, peer.sim.account, key, value, cur))
    peer.send(m.account_update_multi_end(req_id))


def cancel_account_updates_multi(peer: Peer, fields: list[str]) -> None:
    """``77,1,reqId``."""
    peer.multi_req_ids.discard(int(fields[2]))


def req_account_summary(peer: Peer, fields: list[str]) -> None:
    """``62,1,reqId,group,tags`` -> the tags asked for (all when blank), then the end."""
    req_id = int(fields[2])
    tags = {t for t in fields[4].split(",") if t} if len(fields) > 4 else set()
    for key, value, cur in peer.sim.account_rows():
        if not tags or key in tags:
            peer.send(m.account_summary(req_id, peer.sim.account, key, value, cur))
    peer.send(m.account_summary_end(req_id))


def req_ids(peer: Peer, fields: list[str]) -> None:
    """``8,1,n`` -> nextValidId."""
    peer.send(m.next_valid_id(peer.sim.next_order_id))


ORDER_HANDLERS: dict[int, Handler] = {
    3: place_order,
    4: cancel_order,
    5: req_open_orders,
    6: req_account_updates,
    7: req_executions,
    8: req_ids,
    16: req_open_orders,
    61: req_positions,
    62: req_account_summary,
    64: cancel_positions,
    76: req_account_updates_multi,
    77: cancel_account_updates_multi,
    99: req_completed_orders,
}
"""Order, account and position requests by inbound message id."""
