"""The exchange emulator with the REAL ccxt clients (ccxt.binanceusdm / ccxt.binance, sync API).

Every server runs a seeded synthetic market in manual-clock mode: the test moves market time trade
by trade, and expected fills are computed from the tape (the trades the replay will consume) and
the fill model's parameters (slippage 1 bp, participation 1.0, no queue delay), fees from the
Binance VIP 0 schedule (usdm maker 0.02 % / taker 0.04 %, spot 0.1 %).
"""

from __future__ import annotations

import ccxt
import pytest

from emulator.testing import BTC, expected_market_fills, first_trade_index, lots_down, make_server, market_price

pytestmark = pytest.mark.network_local

SYM = "BTC/USDT:USDT"
SPOT_SYM = "BTC/USDT"
TICK = 0.1


@pytest.fixture
def usdm():
    emu = make_server("usdm")
    client = emu.client()
    client.load_markets()
    yield emu, client
    emu.stop()


@pytest.fixture
def spot():
    emu = make_server("spot", balances={"USDT": 100_000.0, "BTC": 1.0})
    client = emu.client()
    client.load_markets()
    yield emu, client
    emu.stop()


def _advance_until_closed(emu, client, order_id, symbol, max_trades=50):
    for _ in range(max_trades):
        o = client.fetch_order(order_id, symbol)
        if o["status"] != "open":
            return o
        emu.advance_trades(BTC, 1)
    return client.fetch_order(order_id, symbol)


def _flat(c) -> bool:
    """ccxt leaves flat positions out of fetch_positions."""
    return all(not p["contracts"] for p in c.fetch_positions([SYM]))


def _r(x):
    return round(x, 6)


# -- USD-M ------------------------------------------------------------------------------------------


def test_usdm_market_order_fills_at_next_trades_with_slippage_and_taker_fee(usdm):
    emu, c = usdm
    expected = expected_market_fills(emu, BTC, +1, 0.05)
    o = c.create_order(SYM, "market", "buy", 0.05)
    assert o["status"] == "open" and o["filled"] == 0.0  # nothing fills before the next trade
    emu.advance_trades(BTC, len(expected) + 2)
    done = c.fetch_order(o["id"], SYM)
    assert done["status"] == "closed" and done["filled"] == 0.05
    trades = c.fetch_my_trades(SYM)
    got = [(t["price"], t["amount"]) for t in trades]
    assert len(got) >= len(expected) > 0
    assert [(_r(p), _r(q)) for p, q in got] == [(_r(p), _r(q)) for p, q in expected if q > 0]
    fees = sum(t["fee"]["cost"] for t in trades)
    assert fees == pytest.approx(sum(p * q * 0.0004 for p, q in expected), abs=1e-7)  # 8-decimal wire format
    assert all(t["takerOrMaker"] == "taker" for t in trades)
    pos = c.fetch_positions([SYM])[0]
    assert pos["contracts"] == 0.05 and pos["side"] == "long"
    avg = sum(p * q for p, q in expected) / 0.05
    assert pos["entryPrice"] == pytest.approx(avg, rel=1e-12)
    assert c.fetch_balance()["USDT"]["total"] == pytest.approx(10_000 - fees + 0.05 * (emu.engine.last_price(BTC) - avg), abs=1e-6)


def test_usdm_resting_limit_fills_only_when_a_trade_goes_through(usdm):
    emu, c = usdm
    last = emu.engine.last_price(BTC)
    window = [emu.next_trade(BTC, k)[0] for k in range(400)]
    low = min(window)
    assert low < last
    touch = c.create_order(SYM, "limit", "buy", 0.01, low)  # touched at best: never fills in the window
    k = first_trade_index(emu, BTC, lambda p: p < low + TICK)
    through = c.create_order(SYM, "limit", "buy", 0.01, round(low + TICK, 1))
    emu.advance_trades(BTC, k)  # the trade before the first trade-through
    assert c.fetch_order(through["id"], SYM)["filled"] == 0.0
    emu.advance_trades(BTC, 1)
    p = float(emu.tapes[BTC].price[emu.tapes[BTC].cursor - 1])
    f = c.fetch_order(through["id"], SYM)
    assert p < low + TICK
    assert f["filled"] > 0 and f["average"] == pytest.approx(low + TICK)
    emu.advance_trades(BTC, 400 - k - 1)
    assert c.fetch_order(touch["id"], SYM)["filled"] == 0.0  # touching is not enough
    t = [x for x in c.fetch_my_trades(SYM) if x["order"] == through["id"]]
    assert all(x["takerOrMaker"] == "maker" for x in t)
    assert t[0]["fee"]["cost"] == pytest.approx(t[0]["price"] * t[0]["amount"] * 0.0002, abs=1e-8)


