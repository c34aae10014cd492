"""Builders for every message ibsim sends, one function per message.

Each returns the list of fields (message id first) laid out exactly as ib_async's decoder
reads them at server version 178; ``tests/unit/ibsim/test_messages.py`` feeds every builder's
output through the installed decoder to keep field counts honest.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from ibsim.contracts import ContractInfo
from ibsim.protocol import Field

if TYPE_CHECKING:
    from ibsim.orders import Execution, SimOrder

Fields = list[Field]
HistBar = tuple[str, float, float, float, float, float, float, int]
"""date, open, high, low, close, volume, wap, barCount."""


def c11(c: ContractInfo, *, exchange: str | None = None) -> Fields:
    """Contract group without primaryExchange (conId ... tradingClass)."""
    return [
        c.con_id,
        c.symbol,
        c.ib_sec_type,
        "",
        0.0,
        "",
        "",
        exchange or c.exchange,
        c.currency,
        c.symbol,
        c.symbol,
    ]


def server_error(req_id: int, code: int, text: str) -> Fields:
    """Error or notice ``4,2,reqId,code,text,advancedOrderRejectJson``."""
    return [4, 2, req_id, code, text, ""]


def next_valid_id(order_id: int) -> Fields:
    """``9,1,id``: the next order id the client may use."""
    return [9, 1, order_id]


def managed_accounts(accounts: Sequence[str]) -> Fields:
    """``15,1,DU...``: the accounts this login manages."""
    return [15, 1, ",".join(accounts)]


def current_time(epoch: int) -> Fields:
    """``49,1,epochSeconds``."""
    return [49, 1, epoch]


def position(account: str, c: ContractInfo, qty: Decimal, avg_cost: float) -> Fields:
    """``61,3,acct,C11,position,avgCost`` (16 fields)."""
    return [61, 3, account, *c11(c), qty, avg_cost]


def position_end() -> Fields:
    """``62,1``."""
    return [62, 1]


def open_order_end() -> Fields:
    """``53,1``."""
    return [53, 1]


def completed_orders_end() -> Fields:
    """``102``: no completed orders are replayed."""
    return [102]


def account_value(key: str, value: str, currency: str, account: str) -> Fields:
    """``6,2,key,value,currency,account``."""
    return [6, 2, key, value, currency, account]


def portfolio_value(
    c: ContractInfo,
    *,
    qty: Decimal,
    market_price: float,
    avg_cost: float,
    unrealized: float,
    realized: float,
    account: str,
) -> Fields:
    """``7,8,...`` updatePortfolio (20 fields: C12 without exchange, then values)."""
    contract: Fields = [c.con_id, c.symbol, c.ib_sec_type, "", 0.0, "", "", c.primary_exchange]
    contract += [c.currency, c.symbol, c.symbol]
    value = round(float(qty) * market_price, 2)
    values: Fields = [qty, market_price, value, avg_cost, unrealized, realized, account]
    return [7, 8, *contract, *values]


def account_time(hhmm: str) -> Fields:
    """``8,1,HH:MM``."""
    return [8, 1, hhmm]


def account_download_end(account: str) -> Fields:
    """``54,1,account``."""
    return [54, 1, account]


def account_update_multi(req_id: int, account: str, key: str, value: str, cur: str) -> Fields:
    """``73,1,reqId,account,modelCode,key,value,currency``."""
    return [73, 1, req_id, account, "", key, value, cur]


def account_update_multi_end(req_id: int) -> Fields:
    """``74,1,reqId``."""
    return [74, 1, req_id]


def account_summary(req_id: int, account: str, tag: str, value: str, cur: str) -> Fields:
    """``63,1,reqId,account,tag,value,currency``."""
    return [63, 1, req_id, account, tag, value, cur]


def account_summary_end(req_id: int) -> Fields:
    """``64,1,reqId``."""
    return [64, 1, req_id]


def contract_details(
    req_id: int, c: ContractInfo, *, exchange: str, trading: str, liquid: str
) -> Fields:
    """``10,reqId,...`` contractDetails for a stock or ETF (server version >= 164 layout)."""
    head: Fields = [10, req_id, c.symbol, c.ib_sec_type, "", 0.0, "", exchange, c.currency]
    head += [c.symbol, c.symbol, c.symbol, c.con_id, c.min_tick]
    body: Fields = [
        "",  # multiplier
        "ACTIVETIM,AD,ADJUST,ALERT,ALGO,ALLOC,AVGCOST,BASKET,DAY,GTC,LMT,LOC,MKT,MOC,STP,STPLMT",
        c.valid_exchanges,
        1,  # priceMagnifier
        0,  # underConId
        c.long_name,
        c.primary_exchange,
        "",  # contractMonth
        "",  # industry
        "",  # category
        "",  # subcategory
        c.time_zone,
        trading,
        liquid,
        "",  # evRule
        "",  # evMultiplier
        0,  # number of secIds
        1,  # aggGroup
        "",  # underSymbol
        "",  # underSecType
        "26" if not c.is_asx else "1878",  # marketRuleIds
        "",  # realExpirationDate
        "ETF" if c.sec_type == "ETF" else "COMMON",
        "1",  # minSize
        "1",  # sizeIncrement
        "100",  # suggestedSizeIncrement
    ]
    return head + body


def contract_details_end(req_id: int) -> Fields:
    """``52,1,reqId``."""
    return [52, 1, req_id]


def historical_data(req_id: int, start: str, end: str, bars: Sequence[HistBar]) -> Fields:
    """``17,reqId,start,end,n,[date,o,h,l,c,volume,wap,count]*n`` (no version field)."""
    out: Fields = [17, req_id, start, end, len(bars)]
    for bar in bars:
        out.extend(bar)
    return out


def historical_data_update(req_id: int, bar: HistBar) -> Fields:
    """``90,reqId,barCount,date,open,close,high,low,wap,volume`` (note the order)."""
    date, o, h, low, c, vol, wap, count = bar
    return [90, req_id, count, date, o, c, h, low, wap, vol]


def realtime_bar(
    req_id: int, epoch: int, ohlc: tuple[float, float, float, float], *, volume: float, wap: float
) -> Fields:
    """``50,3,reqId,time,open,high,low,close,volume,wap,count``."""
    o, h, low, c = ohlc
    return [50, 3, req_id, epoch, o, h, low, c, volume, wap, 1]


def tick_price(req_id: int, tick_type: int, price: float, size: float) -> Fields:
    """``1,6,reqId,tickType,price,size,attrMask`` (exactly 7 fields)."""
    return [1, 6, req_id, tick_type, price, size, 0]


def tick_size(req_id: int, tick_type: int, size: float) -> Fields:
    """``2,6,reqId,tickType,size``."""
    return [2, 6, req_id, tick_type, size]


def tick_snapshot_end(req_id: int) -> Fields:
    """``57,1,reqId``."""
    return [57, 1, req_id]


def market_data_type(req_id: int, data_type: int) -> Fields:
    """``58,1,reqId,type`` (1 = live)."""
    return [58, 1, req_id, data_type]


def order_status(o: SimOrder) -> Fields:
    """``3,orderId,status,filled,remaining,avgFillPrice,permId,parentId,lastFillPrice,
    clientId,whyHeld,mktCapPrice`` (12 fields, no version)."""
    remaining = o.total_qty - o.filled
    head: Fields = [3, o.order_id, o.status, o.filled, remaining, o.avg_fill_price, o.perm_id]
    return [*head, o.parent_id, o.last_fill_price, o.client_id, "", 0.0]


def exec_details(req_id: int, e: Execution) -> Fields:
    """``11,reqId,orderId,C11,execId,time,...,pendingPriceRevision`` (32 fields)."""
    tail: Fields = [e.exec_id, e.time, e.account, e.exchange, e.side, e.shares, e.price]
    tail += [e.perm_id, e.client_id, 0, e.cum_qty, e.avg_price, e.order_ref, "", "", "", 1, 0]
    return [11, req_id, e.order_id, *c11(e.contract, exchange=e.exchange), *tail]


def exec_details_end(req_id: int) -> Fields:
    """``55,1,reqId``."""
    return [55, 1, req_id]


def commission_report(e: Execution) -> Fields:
    """``59,1,execId,commission,currency,realizedPNL,yield,yieldRedemptionDate`` (8)."""
    return [59, 1, e.exec_id, e.commission, e.currency, e.realized_pnl, "", ""]


def open_order(o: SimOrder) -> Fields:
    """``5,...`` openOrder at server version 178 (127 fields, every list count ``0``)."""
    c = o.contract
    head: Fields = [5, o.order_id, *c11(c, exchange=o.exchange), o.action, o.total_qty]
    head += [o.order_type, o.lmt_price, o.aux_price, o.tif, "", o.account, "O", 0, o.order_ref]
    head += [o.client_id, o.perm_id, o.outside_rth, 0, 0.0, "", "", "", "", ""]
    # modelCode .. deltaNeutralAuxPrice (29), deltaNeutralOrderType empty.
    mid: Fields = ["", "", "", "", "", 0, "", -1, "", "", "", "", "", "", "", 0, 0, 0, ""]
    mid += [3, 0, 0, "", o.parent_id, 0, "", 0, "", ""]
    # continuousUpdate .. comboLegsDescrip, then the three empty lists, scale fields, hedge.
    mid += [0, 0, "", "", "", "", "", 0, 0, 0, "", "", "", ""]
    # optOutSmartRouting, clearingAccount, clearingIntent, notHeld, dncPresent, algoStrategy.
    mid += [0, "", "IB", 0, 0, ""]
    state: Fields = [0, 0, o.status, *([""] * 9), "", "", "", "", "", 0, 0]
    # conditions count, adjusted-order block (16), duration, postToAts, autoCancelParent.
    tail: Fields = [0, "None", "", "", "", "", "", "", 0, "", "", "", "", 0, 0, "", 0]
    tail += ["", "", 0, "", "", "", "", ""]
    return head + mid + state + tail
