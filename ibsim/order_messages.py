"""Builders for the order messages ibsim sends: openOrder, orderStatus, execDetails,
commissionReport and completedOrder.

Like :mod:`ibsim.messages`, each returns the fields (message id first) for the negotiated
server version; builders whose layout changes inside ibsim's range take ``version``.
Every list count is ``0`` and every optional section absent: ibsim's orders are plain stock
orders without combo legs, conditions, algos or delta-neutral parts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ibsim import versions
from ibsim.messages import Fields, c11

if TYPE_CHECKING:
    from ibsim.orders import Execution, SimOrder

_PEG_BEST_PEG_MID: Fields = ["", "", "", "", ""]
"""minTradeQty, minCompeteSize, competeAgainstBestOffset, midOffsetAtWhole, midOffsetAtHalf."""


def open_order_end() -> Fields:
    """``53,1``."""
    return [53, 1]


def completed_orders_end() -> Fields:
    """``102``: the end of a reqCompletedOrders answer."""
    return [102]


def order_status(o: SimOrder) -> Fields:
    """``3,orderId,status,filled,remaining,avgFillPrice,permId,parentId,lastFillPrice,
    clientId,whyHeld,mktCapPrice`` (12 fields, no version; the same at 157..178)."""
    remaining = o.total_qty - o.filled
    head: Fields = [3, o.order_id, o.status, o.filled, remaining, o.avg_fill_price, o.perm_id]
    return [*head, o.parent_id, o.last_fill_price, o.client_id, "", 0.0]


def _order_head(o: SimOrder) -> Fields:
    """action .. faPercentage (and faProfile below 177), shared by open and completed orders,
    without the clientId that only openOrder carries."""
    fields: Fields = [o.action, o.total_qty, o.order_type, o.lmt_price, o.aux_price, o.tif]
    # ocaGroup, account, openClose, origin, orderRef.
    fields += ["", o.account, "O", 0, o.order_ref]
    return fields


def _fa_params(version: int) -> Fields:
    """faGroup, faMethod, faPercentage and (below 177) the retired faProfile."""
    return ["", "", "", *([""] if version < versions.FA_PROFILE_DESUPPORT else [])]


def open_order(o: SimOrder, *, version: int) -> Fields:
    """``5,orderId,...`` openOrder (127 fields at 178; the official client's field order)."""
    c = o.contract
    head: Fields = [5, o.order_id, *c11(c, exchange=o.exchange), *_order_head(o)]
    # clientId, permId, outsideRth, hidden, discretionaryAmt, goodAfterTime, sharesAllocation.
    head += [o.client_id, o.perm_id, o.outside_rth, 0, 0.0, "", "", *_fa_params(version)]
    # modelCode .. minQty (19), ocaType .. deltaNeutralAuxPrice (10; no delta-neutral type).
    mid: Fields = ["", "", "", "", "", 0, "", -1, "", "", "", "", "", "", "", 0, 0, 0, ""]
    mid += [3, 0, 0, "", o.parent_id, 0, "", 0, "", ""]
    # continuousUpdate .. comboLegsDescrip, then the three empty lists, scale fields, hedge.
    mid += [0, 0, "", "", "", "", "", 0, 0, 0, "", "", "", ""]
    # optOutSmartRouting, clearingAccount, clearingIntent, notHeld, dncPresent, algoStrategy.
    mid += [0, "", "IB", 0, 0, ""]
    # solicited, whatIf, status, nine margin fields, commissions (4), warningText, randomize.
    state: Fields = [0, 0, o.status, *([""] * 9), "", "", "", "", "", 0, 0]
    # conditions count, then the adjusted-order block through usePriceMgmtAlgo (16).
    tail: Fields = [0, "None", "", "", "", "", "", "", 0, "", "", "", "", 0, 0, "", 0]
    if version >= versions.DURATION:
        tail.append("")
    if version >= versions.POST_TO_ATS:
        tail.append("")
    if version >= versions.AUTO_CANCEL_PARENT:
        tail.append(0)
    if version >= versions.PEGBEST_PEGMID_OFFSETS:
        tail += _PEG_BEST_PEG_MID
    return head + mid + state + tail


def completed_order(o: SimOrder, *, version: int) -> Fields:
    """``101,C11,...`` completedOrder for a finished order (no orderId or clientId field)."""
    c = o.contract
    head: Fields = [101, *c11(c, exchange=o.exchange), *_order_head(o)]
    # permId, outsideRth, hidden, discretionaryAmt, goodAfterTime, FA params.
    head += [o.perm_id, o.outside_rth, 0, 0.0, "", *_fa_params(version)]
    # modelCode .. exemptCode (8), box and range fields (5), displaySize, sweepToFill,
    # allOrNone, minQty, ocaType, triggerMethod, volatility, volatilityType, dn type, dn aux.
    mid: Fields = ["", "", "", "", "", 0, "", -1, "", "", "", "", "", "", 0, 0, "", 3, 0]
    mid += ["", 0, "", ""]
    # continuousUpdate, referencePriceType, trailStopPrice, trailingPercent, comboLegsDescrip,
    # three empty lists, scale fields (3), hedgeType, clearing (2), notHeld, dncPresent, algo.
    mid += [0, 0, "", "", "", 0, 0, 0, "", "", "", "", "", "IB", 0, 0, ""]
    # solicited, status, randomizeSize, randomizePrice, conditions count. An order IB's
    # risk checks refused is Inactive live but Cancelled among the completed orders.
    status = "Cancelled" if o.status == "Inactive" else o.status
    state: Fields = [0, status, 0, 0, 0]
    # trailStopPrice, lmtPriceOffset, cashQty, dontUseAutoPriceForHedge, isOmsContainer,
    # autoCancelDate, filledQuantity, refFuturesConId, autoCancelParent, shareholder,
    # imbalanceOnly, routeMarketableToBbo, parentPermId, completedTime, completedStatus.
    tail: Fields = ["", "", "", 0, 0, "", o.filled, 0, 0, "", 0, 0, 0]
    tail += [o.completed_time, o.completed_status]
    if version >= versions.PEGBEST_PEGMID_OFFSETS:
        tail += _PEG_BEST_PEG_MID
    return head + mid + state + tail


def exec_details(req_id: int, e: Execution, *, version: int) -> Fields:
    """``11,reqId,orderId,C11,execId,time,...,lastLiquidity[,pendingPriceRevision]``
    (32 fields at 178; pendingPriceRevision arrived with 178)."""
    tail: Fields = [e.exec_id, e.time, e.account, e.exchange, e.side, e.shares, e.price]
    # permId, clientId, liquidation, cumQty, avgPrice, orderRef, evRule, evMultiplier,
    # modelCode, lastLiquidity (1 = added liquidity).
    tail += [e.perm_id, e.client_id, 0, e.cum_qty, e.avg_price, e.order_ref, "", "", "", 1]
    if version >= versions.PENDING_PRICE_REVISION:
        tail.append(0)
    return [11, req_id, e.order_id, *c11(e.contract, exchange=e.exchange), *tail]


def exec_details_end(req_id: int) -> Fields:
    """``55,1,reqId``."""
    return [55, 1, req_id]


def commission_report(e: Execution) -> Fields:
    """``59,1,execId,commission,currency,realizedPNL,yield,yieldRedemptionDate`` (8 fields,
    the same at 157..178)."""
    return [59, 1, e.exec_id, e.commission, e.currency, e.realized_pnl, "", ""]