def test_usdm_marketable_limit_takes_on_next_trade_then_rests(usdm):
    emu, c = usdm
    last = emu.engine.last_price(BTC)
    p, q, _ = emu.next_trade(BTC)
    limit = round(last + 50, 1)
    qty = round(lots_down(q, 0.001) + 0.5, 3)  # more than the next trade: the rest must rest
    o = c.create_order(SYM, "limit", "buy", qty, limit)
    emu.advance_trades(BTC, 1)
    f = c.fetch_order(o["id"], SYM)
    taken = lots_down(q, 0.001)
    exp_price = market_price(emu, +1, taken, p)
    assert exp_price <= limit
    assert f["filled"] == pytest.approx(taken) and f["status"] == "open"
    trade = c.fetch_my_trades(SYM)[0]
    assert trade["price"] == pytest.approx(exp_price) and trade["takerOrMaker"] == "taker"


def test_usdm_ioc_and_fok(usdm):
    emu, c = usdm
    last = emu.engine.last_price(BTC)
    # non-marketable IOC: expires at once (nothing to take)
    o = c.create_order(SYM, "limit", "buy", 0.01, round(last - 200, 1), {"timeInForce": "IOC"})
    assert o["status"] == "expired"
    p, q, _ = emu.next_trade(BTC)
    big = round(lots_down(q, 0.001) + 1.0, 3)
    fok = c.create_order(SYM, "limit", "buy", big, round(last + 100, 1), {"timeInForce": "FOK"})
    ioc = c.create_order(SYM, "limit", "buy", big, round(last + 100, 1), {"timeInForce": "IOC"})
    emu.advance_trades(BTC, 1)
    f1, f2 = c.fetch_order(fok["id"], SYM), c.fetch_order(ioc["id"], SYM)
    assert f1["status"] == "expired" and f1["filled"] == 0.0  # FOK: all or nothing
    assert f2["status"] == "expired" and f2["filled"] == pytest.approx(lots_down(q, 0.001))
    assert f2["average"] == pytest.approx(market_price(emu, +1, lots_down(q, 0.001), p))


def test_usdm_post_only_gtx(usdm):
    emu, c = usdm
    last = emu.engine.last_price(BTC)
    with pytest.raises(ccxt.OrderNotFillable, match="-5022"):
        c.create_order(SYM, "limit", "buy", 0.01, round(last + 10, 1), {"timeInForce": "GTX"})
    o = c.create_order(SYM, "limit", "buy", 0.01, round(last - 10, 1), {"timeInForce": "GTX"})
    assert o["status"] == "open" and o["info"]["timeInForce"] == "GTX"


def test_usdm_stop_market_triggers_on_trade_price(usdm):
    emu, c = usdm
    c.create_order(SYM, "market", "buy", 0.02)
    emu.advance_trades(BTC, 10)
    last = emu.engine.last_price(BTC)
    with pytest.raises(ccxt.OrderImmediatelyFillable, match="-2021"):
        c.create_order(SYM, "STOP_MARKET", "sell", 0.02, None, {"stopPrice": round(last + 5, 1), "reduceOnly": True})
    stop = round(last - 5, 1)
    o = c.create_order(SYM, "STOP_MARKET", "sell", 0.02, None, {"stopPrice": stop, "reduceOnly": True})
    k = first_trade_index(emu, BTC, lambda p: p <= stop)
    p, _, _ = emu.next_trade(BTC, k)
    emu.advance_trades(BTC, k)
    assert c.fetch_order(o["id"], SYM)["status"] == "open"
    emu.advance_trades(BTC, 1)
    f = c.fetch_order(o["id"], SYM)
    assert f["status"] == "closed" and f["average"] == pytest.approx(market_price(emu, -1, 0.02, p))
    assert _flat(c)


