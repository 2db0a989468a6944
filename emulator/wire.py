"""JSON shapes of Binance answers (spot /api/v3 and USD-M /fapi), built from engine state.

Numbers travel as strings with 8 decimals (spot style; ccxt parses both styles), times in ms.
"""

from __future__ import annotations

import numpy as np

from core.enums import Market
from emulator.config import EmulatorConfig, SymbolConfig, split_symbol
from emulator.engine import ORDER_TYPES, Account, Engine, Fill, Order

INTERVAL_MS = {
    "1s": 1_000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000,
    "12h": 43_200_000, "1d": 86_400_000, "3d": 259_200_000, "1w": 604_800_000,
}


MAINT_MARGIN_RATE = 0.004  # flat maintenance margin rate of every position (one bracket)


def f8(x: float | None) -> str:
    return "0.00000000" if x is None else f"{x:.8f}"


def _side(side: int) -> str:
    return "BUY" if side == 1 else "SELL"


# -- exchangeInfo ---------------------------------------------------------------------------------


def _filters(sc: SymbolConfig, market: Market) -> list[dict]:
    i = sc.instrument
    out = [
        {"filterType": "PRICE_FILTER", "minPrice": f8(sc.min_price), "maxPrice": f8(sc.max_price), "tickSize": f8(i.tick_size)},
        {"filterType": "LOT_SIZE", "minQty": f8(i.min_qty), "maxQty": f8(sc.max_qty), "stepSize": f8(i.step_size)},
        {"filterType": "MARKET_LOT_SIZE", "minQty": f8(i.min_qty), "maxQty": f8(sc.max_market_qty), "stepSize": f8(i.step_size)},
    ]
    if market == Market.SPOT:
        out.append({"filterType": "NOTIONAL", "minNotional": f8(i.min_notional), "applyMinToMarket": True,
                    "maxNotional": "9000000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5})
    else:
        out.append({"filterType": "MIN_NOTIONAL", "notional": f8(i.min_notional)})
    return out


def exchange_info(cfg: EmulatorConfig, server_ms: int) -> dict:
    market = cfg.market
    symbols = []
    for sc in cfg.symbols:
        i = sc.instrument
        base, quote = split_symbol(i.symbol)
        entry = {"symbol": i.symbol, "status": "TRADING", "baseAsset": base, "quoteAsset": quote,
                 "baseAssetPrecision": 8, "quotePrecision": 8, "quoteAssetPrecision": 8,
                 "orderTypes": list(ORDER_TYPES[market]), "filters": _filters(sc, market)}
        if market == Market.SPOT:
            entry.update({"baseCommissionPrecision": 8, "quoteCommissionPrecision": 8, "icebergAllowed": False,
                          "ocoAllowed": False, "otoAllowed": False, "quoteOrderQtyMarketAllowed": False,
                          "allowTrailingStop": False, "cancelReplaceAllowed": False, "isSpotTradingAllowed": True,
                          "isMarginTradingAllowed": False, "permissions": ["SPOT"], "permissionSets": [["SPOT"]],
                          "defaultSelfTradePreventionMode": "NONE", "allowedSelfTradePreventionModes": ["NONE"]})
        else:
            dec_p = max(0, -int(np.floor(np.log10(i.tick_size) + 1e-9)))
            dec_q = max(0, -int(np.floor(np.log10(i.step_size) + 1e-9)))
            entry.update({"pair": i.symbol, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
                          "onboardDate": 1569398400000, "marginAsset": quote, "pricePrecision": dec_p,
                          "quantityPrecision": dec_q, "underlyingType": "COIN", "underlyingSubType": [],
                          "triggerProtect": "0.0500", "liquidationFee": "0.012500", "marketTakeBound": "0.05",
                          "maxMoveOrderLimit": 10000, "timeInForce": ["GTC", "IOC", "FOK", "GTX"]})
        symbols.append(entry)
    limits = [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": cfg.faults.weight_limit},
              {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300}]
    out = {"timezone": "UTC", "serverTime": server_ms, "rateLimits": limits, "exchangeFilters": [], "symbols": symbols}
    if market == Market.USDM:
        out["assets"] = [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}]
    return out


# -- market data ----------------------------------------------------------------------------------


def agg_trades(tape, lo: int, hi: int) -> list[dict]:
    return [{"a": int(tape.agg_id[i]), "p": f8(tape.price[i]), "q": f8(tape.qty[i]), "f": int(tape.first_id[i]),
             "l": int(tape.last_id[i]), "T": int(tape.ts[i] // 1_000_000), "m": bool(tape.buyer_maker[i]), "M": True}
            for i in range(lo, hi)]


def klines(tape, hi: int, interval_ms: int, start: int | None, end: int | None, limit: int) -> list[list]:
    """Klines aggregated from the first `hi` (visible) trades; the last one may be unclosed."""
    t_ms = tape.ts[:hi] // 1_000_000
    if start is not None:
        lo_i = int(np.searchsorted(t_ms, start - start % interval_ms, side="left"))
    else:
        lo_i = 0
    t = t_ms[lo_i:]
    if t.shape[0] == 0:
        return []
    bucket = t - t % interval_ms
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    rows = []
    for k, s in enumerate(starts):
        e = starts[k + 1] if k + 1 < len(starts) else t.shape[0]
        ot = int(bucket[s])
        if start is not None and ot < start - start % interval_ms:
            continue
        if end is not None and ot > end:
            break
        p = tape.price[lo_i + s: lo_i + e]
        q = tape.qty[lo_i + s: lo_i + e]
        taker_buy = ~tape.buyer_maker[lo_i + s: lo_i + e]
        rows.append([ot, f8(p[0]), f8(p.max()), f8(p.min()), f8(p[-1]), f8(q.sum()), ot + interval_ms - 1,
                     f8(float((p * q).sum())), int(e - s), f8(float(q[taker_buy].sum())),
                     f8(float((p * q)[taker_buy].sum())), "0"])
        if start is not None and len(rows) >= limit:
            break
    return rows[-limit:] if start is None else rows


def depth(engine: Engine, symbol: str, limit: int) -> dict:
    """A synthetic book: `limit` levels a tick apart on each side of the last trade price."""
    sc = engine.symbols[symbol]
    tick, step = sc.instrument.tick_size, sc.instrument.step_size
    last = engine.last_price(symbol) or sc.initial_price
    tape = engine.tapes[symbol]
    bids = [[f8(round(last - k * tick, 8)), f8(round(step * (10 + 5 * k), 8))] for k in range(1, limit + 1)]
    asks = [[f8(round(last + k * tick, 8)), f8(round(step * (10 + 5 * k), 8))] for k in range(1, limit + 1)]
    out = {"lastUpdateId": int(tape.cursor), "bids": bids, "asks": asks}
    if engine.market == Market.USDM:
        now = engine.now_ms()
        out.update({"E": now, "T": now})
    return out


# -- orders ---------------------------------------------------------------------------------------


def order_json(engine: Engine, o: Order, *, ack: bool = False, full: bool = False) -> dict:
    if engine.market == Market.SPOT:
        d = {"symbol": o.symbol, "orderId": o.order_id, "orderListId": -1, "clientOrderId": o.client_id}
        if ack:
            d["transactTime"] = o.time_ms
        d.update({"price": f8(o.price), "origQty": f8(o.qty), "executedQty": f8(o.executed),
                  "cummulativeQuoteQty": f8(o.cum_quote), "status": o.status, "timeInForce": o.tif or "GTC",
                  "type": o.type, "side": _side(o.side)})
        if o.stop_price is not None:
            d["stopPrice"] = f8(o.stop_price)
        if not ack:
            d.update({"icebergQty": "0.00000000", "time": o.time_ms, "updateTime": o.update_ms,
                      "isWorking": o.trigger is None or o.triggered, "origQuoteOrderQty": "0.00000000"})
        d["workingTime"] = o.time_ms if o.trigger is None or o.triggered else -1
        d["selfTradePreventionMode"] = "NONE"
        if full:
            d["fills"] = [{"price": f8(f.price), "qty": f8(f.qty), "commission": f8(f.commission),
                           "commissionAsset": f.commission_asset, "tradeId": f.trade_id} for f in o.fills]
        return d
    d = {"orderId": o.order_id, "symbol": o.symbol, "status": o.status, "clientOrderId": o.client_id,
         "price": f8(o.price), "avgPrice": f8(o.avg_price), "origQty": f8(o.qty), "executedQty": f8(o.executed),
         "cumQty": f8(o.executed), "cumQuote": f8(o.cum_quote), "timeInForce": o.tif or "GTC", "type": o.type,
         "reduceOnly": o.reduce_only, "closePosition": False, "side": _side(o.side), "positionSide": "BOTH",
         "stopPrice": f8(o.stop_price), "workingType": "CONTRACT_PRICE", "priceProtect": False, "origType": o.type,
         "priceMatch": "NONE", "selfTradePreventionMode": "NONE", "goodTillDate": 0, "updateTime": o.update_ms}
    if not ack:
        d["time"] = o.time_ms
    return d


def algo_json(o: Order) -> dict:
    """A USD-M conditional (algo) order. algoId = the order id; once triggered it works as the order
    `actualOrderId` (same id): algoStatus TRIGGERED while that order is open, FINISHED when final."""
    if not o.triggered:
        status = "NEW" if o.is_open else o.status
    else:
        status = "TRIGGERED" if o.is_open else "FINISHED"
    return {"algoId": o.order_id, "clientAlgoId": o.client_id, "algoType": "CONDITIONAL", "orderType": o.type,
            "symbol": o.symbol, "side": _side(o.side), "positionSide": "BOTH", "timeInForce": o.tif or "GTC",
            "quantity": f8(o.qty), "algoStatus": status, "triggerPrice": f8(o.stop_price), "price": f8(o.price),
            "icebergQuantity": None, "selfTradePreventionMode": "NONE", "workingType": "CONTRACT_PRICE",
            "priceMatch": "NONE", "closePosition": False, "priceProtect": False, "reduceOnly": o.reduce_only,
            "createTime": o.time_ms, "updateTime": o.update_ms, "triggerTime": o.update_ms if o.triggered else 0,
            "goodTillDate": 0, "actualOrderId": str(o.order_id) if o.triggered else "",
            "actualPrice": f8(o.avg_price), "executedQty": f8(o.executed)}


def cancel_json(engine: Engine, o: Order, cancel_client_id: str) -> dict:
    d = order_json(engine, o, ack=True)
    if engine.market == Market.SPOT:
        d.pop("workingTime", None)
        d["origClientOrderId"] = o.client_id
        d["clientOrderId"] = cancel_client_id
        d["transactTime"] = engine.now_ms()
    return d


def trade_json(engine: Engine, f: Fill, o: Order) -> dict:
    if engine.market == Market.SPOT:
        return {"symbol": f.symbol, "id": f.trade_id, "orderId": f.order_id, "orderListId": -1, "price": f8(f.price),
                "qty": f8(f.qty), "quoteQty": f8(f.price * f.qty), "commission": f8(f.commission),
                "commissionAsset": f.commission_asset, "time": f.ts_ms, "isBuyer": f.side == 1,
                "isMaker": f.is_maker, "isBestMatch": True}
    return {"buyer": f.side == 1, "commission": f8(f.commission), "commissionAsset": f.commission_asset,
            "id": f.trade_id, "maker": f.is_maker, "orderId": f.order_id, "price": f8(f.price), "qty": f8(f.qty),
            "quoteQty": f8(f.price * f.qty), "realizedPnl": f8(f.realized_pnl), "side": _side(f.side),
            "positionSide": "BOTH", "symbol": f.symbol, "time": f.ts_ms}


# -- accounts -------------------------------------------------------------------------------------


def spot_account(engine: Engine, acct: Account) -> dict:
    fees = engine.fee_params
    return {"makerCommission": int(round(fees[0] * 10_000)), "takerCommission": int(round(fees[1] * 10_000)),
            "buyerCommission": 0, "sellerCommission": 0,
            "commissionRates": {"maker": f8(fees[0]), "taker": f8(fees[1]), "buyer": f8(0), "seller": f8(0)},
            "canTrade": True, "canWithdraw": False, "canDeposit": False, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False, "updateTime": acct.update_ms,
            "accountType": "SPOT",
            "balances": [{"asset": a, "free": f8(v[0]), "locked": f8(v[1])} for a, v in sorted(acct.balances.items())],
            "permissions": ["SPOT"], "uid": 1}


def _usdm_numbers(engine: Engine, acct: Account) -> dict:
    engine.mark_all(acct)
    led = acct.ledger
    rows = []
    for sym in engine.symbols:
        p = led.position(sym)
        mark = engine.last_price(sym) or p.avg_price
        lev = led.pos[led.index(sym), 8]
        rows.append({"symbol": sym, "qty": p.qty, "entry": p.avg_price, "mark": mark, "upnl": p.unrealized_pnl if p.qty else 0.0,
                     "im": engine.position_margin(acct, sym), "notional": p.qty * mark, "leverage": int(lev)})
    open_im = engine._open_order_margin(acct)
    upnl = sum(r["upnl"] for r in rows)
    pos_im = sum(r["im"] for r in rows)
    wallet = led.wallet
    avail = wallet + upnl - pos_im - open_im
    return {"rows": rows, "wallet": wallet, "upnl": upnl, "pos_im": pos_im, "open_im": open_im, "avail": avail}


def usdm_account(engine: Engine, acct: Account, version: int) -> dict:
    n = _usdm_numbers(engine, acct)
    t = acct.update_ms or engine.now_ms()  # ccxt skips assets whose updateTime is 0
    maint = sum(abs(r["notional"]) * MAINT_MARGIN_RATE for r in n["rows"])
    asset = {"asset": "USDT", "walletBalance": f8(n["wallet"]), "unrealizedProfit": f8(n["upnl"]),
             "marginBalance": f8(n["wallet"] + n["upnl"]), "maintMargin": f8(maint),
             "initialMargin": f8(n["pos_im"] + n["open_im"]), "positionInitialMargin": f8(n["pos_im"]),
             "openOrderInitialMargin": f8(n["open_im"]), "crossWalletBalance": f8(n["wallet"]),
             "crossUnPnl": f8(n["upnl"]), "availableBalance": f8(n["avail"]), "maxWithdrawAmount": f8(max(0.0, n["avail"])),
             "marginAvailable": True, "updateTime": t}
    positions = []
    for r in n["rows"]:
        pos = {"symbol": r["symbol"], "positionSide": "BOTH", "positionAmt": f8(r["qty"]),
               "unrealizedProfit": f8(r["upnl"]), "isolatedMargin": f8(0), "notional": f8(r["notional"]),
               "isolatedWallet": f8(0), "initialMargin": f8(r["im"]), "maintMargin": f8(abs(r["notional"]) * MAINT_MARGIN_RATE),
               "updateTime": t}
        if version == 2:
            pos.update({"leverage": str(r["leverage"]), "entryPrice": f8(r["entry"]), "breakEvenPrice": f8(r["entry"]),
                        "maxNotional": "1000000", "bidNotional": "0", "askNotional": "0", "isolated": False,
                        "positionInitialMargin": f8(r["im"]), "openOrderInitialMargin": "0"})
        positions.append(pos)
    out = {"totalInitialMargin": f8(n["pos_im"] + n["open_im"]), "totalMaintMargin": f8(maint),
           "totalWalletBalance": f8(n["wallet"]), "totalUnrealizedProfit": f8(n["upnl"]),
           "totalMarginBalance": f8(n["wallet"] + n["upnl"]), "totalPositionInitialMargin": f8(n["pos_im"]),
           "totalOpenOrderInitialMargin": f8(n["open_im"]), "totalCrossWalletBalance": f8(n["wallet"]),
           "totalCrossUnPnl": f8(n["upnl"]), "availableBalance": f8(n["avail"]),
           "maxWithdrawAmount": f8(max(0.0, n["avail"])), "assets": [asset], "positions": positions}
    if version == 2:
        out.update({"feeTier": 0, "canTrade": True, "canDeposit": True, "canWithdraw": True, "updateTime": 0,
                    "multiAssetsMargin": False, "tradeGroupId": -1})
    return out


def usdm_balance(engine: Engine, acct: Account) -> list[dict]:
    n = _usdm_numbers(engine, acct)
    return [{"accountAlias": "emulator", "asset": "USDT", "balance": f8(n["wallet"]), "crossWalletBalance": f8(n["wallet"]),
             "crossUnPnl": f8(n["upnl"]), "availableBalance": f8(n["avail"]), "maxWithdrawAmount": f8(max(0.0, n["avail"])),
             "marginAvailable": True, "updateTime": acct.update_ms or engine.now_ms()}]


def position_risk(engine: Engine, acct: Account, version: int, symbol: str | None) -> list[dict]:
    n = _usdm_numbers(engine, acct)
    out = []
    for r in n["rows"]:
        if symbol is not None and r["symbol"] != symbol:
            continue
        d = {"symbol": r["symbol"], "positionSide": "BOTH", "positionAmt": f8(r["qty"]), "entryPrice": f8(r["entry"]),
             "breakEvenPrice": f8(r["entry"]), "markPrice": f8(r["mark"]), "unRealizedProfit": f8(r["upnl"]),
             "liquidationPrice": "0", "isolatedMargin": f8(0), "notional": f8(r["notional"]), "marginAsset": "USDT",
             "isolatedWallet": f8(0), "initialMargin": f8(r["im"]), "maintMargin": f8(abs(r["notional"]) * MAINT_MARGIN_RATE),
             "positionInitialMargin": f8(r["im"]), "openOrderInitialMargin": "0", "adl": 0, "bidNotional": "0",
             "askNotional": "0", "updateTime": acct.update_ms}
        if version == 2:
            d.update({"leverage": str(r["leverage"]), "marginType": "cross", "isAutoAddMargin": "false",
                      "maxNotionalValue": "1000000"})
        out.append(d)
    return out
