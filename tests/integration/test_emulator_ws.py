"""The emulator's websockets with the REAL ccxt.pro client (async, aiohttp websockets) and raw
aiohttp connections: market streams as the manual replay clock advances, the order book sync
(snapshot + diffs) ending equal to the emulator's book, user-data events of orders placed through
REST (spot via the WebSocket API subscription, USD-M via the listenKey stream), listenKey expiry,
and the websocket faults (a dropped message is a gap in ids; delays; server-side closes).

pytest-asyncio is not installed: each test runs its coroutine with `asyncio.run`, bounded by
`asyncio.wait_for`; every wait on the network has its own timeout.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time

import aiohttp
import ccxt
import pytest

from emulator import AccountConfig, EmulatorConfig, EmulatorServer
from emulator.faults import WsFaultRule
from emulator.testing import BTC, KEY, N_TRADES, SECRET, lots_down, make_server
from emulator.ws_market import WsConfig, depth_snapshot

pytestmark = pytest.mark.network_local

SYMS = {"usdm": "BTC/USDT:USDT", "spot": "BTC/USDT"}
STEP = 0.001


def run(coro, timeout: float = 20.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def until(pred, timeout: float = 3.0, what: str = "condition"):
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def server(market: str, **ws) -> EmulatorServer:
    if not ws:
        return make_server(market, balances={"USDT": 100_000.0, "BTC": 1.0} if market == "spot" else None)
    acct = AccountConfig(api_key=KEY, secret=SECRET,
                         balances={"USDT": 100_000.0, "BTC": 1.0} if market == "spot" else {"USDT": 10_000.0})
    cfg = EmulatorConfig.for_symbols([BTC, "ETHUSDT"], market, manual_clock=True, n_trades=N_TRADES, seed=7,
                                     accounts=(acct,))
    return EmulatorServer(cfg, ws=WsConfig(**ws)).start()


@pytest.fixture(params=["spot", "usdm"])
def market(request):
    return request.param


async def raw_ws(emu, path: str):
    session = aiohttp.ClientSession()
    ws = await session.ws_connect(emu.ws_url + path, timeout=aiohttp.ClientWSTimeout(ws_close=2))
    return session, ws


async def recv(ws, timeout: float = 2.0):
    msg = await asyncio.wait_for(ws.receive(), timeout)
    if msg.type == aiohttp.WSMsgType.TEXT:
        return json.loads(msg.data)
    return msg


async def drain(ws, quiet: float = 0.15) -> list:
    """Every message until none arrives for `quiet` seconds."""
    out = []
    while True:
        try:
            msg = await asyncio.wait_for(ws.receive(), quiet)
        except TimeoutError:
            return out
        if msg.type != aiohttp.WSMsgType.TEXT:
            out.append(msg)
            return out
        out.append(json.loads(msg.data))


# -- market streams through ccxt.pro ----------------------------------------------------------------


def test_watch_trades_and_agg_trades_follow_the_tape(market):
    emu = server(market)
    tape = emu.tapes[BTC]
    sym = SYMS[market]

    async def main():
        # ccxt keys both the trade and the aggTrade subscription by the same hash ('trade::<symbol>'):
        # one client cannot watch both for a symbol, so two clients
        ex_agg, ex_trd = emu.pro_client(), emu.pro_client()
        try:
            await asyncio.gather(ex_agg.load_markets(), ex_trd.load_markets())
            agg_task = asyncio.ensure_future(ex_agg.watch_trades(sym, params={"name": "aggTrade"}))
            trade_task = asyncio.ensure_future(ex_trd.watch_trades(sym))
            await until(lambda: emu.ws.subscribers("btcusdt@aggTrade") and emu.ws.subscribers("btcusdt@trade"),
                        what="subscriptions")
            first = tape.cursor
            emu.advance_trades(BTC, 25)
            await asyncio.wait_for(asyncio.gather(agg_task, trade_task), 3)
            last_agg, last_tid = int(tape.agg_id[tape.cursor - 1]), int(tape.last_id[tape.cursor - 1])
            await until(lambda: ex_agg.trades[sym][-1]["id"] == str(last_agg), what="last aggTrade")
            await until(lambda: ex_trd.trades[sym][-1]["id"] == str(last_tid), what="last trade")
            aggs, trades = list(ex_agg.trades[sym]), list(ex_trd.trades[sym])
            assert {t["info"]["e"] for t in aggs} == {"aggTrade"} and {t["info"]["e"] for t in trades} == {"trade"}
            assert [int(t["id"]) for t in aggs] == [int(a) for a in tape.agg_id[first:tape.cursor]]
            assert [t["price"] for t in aggs] == [float(p) for p in tape.price[first:tape.cursor]]
            assert [t["amount"] for t in aggs] == pytest.approx([float(q) for q in tape.qty[first:tape.cursor]])
            assert aggs[0]["side"] == ("sell" if tape.buyer_maker[first] else "buy")
            # trades: every id first_id..last_id of those rows, quantities adding up to the rows'
            assert [int(t["id"]) for t in trades] == list(range(int(tape.first_id[first]), last_tid + 1))
            assert sum(t["amount"] for t in trades) == pytest.approx(float(tape.qty[first:tape.cursor].sum()))
            assert all(t["symbol"] == sym and t["timestamp"] <= emu.engine.now_ms() for t in aggs + trades)
        finally:
            await asyncio.gather(ex_agg.close(), ex_trd.close())

    try:
        run(main())
    finally:
        emu.stop()


def test_watch_ohlcv_updates_and_closed_kline_equal_rest_klines():
    emu = server("usdm")
    tape = emu.tapes[BTC]
    rest = emu.client()
    rest.load_markets()
    sym = SYMS["usdm"]

    async def main():
        ex = emu.pro_client()
        session, ws = await raw_ws(emu, "/market/stream?streams=btcusdt@kline_1m")
        try:
            await ex.load_markets()
            task = asyncio.ensure_future(ex.watch_ohlcv(sym, "1m"))
            await until(lambda: emu.ws.subscribers("btcusdt@kline_1m") == 2, what="subscriptions")
            emu.advance_trades(BTC, 1)
            candles = await asyncio.wait_for(task, 3)
            minute = int(tape.ts[tape.cursor - 1] // 1_000_000) // 60_000 * 60_000
            assert candles[-1][0] == minute
            # advance into the next minute: the old candle arrives closed (x = true), then the new one
            k = 0
            while int(emu.next_trade(BTC, k)[2] // 1_000_000) < minute + 60_000:
                k += 1
            emu.advance_trades(BTC, k + 1)
            msgs = await drain(ws)
            assert all(m["stream"] == "btcusdt@kline_1m" for m in msgs)
            ks = [m["data"]["k"] for m in msgs]
            closed = [x for x in ks if x["x"]]
            assert [x["t"] for x in closed] == [minute]
            assert not ks[-1]["x"] and ks[-1]["t"] == minute + 60_000
            want = rest.fapiPublicGetKlines({"symbol": BTC, "interval": "1m", "startTime": minute, "limit": 2})
            c = closed[0]
            assert [c["t"], c["o"], c["h"], c["l"], c["c"], c["v"], c["T"], c["q"], c["n"], c["V"], c["Q"]] == \
                [int(want[0][0]), *want[0][1:6], int(want[0][6]), want[0][7], int(want[0][8]), want[0][9], want[0][10]]
            await until(lambda: ex.ohlcvs[sym]["1m"][-1][0] == minute + 60_000, what="ccxt candle")
            last = ex.ohlcvs[sym]["1m"][-1]
            rest_last = rest.fetch_ohlcv(sym, "1m", limit=1)[-1]
            assert last == rest_last
            assert ex.ohlcvs[sym]["1m"][-2][1:] == rest.fetch_ohlcv(sym, "1m", since=minute, limit=1)[0][1:]
        finally:
            await ws.close()
            await session.close()
            await ex.close()

    try:
        run(main())
    finally:
        emu.stop()


def test_watch_order_book_ends_equal_to_the_emulator_book(market):
    emu = server(market)
    tape = emu.tapes[BTC]
    sym = SYMS[market]

    async def main():
        ex = emu.pro_client()
        try:
            await ex.load_markets()
            task = asyncio.ensure_future(ex.watch_order_book(sym))
            await until(lambda: emu.ws.subscribers("btcusdt@depth@100ms"), what="depth subscription")
            emu.advance_trades(BTC, 3)
            ob = await asyncio.wait_for(task, 5)
            start_mid = ob["bids"][0][0]
            for _ in range(30):  # many small steps: diffs across snapshot time and after
                emu.advance_trades(BTC, 7)
                await asyncio.sleep(0)
            await until(lambda: ex.orderbooks[sym]["nonce"] == tape.cursor, what="book at the current update id")
            ob = ex.orderbooks[sym].limit()
            want = depth_snapshot(emu.engine, BTC, 50)
            assert ob["nonce"] == want["lastUpdateId"]
            assert [[p, q] for p, q in ob["bids"][:50]] == [[float(p), float(q)] for p, q in want["bids"]]
            assert [[p, q] for p, q in ob["asks"][:50]] == [[float(p), float(q)] for p, q in want["asks"]]
            assert ob["bids"][0][0] != start_mid  # the price moved: diffs were applied
            assert ob["bids"][0][0] < emu.engine.last_price(BTC) < ob["asks"][0][0]
        finally:
            await ex.close()

    try:
        run(main())
    finally:
        emu.stop()


def test_watch_ticker_and_book_ticker():
    emu = server("spot")
    tape = emu.tapes[BTC]
    sym = SYMS["spot"]

    async def main():
        ex = emu.pro_client()
        try:
            await ex.load_markets()
            t_task = asyncio.ensure_future(ex.watch_ticker(sym, {"name": "ticker"}))  # spot default: miniTicker
            b_task = asyncio.ensure_future(ex.watch_bids_asks([sym]))
            await until(lambda: emu.ws.subscribers("btcusdt@ticker") and emu.ws.subscribers("btcusdt@bookTicker"),
                        what="subscriptions")
            k = next(k for k in range(100) if emu.next_trade(BTC, k)[0] != emu.engine.last_price(BTC))
            emu.advance_trades(BTC, k + 1)  # the price level changes: a bookTicker push
            ticker = await asyncio.wait_for(t_task, 3)
            await asyncio.wait_for(b_task, 3)
            book = depth_snapshot(emu.engine, BTC, 1)
            ba = ex.bidsasks[sym]
            assert (ba["bid"], ba["bidVolume"], ba["ask"], ba["askVolume"]) == (
                float(book["bids"][0][0]), float(book["bids"][0][1]), float(book["asks"][0][0]), float(book["asks"][0][1]))
            ticker = ex.tickers[sym]
            assert ticker["last"] == emu.engine.last_price(BTC)
            assert ticker["baseVolume"] == pytest.approx(float(tape.qty[:tape.cursor].sum()))  # < 24 h of tape
            assert ticker["high"] == float(tape.price[:tape.cursor].max()) and ticker["bid"] == ba["bid"]
        finally:
            await ex.close()

    try:
        run(main())
    finally:
        emu.stop()


# -- user data through ccxt.pro ---------------------------------------------------------------------


def test_watch_orders_and_my_trades_for_a_rest_order(market):
    emu = server(market)
    sym = SYMS[market]

    async def main():
        ex = emu.pro_client()
        try:
            await ex.load_markets()
            orders_task = asyncio.ensure_future(ex.watch_orders(sym))
            trades_task = asyncio.ensure_future(ex.watch_my_trades(sym))
            await until(lambda: any(c.listen_key or c.user_subs for c in emu.ws.conns), what="user stream")
            await asyncio.sleep(0.05)
            # a market buy bigger than the next trade: it fills over several trades
            q0 = lots_down(emu.next_trade(BTC, 0)[1], STEP)
            qty = round(q0 + lots_down(emu.next_trade(BTC, 1)[1], STEP) / 2 + STEP, 3)
            placed = await ex.create_order(sym, "market", "buy", qty, None, {"clientOrderId": "ws-cid-1"})
            first = await asyncio.wait_for(orders_task, 3)
            seen = [(o["info"]["X"] if "X" in o["info"] else o["info"]["o"]["X"], o["filled"]) for o in first]
            while ex.orders[-1]["status"] == "open":
                emu.advance_trades(BTC, 1)
                upd = await asyncio.wait_for(ex.watch_orders(sym), 3)
                seen += [(o["info"]["X"], o["filled"]) for o in upd]
            assert [s for s, _ in seen] == ["NEW"] + ["PARTIALLY_FILLED"] * (len(seen) - 2) + ["FILLED"]
            assert len(seen) >= 3 and seen[-1][1] == qty
            assert [f for _, f in seen] == sorted(f for _, f in seen)
            final = ex.orders[-1]
            assert final["id"] == placed["id"] and final["clientOrderId"] == "ws-cid-1" and final["status"] == "closed"
            await asyncio.wait_for(trades_task, 3)
            mine = [t for t in ex.myTrades if t["order"] == placed["id"]]
            rest = await ex.fetch_my_trades(sym)
            def key(t):
                return (t["id"], t["order"], t["price"], t["amount"], t["fee"]["cost"], t["fee"]["currency"], t["side"],
                        t["takerOrMaker"], t["timestamp"])

            assert [key(t) for t in mine] == [key(t) for t in rest] and len(rest) == len(seen) - 1
        finally:
            await ex.close()

    try:
        run(main())
    finally:
        emu.stop()


def test_usdm_listen_key_expiry_closes_the_stream():
    emu = server("usdm", listen_key_ttl_s=0.6)

    async def main():
        ex = emu.pro_client()
        try:
            await ex.load_markets()
            task = asyncio.ensure_future(ex.watch_orders(SYMS["usdm"]))
            await until(lambda: any(c.listen_key for c in emu.ws.conns), what="user stream")
            t0 = time.monotonic()
            with pytest.raises(ccxt.NetworkError, match="closed"):
                await asyncio.wait_for(task, 3)
            assert 0.3 < time.monotonic() - t0 < 2.5
            assert [p["e"] for _, p in emu.ws.user.events] == []  # nothing else happened
            with pytest.raises(ccxt.AuthenticationError, match="-1125"):
                await ex.fapiPrivatePutListenKey()
        finally:
            await ex.close()

    try:
        run(main())
    finally:
        emu.stop()


# -- raw protocol ------------------------------------------------------------------------------------


def test_listen_key_rest_raw_stream_events_and_delete():
    """USD-M: POST/PUT/DELETE /fapi/v1/listenKey (API key only), /ws/<listenKey> events of a
    conditional (algo) order, listenKeyExpired on expiry, and DELETE closing the stream."""
    emu = server("usdm", listen_key_ttl_s=1.0)
    c = emu.client()
    c.load_markets()

    async def main():
        key = c.fapiPrivatePostListenKey()["listenKey"]
        assert c.fapiPrivatePostListenKey()["listenKey"] == key  # the active key is returned again
        session, ws = await raw_ws(emu, "/ws/" + key)
        try:
            await until(lambda: any(x.listen_key == key for x in emu.ws.conns), what="stream")
            c.create_order(SYMS["usdm"], "market", "buy", 0.02)
            emu.advance_trades(BTC, 10)
            last = emu.engine.last_price(BTC)
            stop = round(last - 5, 1)
            o = c.create_order(SYMS["usdm"], "STOP_MARKET", "sell", 0.02, None, {"stopPrice": stop, "reduceOnly": True})
            k = next(k for k in range(3000) if emu.next_trade(BTC, k)[0] <= stop)
            emu.advance_trades(BTC, k + 1)
            assert c.fapiPrivatePutListenKey()["listenKey"] == key  # keep-alive
            msgs = await drain(ws)
            algo = [(m["e"], m["o"]["X"]) for m in msgs if m["e"] in ("ALGO_UPDATE", "ORDER_TRADE_UPDATE")
                    and str(m["o"].get("i", m["o"].get("aid"))) == o["id"]]
            assert algo == [("ALGO_UPDATE", "NEW"), ("ALGO_UPDATE", "TRIGGERED"), ("ORDER_TRADE_UPDATE", "NEW"),
                            ("ORDER_TRADE_UPDATE", "FILLED"), ("ALGO_UPDATE", "FINISHED")]
            acc = [m for m in msgs if m["e"] == "ACCOUNT_UPDATE"]
            assert acc[-1]["a"]["P"][0]["pa"] == "0.00000000" and acc[-1]["a"]["m"] == "ORDER"
            assert float(acc[-1]["a"]["B"][0]["wb"]) == pytest.approx(c.fetch_balance()["USDT"]["total"])
            fills = [m["o"] for m in msgs if m["e"] == "ORDER_TRADE_UPDATE" and m["o"]["x"] == "TRADE"]
            rest = c.fapiPrivateGetUserTrades({"symbol": BTC})
            assert [(f["t"], f["L"], f["l"], f["n"], f["rp"]) for f in fills] == \
                [(t["id"], t["price"], t["qty"], t["commission"], t["realizedPnl"]) for t in rest]
            # no keep-alive now: expiry → listenKeyExpired, then the server closes the stream
            end = await recv(ws, 3)
            assert end["e"] == "listenKeyExpired" and end["listenKey"] == key
            assert (await recv(ws, 2)).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            with pytest.raises(ccxt.AuthenticationError, match="-1125"):
                c.fapiPrivatePutListenKey()
            key2 = c.fapiPrivatePostListenKey()["listenKey"]
            assert key2 != key
        finally:
            await ws.close()
            await session.close()
        session, ws = await raw_ws(emu, "/private/ws?listenKey=" + key2)
        try:
            await until(lambda: any(x.listen_key == key2 for x in emu.ws.conns), what="stream")
            c.fapiPrivateDeleteListenKey()
            msg = await recv(ws, 2)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)  # no listenKeyExpired
        finally:
            await ws.close()
            await session.close()

    try:
        run(main())
    finally:
        emu.stop()


def test_spot_listen_key_stream_execution_reports_and_balance_update():
    emu = server("spot")
    c = emu.client()
    c.load_markets()

    async def main():
        key = c.publicPostUserDataStream()["listenKey"]
        session, ws = await raw_ws(emu, "/ws/" + key)
        try:
            await until(lambda: any(x.listen_key == key for x in emu.ws.conns), what="stream")
            last = emu.engine.last_price(BTC)
            o = c.create_order(SYMS["spot"], "limit", "buy", 0.01, round(last - 50, 1), {"clientOrderId": "sp-1"})
            c.cancel_order(o["id"], SYMS["spot"], {"newClientOrderId": "sp-cancel"})
            emu.adjust_balance("USDT", 250.0)
            msgs = await drain(ws)
            ers = [m for m in msgs if m["e"] == "executionReport"]
            assert [(m["x"], m["X"], m["c"], m["C"]) for m in ers] == [("NEW", "NEW", "sp-1", ""),
                                                                       ("CANCELED", "CANCELED", "sp-cancel", "sp-1")]
            pos = [m for m in msgs if m["e"] == "outboundAccountPosition"]
            usdt = next(b for b in pos[0]["B"] if b["a"] == "USDT")
            assert float(usdt["l"]) == pytest.approx(0.01 * round(last - 50, 1))  # the lock of the NEW order
            assert [m["d"] for m in msgs if m["e"] == "balanceUpdate"] == ["250.00000000"]
            assert float(next(b for b in pos[-1]["B"] if b["a"] == "USDT")["f"]) == c.fetch_balance()["USDT"]["free"]
            with pytest.raises(ccxt.AuthenticationError, match="-1125"):
                c.publicPutUserDataStream({"listenKey": "x" * 64})
            c.publicDeleteUserDataStream({"listenKey": key})
            msg = await recv(ws, 2)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        finally:
            await ws.close()
            await session.close()
        async with aiohttp.ClientSession() as http, http.post(emu.base_url + "/api/v3/userDataStream") as r:
            assert r.status == 401 and (await r.json())["code"] == -2014  # the API key is required

    try:
        run(main())
    finally:
        emu.stop()


def test_subscribe_protocol_raw_and_combined_paths():
    emu = server("usdm")

    async def main():
        s1, raw = await raw_ws(emu, "/ws/btcusdt@aggTrade")  # raw stream in the path
        s2, comb = await raw_ws(emu, "/stream?streams=btcusdt@trade/ethusdt@aggTrade")
        try:
            await comb.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker"], "id": 7})
            assert await recv(comb) == {"result": None, "id": 7}
            await comb.send_json({"method": "LIST_SUBSCRIPTIONS", "id": "x1"})
            assert await recv(comb) == {"result": ["btcusdt@bookTicker", "btcusdt@trade", "ethusdt@aggTrade"], "id": "x1"}
            await comb.send_json({"method": "UNSUBSCRIBE", "params": ["ethusdt@aggTrade"], "id": 8})
            assert await recv(comb) == {"result": None, "id": 8}
            await comb.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@nonsense"], "id": 9})
            err = await recv(comb)
            assert err["id"] == 9 and err["error"]["code"] == 2
            await comb.send_json({"method": "FROB", "id": 10})
            assert (await recv(comb))["error"]["code"] == 2
            await until(lambda: emu.ws.subscribers("btcusdt@aggTrade") == 1, what="raw subscription")
            emu.advance_trades(BTC, 5)
            got_raw = await drain(raw)
            got_comb = await drain(comb)
            assert [m["e"] for m in got_raw] == ["aggTrade"] * 5 and "stream" not in got_raw[0]
            assert {m["stream"] for m in got_comb} <= {"btcusdt@trade", "btcusdt@bookTicker"}
            assert all(m["data"]["s"] == "BTCUSDT" for m in got_comb)
            assert [m["data"]["e"] for m in got_comb if m["stream"] == "btcusdt@trade"].count("trade") >= 5
        finally:
            for ws, s in ((raw, s1), (comb, s2)):
                await ws.close()
                await s.close()

    try:
        run(main())
    finally:
        emu.stop()


# -- faults ------------------------------------------------------------------------------------------


def test_dropped_messages_are_gaps_in_ids_and_ccxt_notices_the_book_gap():
    emu = server("spot")
    emu.add_ws_fault(WsFaultRule(kind="drop", stream="@aggTrade", at=3))
    emu.add_ws_fault(WsFaultRule(kind="drop", stream="@depth", at=4))
    emu.add_ws_fault(WsFaultRule(kind="drop", stream="@trade", probability=0.2, times=None))

    async def main():
        s, ws = await raw_ws(emu, "/stream?streams=btcusdt@aggTrade/btcusdt@depth/btcusdt@trade")
        first_tid = int(emu.tapes[BTC].first_id[emu.tapes[BTC].cursor])
        try:
            await until(lambda: emu.ws.subscribers("btcusdt@depth") == 1, what="subscription")
            for _ in range(40):
                emu.advance_trades(BTC, 1)
                await asyncio.sleep(0.002)
            msgs = [m["data"] for m in await drain(ws)]
        finally:
            await ws.close()
            await s.close()
        aggs = [m["a"] for m in msgs if m.get("e") == "aggTrade"]
        gaps = [(a, b) for a, b in itertools.pairwise(aggs) if b != a + 1]
        assert len(aggs) == 39 and len(gaps) == 1 and gaps[0][1] - gaps[0][0] == 2
        depth = [m for m in msgs if m.get("e") == "depthUpdate"]
        breaks = [(a["u"], b["U"]) for a, b in itertools.pairwise(depth) if b["U"] != a["u"] + 1]
        assert len(breaks) == 1  # the 4th depth event is missing: U jumps
        tids = [m["t"] for m in msgs if m.get("e") == "trade"]
        dropped = sum(1 for k, _, lab in emu.ws.faults.fired if k == "drop" and lab == "btcusdt@trade")
        all_ids = set(range(first_tid, int(emu.tapes[BTC].last_id[emu.tapes[BTC].cursor - 1]) + 1))
        assert 0 < dropped < len(all_ids) and len(all_ids - set(tids)) == dropped  # seeded: same ids every run

        # ccxt.pro's own book sync sees the gap: ChecksumError on the watch
        emu.clear_faults()
        emu.ws.faults.clear()
        emu.add_ws_fault(WsFaultRule(kind="drop", stream="@depth", at=3))
        ex = emu.pro_client()
        try:
            await ex.load_markets()
            task = asyncio.ensure_future(ex.watch_order_book(SYMS["spot"]))
            await until(lambda: emu.ws.subscribers("btcusdt@depth@100ms"), what="depth subscription")
            emu.advance_trades(BTC, 2)
            await asyncio.wait_for(task, 3)
            with pytest.raises(ccxt.ChecksumError):  # the dropped 3rd diff: U != previous u + 1
                for _ in range(100):
                    emu.advance_trades(BTC, 2)
                    try:  # a step that leaves the price level alone sends no diff: don't wait long
                        await asyncio.wait_for(ex.watch_order_book(SYMS["spot"]), 0.2)
                    except TimeoutError:
                        pass
        finally:
            await ex.close()

    try:
        run(main())
    finally:
        emu.stop()


def test_delayed_messages_and_server_closed_connections():
    emu = server("usdm")

    async def main():
        ex = emu.pro_client()
        try:
            await ex.load_markets()
            sym = SYMS["usdm"]
            task = asyncio.ensure_future(ex.watch_trades(sym, params={"name": "aggTrade"}))
            await until(lambda: emu.ws.subscribers("btcusdt@aggTrade"), what="subscription")
            emu.add_ws_fault(WsFaultRule(kind="delay", stream="@aggTrade", delay_s=0.3))
            t0 = time.monotonic()
            emu.advance_trades(BTC, 1)
            await asyncio.wait_for(task, 3)
            assert time.monotonic() - t0 >= 0.28
            emu.add_ws_fault(WsFaultRule(kind="close", stream="@aggTrade"))
            emu.advance_trades(BTC, 1)
            with pytest.raises(ccxt.NetworkError):
                await asyncio.wait_for(ex.watch_trades(sym, params={"name": "aggTrade"}), 3)
            # ccxt reconnects on the next watch; a test control closes abruptly too
            task = asyncio.ensure_future(ex.watch_trades(sym, params={"name": "aggTrade"}))
            await until(lambda: emu.ws.subscribers("btcusdt@aggTrade"), what="resubscription")
            emu.advance_trades(BTC, 1)
            trades = await asyncio.wait_for(task, 3)
            assert int(trades[-1]["id"]) == int(emu.tapes[BTC].agg_id[emu.tapes[BTC].cursor - 1])
            assert emu.ws.close_connections("/market/ws", abrupt=True) == 1
            with pytest.raises(ccxt.NetworkError):
                await asyncio.wait_for(ex.watch_trades(sym, params={"name": "aggTrade"}), 3)
        finally:
            await ex.close()

    try:
        run(main())
    finally:
        emu.stop()