def test_usdm_take_profit_market_and_stop_limit(usdm):
    emu, c = usdm
    last = emu.engine.last_price(BTC)
    tp_stop = round(last + 5, 1)
    tp = c.create_order(SYM, "TAKE_PROFIT_MARKET", "sell", 0.01, None, {"stopPrice": tp_stop})  # opens a short
    k = first_trade_index(emu, BTC, lambda p: p >= tp_stop)
    p, _, _ = emu.next_trade(BTC, k)
    emu.advance_trades(BTC, k + 1)
    f = c.fetch_order(tp["id"], SYM)
    assert f["status"] == "closed" and f["average"] == pytest.approx(market_price(emu, -1, 0.01, p))
    # STOP (limit) buy: triggers at p >= stop, then rests as a limit at `price`
    last = emu.engine.last_price(BTC)
    stop, limit = round(last + 3, 1), round(last + 100, 1)
    sl = c.create_order(SYM, "STOP", "buy", 0.01, limit, {"stopPrice": stop, "reduceOnly": True})
    k = first_trade_index(emu, BTC, lambda p: p >= stop)
    emu.advance_trades(BTC, k + 1)
    assert c.fetch_order(sl["id"], SYM)["status"] == "open"  # triggered; the limit trades from the next trade on
    p2, q2, _ = emu.next_trade(BTC)
    emu.advance_trades(BTC, 1)
    f = c.fetch_order(sl["id"], SYM)
    assert f["filled"] == pytest.approx(min(0.01, lots_down(q2, 0.001)))
    assert f["average"] == pytest.approx(market_price(emu, +1, f["filled"], p2))  # marketable after the trigger: taker


def test_usdm_take_profit_limit_becomes_resting_limit(usdm):
    emu, c = usdm
    last = emu.engine.last_price(BTC)
    stop = limit = round(last + 4, 1)
    o = c.create_order(SYM, "TAKE_PROFIT", "sell", 0.001, limit, {"stopPrice": stop})
    assert c.fetch_open_orders(SYM) == []  # an untriggered algo order is not a regular open order
    assert [x["id"] for x in c.fetch_open_orders(SYM, params={"trigger": True})] == [o["id"]]
    k = first_trade_index(emu, BTC, lambda p: p >= stop)
    emu.advance_trades(BTC, k + 1)  # triggered: the sell limit is marketable (trigger price >= limit)
    p1, _, _ = emu.next_trade(BTC)
    taker = market_price(emu, -1, 0.001, p1)
    if taker >= limit:  # taker on the next trade
        emu.advance_trades(BTC, 1)
        exp, maker = taker, False
    else:  # no taker fill: rests at the limit, maker on the first later trade-through
        k2 = first_trade_index(emu, BTC, lambda p: p > limit, start=1)
        emu.advance_trades(BTC, k2 + 1)
        exp, maker = limit, True
    t = c.fetch_my_trades(SYM)
    assert len(t) == 1 and t[0]["price"] == pytest.approx(exp) and (t[0]["takerOrMaker"] == "maker") == maker
    assert c.fetch_order(o["id"], SYM, {"trigger": True})["status"] == "closed"  # algoStatus FINISHED


def test_usdm_reduce_only(usdm):
    emu, c = usdm
    with pytest.raises(ccxt.InvalidOrder, match="-2022"):
        c.create_order(SYM, "market", "sell", 0.01, None, {"reduceOnly": True})
    c.create_order(SYM, "market", "buy", 0.01)
    emu.advance_trades(BTC, 10)
    o = c.create_order(SYM, "market", "sell", 0.05, None, {"reduceOnly": True})  # more than the position
    emu.advance_trades(BTC, 20)
    f = c.fetch_order(o["id"], SYM)
    assert f["filled"] == pytest.approx(0.01) and f["status"] in ("expired", "closed")
    assert _flat(c)


