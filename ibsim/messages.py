"""Builders for the contract, market-data, history and account messages ibsim sends.

Each returns the list of fields (message id first) laid out as TWS lays them out for the
negotiated server version. Builders whose layout changes inside ibsim's range (157..178, see
:mod:`ibsim.versions`) take a required ``version``; the others are the same at every version
of the range. Order messages live in :mod:`ibsim.order_messages`.
``tests/unit/ibsim/test_messages.py`` decodes every builder's output with ib_async's decoder
at every version of the range, and with the official ``ibapi`` client's at 157.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from ibsim import versions
from ibsim.contracts import ContractInfo
from ibsim.protocol import Field

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


def server_error(req_id: int, code: int, text: str, *, version: int) -> Fields:
    """Error or notice ``4,2,reqId,code,text`` (``,advancedOrderRejectJson`` from 166)."""
    fields: Fields = [4, 2, req_id, code, text]
    return [*fields, ""] if version >= versions.ADVANCED_ORDER_REJECT else fields


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
    req_id: int, c: ContractInfo, *, exchange: str, trading: str, liquid: str, version: int
) -> Fields:
    """``10,[8,]reqId,...`` contractDetails for a stock or ETF.

    Below 164 (SIZE_RULES) a version field follows the id and mdSizeMultiplier follows minTick;
    163 ends with sizeMinTick, 164 and later with minSize, sizeIncrement, suggestedSize...
    """
    old = version < versions.SIZE_RULES
    head: Fields = [10, *([8] if old else []), req_id, c.symbol, c.ib_sec_type, "", 0.0, ""]
    head += [exchange, c.currency, c.symbol, c.symbol, c.symbol, c.con_id, c.min_tick]
    if old:
        head.append(1)  # mdSizeMultiplier
    order_types = "ACTIVETIM,AD,ADJUST,ALERT,ALGO,ALLOC,AVGCOST,BASKET,DAY,GTC,LMT,LOC,MKT,MOC"
    body: Fields = ["", order_types + ",STP,STPLMT", c.valid_exchanges, 1, 0, c.long_name]
    # primaryExchange, contractMonth, industry, category, subcategory, then the hours.
    body += [c.primary_exchange, "", "", "", "", c.time_zone, trading, liquid]
    # evRule, evMultiplier, no secIds, aggGroup, underSymbol, underSecType, marketRuleIds.
    body += ["", "", 0, 1, "", "", "26" if not c.is_asx else "1878"]
    body += ["", "ETF" if c.sec_type == "ETF" else "COMMON"]  # realExpirationDate, stockType
    if version == versions.FRACTIONAL_SIZE_SUPPORT:
        body.append("1")  # sizeMinTick
    elif not old:
        body += ["1", "1", "100"]  # minSize, sizeIncrement, suggestedSizeIncrement
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