def test_usdm_cancel_query_unknown_and_duplicate_client_id(usdm):
    emu, c = usdm
    last = emu.engine.last_price(BTC)
    o = c.create_order(SYM, "limit", "buy", 0.01, round(last - 300, 1), {"clientOrderId": "strat1-0001"})
    with pytest.raises(ccxt.InvalidOrder, match="-4116"):
        c.create_order(SYM, "limit", "buy", 0.01, round(last - 300, 1), {"clientOrderId": "strat1-0001"})
    got = c.fetch_order(None, SYM, {"clientOrderId": "strat1-0001"})
    assert got["id"] == o["id"]
    assert [x["id"] for x in c.fetch_open_orders(SYM)] == [o["id"]]
    assert c.cancel_order(o["id"], SYM)["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound, match="-2011"):
        c.cancel_order(o["id"], SYM)
    with pytest.raises(ccxt.OrderNotFound, match="-2013"):
        c.fetch_order("424242", SYM)
    again = c.create_order(SYM, "limit", "buy", 0.01, round(last - 300, 1), {"clientOrderId": "strat1-0001"})
    assert again["id"] != o["id"]  # Binance: a client id is unique among OPEN orders only
    assert len(c.fetch_orders(SYM)) == 2 and c.fetch_open_orders(SYM) != []


def test_usdm_filters_and_margin(usdm):
    emu, c = usdm
    last = emu.engine.last_price(BTC)
    with pytest.raises(ccxt.InvalidOrder, match="-4164"):  # notional below 5 USDT
        c.create_order(SYM, "limit", "buy", 0.001, 1000.0)
    base = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
    with pytest.raises(ccxt.BadRequest, match="-4014"):  # raw call: ccxt would round the price itself
        c.fapiPrivatePostOrder({**base, "quantity": "0.01", "price": "39000.05"})
    with pytest.raises(ccxt.BadRequest, match="-1111"):
        c.fapiPrivatePostOrder({**base, "quantity": "0.0105", "price": "39000"})
    with pytest.raises(ccxt.InvalidOrder, match="MARKET_LOT_SIZE"):
        c.create_order(SYM, "market", "buy", 150)
    with pytest.raises(ccxt.InsufficientFunds, match="-2019"):  # 10 BTC at 10x needs ~40k USDT margin
        c.create_order(SYM, "limit", "buy", 10, round(last - 100, 1))
    c.set_leverage(20, SYM)
    with pytest.raises(ccxt.InsufficientFunds):
        c.create_order(SYM, "limit", "buy", 6, round(last - 100, 1))
    o = c.create_order(SYM, "limit", "buy", 4, round(last - 100, 1))  # 4·40k/20 = 8k < 10k
    bal = c.fetch_balance()["USDT"]
    assert bal["used"] == pytest.approx(4 * round(last - 100, 1) / 20)
    assert o["status"] == "open"


# -- spot -------------------------------------------------------------------------------------------


def test_spot_market_buy_commission_in_base_and_balances(spot):
    emu, c = spot
    expected = expected_market_fills(emu, BTC, +1, 0.1)
    o = c.create_order(SPOT_SYM, "market", "buy", 0.1)
    assert o["status"] == "open"
    emu.advance_trades(BTC, len(expected) + 2)
    assert c.fetch_order(o["id"], SPOT_SYM)["status"] == "closed"
    trades = c.fetch_my_trades(SPOT_SYM)
    assert [(_r(t["price"]), _r(t["amount"])) for t in trades] == [(_r(p), _r(q)) for p, q in expected]
    assert all(t["fee"]["currency"] == "BTC" for t in trades)
    bal = c.fetch_balance()
    assert bal["BTC"]["total"] == pytest.approx(1.0 + 0.1 * (1 - 0.001), abs=1e-12)
    assert bal["USDT"]["total"] == pytest.approx(100_000 - sum(p * q for p, q in expected), abs=1e-6)
    assert bal["USDT"]["used"] == pytest.approx(0.0, abs=1e-9)


def test_spot_limit_sell_maker_fill_commission_in_quote(spot):
    emu, c = spot
    last = emu.engine.last_price(BTC)
    high = max(emu.next_trade(BTC, k)[0] for k in range(300))
    limit = round(high - TICK, 1)
    assert limit > last
    o = c.create_order(SPOT_SYM, "limit", "sell", 0.002, limit)
    assert c.fetch_balance()["BTC"]["used"] == pytest.approx(0.002)
    k = first_trade_index(emu, BTC, lambda p: p > limit)
    emu.advance_trades(BTC, k + 1)
    f = c.fetch_order(o["id"], SPOT_SYM)
    assert f["status"] == "closed" and f["average"] == pytest.approx(limit)
    t = c.fetch_my_trades(SPOT_SYM)[-1]
    assert t["takerOrMaker"] == "maker" and t["fee"]["currency"] == "USDT"
    assert t["fee"]["cost"] == pytest.approx(0.002 * limit * 0.001)
    bal = c.fetch_balance()
    assert bal["BTC"]["total"] == pytest.approx(0.998) and bal["BTC"]["used"] == pytest.approx(0.0)
    assert bal["USDT"]["total"] == pytest.approx(100_000 + 0.002 * limit * 0.999)


def test_spot_limit_maker_stop_loss_and_take_profit(spot):
    emu, c = spot
    last = emu.engine.last_price(BTC)
    with pytest.raises(ccxt.OrderImmediatelyFillable, match="immediately match and take"):
        c.create_order(SPOT_SYM, "LIMIT_MAKER", "buy", 0.01, round(last + 5, 1))
    lm = c.create_order(SPOT_SYM, "LIMIT_MAKER", "buy", 0.01, round(last - 5, 1))
    assert lm["status"] == "open"
    with pytest.raises(ccxt.OrderImmediatelyFillable, match="Stop price would trigger immediately"):
        c.create_order(SPOT_SYM, "STOP_LOSS", "sell", 0.01, None, {"stopPrice": round(last + 5, 1)})
    stop = round(last - 3, 1)
    sl = c.create_order(SPOT_SYM, "STOP_LOSS", "sell", 0.01, None, {"stopPrice": stop})
    tp_stop = round(last + 3, 1)
    tp = c.create_order(SPOT_SYM, "TAKE_PROFIT_LIMIT", "sell", 0.01, tp_stop, {"stopPrice": tp_stop})
    k = first_trade_index(emu, BTC, lambda p: p <= stop)
    p, _, _ = emu.next_trade(BTC, k)
    emu.advance_trades(BTC, k + 1)
    f = c.fetch_order(sl["id"], SPOT_SYM)
    assert f["status"] == "closed" and f["average"] == pytest.approx(market_price(emu, -1, 0.01, p))
    assert c.fetch_order(tp["id"], SPOT_SYM)["info"]["type"] == "TAKE_PROFIT_LIMIT"


def test_spot_filters_balance_duplicate(spot):
    emu, c = spot
    last = emu.engine.last_price(BTC)
    base = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
    with pytest.raises(ccxt.InvalidOrder, match="Filter failure: PRICE_FILTER"):
        c.privatePostOrder({**base, "quantity": "0.01", "price": "39000.05"})
    with pytest.raises(ccxt.InvalidOrder, match="Filter failure: LOT_SIZE"):
        c.privatePostOrder({**base, "quantity": "0.0105", "price": "39000"})
    # ccxt maps -1013 NOTIONAL to BadRequest (its generic -1013 entry), not InvalidOrder
    with pytest.raises(ccxt.BadRequest, match="Filter failure: NOTIONAL"):
        c.create_order(SPOT_SYM, "limit", "buy", 0.001, 1000.0)
    with pytest.raises(ccxt.InsufficientFunds, match="insufficient balance"):
        c.create_order(SPOT_SYM, "limit", "buy", 3, round(last - 10, 1))  # 120k > 100k USDT
    with pytest.raises(ccxt.InsufficientFunds):
        c.create_order(SPOT_SYM, "limit", "sell", 2, round(last + 10, 1))  # 2 BTC > 1 BTC
    c.create_order(SPOT_SYM, "limit", "buy", 0.01, round(last - 10, 1), {"clientOrderId": "dup-1"})
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        c.create_order(SPOT_SYM, "limit", "buy", 0.01, round(last - 10, 1), {"clientOrderId": "dup-1"})
    assert c.fetch_balance()["USDT"]["used"] == pytest.approx(0.01 * round(last - 10, 1))
