"""The aiohttp application: Binance REST paths → engine calls, with auth, weights, faults and a log.

One market per server: spot serves /api/v3/*, USD-M serves /fapi/v1|v2|v3/*. Every request is
logged (`FaultGate.records`). Engine access is serialised by one lock (the test thread may advance
the manual clock while the server thread answers).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from urllib.parse import parse_qsl

import numpy as np
from aiohttp import web

from core.enums import Market
from emulator import errors as E
from emulator import wire
from emulator.auth import check_api_key, verify_signed
from emulator.engine import Engine
from emulator.errors import ApiError
from emulator.faults import FaultGate, RequestRecord
from emulator.ws_market import depth_snapshot

# (method, path) → (handler name, weight, signed)
_SPOT_ROUTES: dict[tuple[str, str], tuple[str, int, bool]] = {
    ("GET", "/api/v3/ping"): ("ping", 1, False),
    ("GET", "/api/v3/time"): ("time", 1, False),
    ("GET", "/api/v3/exchangeInfo"): ("exchange_info", 20, False),
    ("GET", "/api/v3/depth"): ("depth", 5, False),
    ("GET", "/api/v3/klines"): ("klines", 2, False),
    ("GET", "/api/v3/aggTrades"): ("agg_trades", 4, False),
    ("POST", "/api/v3/order"): ("new_order", 1, True),
    ("GET", "/api/v3/order"): ("get_order", 4, True),
    ("DELETE", "/api/v3/order"): ("cancel_order", 1, True),
    ("GET", "/api/v3/openOrders"): ("open_orders", 6, True),
    ("DELETE", "/api/v3/openOrders"): ("cancel_all", 1, True),
    ("GET", "/api/v3/allOrders"): ("all_orders", 20, True),
    ("GET", "/api/v3/myTrades"): ("my_trades", 20, True),
    ("GET", "/api/v3/account"): ("spot_account", 20, True),
    ("POST", "/api/v3/userDataStream"): ("listen_key_new", 2, False),
    ("PUT", "/api/v3/userDataStream"): ("listen_key_keepalive", 2, False),
    ("DELETE", "/api/v3/userDataStream"): ("listen_key_delete", 2, False),
}
_USDM_ROUTES: dict[tuple[str, str], tuple[str, int, bool]] = {
    ("GET", "/fapi/v1/ping"): ("ping", 1, False),
    ("GET", "/fapi/v1/time"): ("time", 1, False),
    ("GET", "/fapi/v1/exchangeInfo"): ("exchange_info", 1, False),
    ("GET", "/fapi/v1/depth"): ("depth", 5, False),
    ("GET", "/fapi/v1/klines"): ("klines", 5, False),
    ("GET", "/fapi/v1/aggTrades"): ("agg_trades", 20, False),
    ("POST", "/fapi/v1/order"): ("new_order", 1, True),
    ("GET", "/fapi/v1/order"): ("get_order", 1, True),
    ("DELETE", "/fapi/v1/order"): ("cancel_order", 1, True),
    ("GET", "/fapi/v1/openOrders"): ("open_orders", 1, True),
    ("DELETE", "/fapi/v1/allOpenOrders"): ("cancel_all", 1, True),
    ("GET", "/fapi/v1/allOrders"): ("all_orders", 5, True),
    ("GET", "/fapi/v1/userTrades"): ("my_trades", 5, True),
    ("POST", "/fapi/v1/leverage"): ("leverage", 1, True),
    ("GET", "/fapi/v1/positionSide/dual"): ("position_mode", 30, True),
    ("GET", "/fapi/v1/leverageBracket"): ("leverage_bracket", 1, True),
    ("POST", "/fapi/v1/algoOrder"): ("new_algo", 1, True),
    ("GET", "/fapi/v1/algoOrder"): ("get_algo", 1, True),
    ("DELETE", "/fapi/v1/algoOrder"): ("cancel_algo", 1, True),
    ("GET", "/fapi/v1/openAlgoOrders"): ("open_algos", 1, True),
    ("GET", "/fapi/v1/allAlgoOrders"): ("all_algos", 5, True),
    ("GET", "/fapi/v2/account"): ("usdm_account_v2", 5, True),
    ("GET", "/fapi/v3/account"): ("usdm_account_v3", 5, True),
    ("GET", "/fapi/v2/balance"): ("usdm_balance", 5, True),
    ("GET", "/fapi/v3/balance"): ("usdm_balance", 5, True),
    ("GET", "/fapi/v2/positionRisk"): ("position_risk_v2", 5, True),
    ("GET", "/fapi/v3/positionRisk"): ("position_risk_v3", 5, True),
    ("POST", "/fapi/v1/listenKey"): ("listen_key_new", 1, False),
    ("PUT", "/fapi/v1/listenKey"): ("listen_key_keepalive", 1, False),
    ("DELETE", "/fapi/v1/listenKey"): ("listen_key_delete", 1, False),
}
# USER_STREAM endpoints: the API key header is required, no signature (as Binance)
_KEY_ONLY = ("listen_key_new", "listen_key_keepalive", "listen_key_delete")


_ALGO_TYPES = ("STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET")


def _int(params: dict[str, str], name: str, default: int | None = None, lo: int | None = None,
         hi: int | None = None) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.lstrip("-").isdigit():
        raise E.illegal(name)
    v = int(raw)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ApiError(-1130, f"Data sent for parameter '{name}' is not valid.")
    return v


class RestApi:
    """Request handling. `wall_ms` is the auth clock (timestamps and recvWindow)."""

    def __init__(self, engine: Engine, gate: FaultGate, lock: threading.Lock, wall_ms: Callable[[], int]):
        self.engine = engine
        self.gate = gate
        self.lock = lock
        self.wall_ms = wall_ms
        self.routes = _SPOT_ROUTES if engine.market == Market.SPOT else _USDM_ROUTES
        self.secrets = {k: a.cfg.secret for k, a in engine.accounts.items()}
        self.user_streams = None  # emulator.ws_user.UserStreams (listenKeys), set by the server

    def app(self, setup: Callable[[web.Application], None] | None = None) -> web.Application:
        """The aiohttp app; `setup(app)` adds routes (the websockets) ahead of the REST catch-all."""
        app = web.Application()
        if setup is not None:
            setup(app)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    # -- the pipeline ---------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        method = request.method
        path = request.path
        query = request.query_string
        body = (await request.text()) if request.can_read_body else ""
        params = dict(parse_qsl(query, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))
        api_key = request.headers.get("X-MBX-APIKEY")
        logged = {k: v for k, v in params.items() if k != "signature"}
        rec = self.gate.log(RequestRecord(0, method, path, path.rsplit("/", 1)[-1], logged, api_key,
                                          time.monotonic(), self.engine.now_ms()))
        fault = self.gate.admit(method, rec.endpoint)
        delay = self.gate.latency_s() + (fault.delay_s if fault is not None and fault.kind == "delay" else 0.0)
        if delay > 0:
            await asyncio.sleep(delay)
        if fault is not None and fault.kind == "drop":
            self.gate.finish(rec, 0, None, "drop")
            return self._hang_up(request)
        if fault is not None and fault.kind == "server_error":
            self.gate.finish(rec, fault.status, None, "server_error")
            return web.Response(status=fault.status, text="<html><body><h1>Service Unavailable</h1></body></html>",
                                content_type="text/html")
        if fault is not None and fault.kind in ("rate_limit", "ban"):
            status = 429 if fault.kind == "rate_limit" else 418
            self.gate.start_backoff(fault.retry_after_s)
            self.gate.finish(rec, status, -1003, fault.kind)
            return self._limit_answer(status, fault.retry_after_s)
        banned = self.gate.banned()
        if banned is not None:
            self.gate.finish(rec, 418, -1003, "banned")
            return self._limit_answer(418, banned)
        route = self.routes.get((method, path))
        if route is None:
            self.gate.finish(rec, 404, None, None)
            return web.json_response({"code": -1, "msg": f"unknown path {method} {path}"}, status=404)
        name, weight, signed = route
        gate_status, retry, used = self.gate.charge(weight)
        if gate_status != 200:
            self.gate.finish(rec, gate_status, -1003, "weight")
            return self._limit_answer(gate_status, retry)
        try:
            with self.lock:
                acct = None
                if signed:
                    secret = check_api_key(api_key, self.secrets)
                    verify_signed(query, body, params, secret, self.wall_ms(), self.engine.cfg.default_recv_window_ms)
                    acct = self.engine.accounts[api_key]
                elif name in _KEY_ONLY:
                    check_api_key(api_key, self.secrets)
                    acct = self.engine.accounts[api_key]
                self.engine.sync()
                payload = getattr(self, "h_" + name)(params, acct)
            status, code = 200, None
        except ApiError as e:
            payload, status, code = e.payload(), e.http_status, e.code
        if fault is not None and fault.kind == "lost_ack":
            self.gate.finish(rec, 0, code, "lost_ack")
            return self._hang_up(request)
        self.gate.finish(rec, status, code, "delay" if fault is not None else None)
        headers = {"X-MBX-USED-WEIGHT-1M": str(used)}
        return web.Response(status=status, text=json.dumps(payload, separators=(",", ":")),
                            content_type="application/json", headers=headers)

    @staticmethod
    def _hang_up(request: web.Request) -> web.StreamResponse:
        """Close the connection without an answer (the client sees a reset / remote disconnect)."""
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError  # aiohttp drops the handler quietly; nothing is written

    @staticmethod
    def _limit_answer(status: int, retry_after: int) -> web.Response:
        msg = ("Too many requests; current limit is exceeded. Please use the websocket for live updates."
               if status == 429 else "Way too many requests; IP banned until further notice.")
        return web.Response(status=status, text=json.dumps({"code": -1003, "msg": msg}),
                            content_type="application/json", headers={"Retry-After": str(retry_after)})

    # -- public ---------------------------------------------------------------------------------

    def h_ping(self, params, acct):
        return {}

    def h_time(self, params, acct):
        return {"serverTime": self.wall_ms()}

    def h_exchange_info(self, params, acct):
        return wire.exchange_info(self.engine.cfg, self.wall_ms())

    def h_depth(self, params, acct):
        sym = self.engine.symbol_of(params)
        limit = _int(params, "limit", 100, 1, 5000)
        return depth_snapshot(self.engine, sym, limit)  # the book the depth streams diff

    def h_agg_trades(self, params, acct):
        sym = self.engine.symbol_of(params)
        tape = self.engine.tapes[sym]
        limit = _int(params, "limit", 500, 1, 1000)
        hi = tape.cursor  # only what the replay has reached
        from_id = _int(params, "fromId")
        start, end = _int(params, "startTime"), _int(params, "endTime")
        if from_id is not None and (start is not None or end is not None):
            raise ApiError(-1128, "Combination of optional parameters invalid.")
        t_ms = tape.ts[:hi] // 1_000_000
        if from_id is not None:
            lo = int(np.searchsorted(tape.agg_id[:hi], from_id, side="left"))
            return wire.agg_trades(tape, lo, min(hi, lo + limit))
        if start is not None or end is not None:
            if start is not None and end is not None and end - start > 3_600_000:
                raise ApiError(-1127, "More than 1 hours between startTime and endTime.")
            stop = hi if end is None else int(np.searchsorted(t_ms, end, side="right"))
            lo = int(np.searchsorted(t_ms, start, side="left")) if start is not None else max(0, stop - limit)
            return wire.agg_trades(tape, lo, min(stop, lo + limit))
        return wire.agg_trades(tape, max(0, hi - limit), hi)

    def h_klines(self, params, acct):
        sym = self.engine.symbol_of(params)
        interval = params.get("interval")
        if not interval:
            raise E.mandatory("interval")
        if interval not in wire.INTERVAL_MS:
            raise ApiError(-1120, "Invalid interval.")
        limit = _int(params, "limit", 500, 1, 1000 if self.engine.market == Market.SPOT else 1500)
        tape = self.engine.tapes[sym]
        return wire.klines(tape, tape.cursor, wire.INTERVAL_MS[interval], _int(params, "startTime"),
                           _int(params, "endTime"), limit)

    # -- orders ---------------------------------------------------------------------------------

    def h_new_order(self, params, acct):
        if self.engine.market == Market.USDM and params.get("type") in _ALGO_TYPES:
            raise ApiError(-4120, "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.")
        o = self.engine.place(acct, params)
        if self.engine.market == Market.USDM:
            return wire.order_json(self.engine, o, ack=True)
        resp = params.get("newOrderRespType") or ("FULL" if o.type in ("MARKET", "LIMIT") else "ACK")
        if resp not in ("ACK", "RESULT", "FULL"):
            raise ApiError(-1100, "Illegal characters found in parameter 'newOrderRespType'.")
        if resp == "ACK":
            return {"symbol": o.symbol, "orderId": o.order_id, "orderListId": -1, "clientOrderId": o.client_id,
                    "transactTime": o.time_ms}
        return wire.order_json(self.engine, o, ack=True, full=resp == "FULL")

    def h_get_order(self, params, acct):
        sym = self.engine.symbol_of(params)
        return wire.order_json(self.engine, self.engine.find(acct, sym, params, E.NO_SUCH_ORDER))

    def h_cancel_order(self, params, acct):
        sym = self.engine.symbol_of(params)
        o = self.engine.find(acct, sym, params, E.UNKNOWN_ORDER)
        cancel_cid = params.get("newClientOrderId") or f"cancel{o.order_id:08d}"
        self.engine.cancel(acct, o, cancel_cid)
        return wire.cancel_json(self.engine, o, cancel_cid)

    def h_cancel_all(self, params, acct):
        sym = self.engine.symbol_of(params)
        done = [self.engine.cancel(acct, o, f"cancel{o.order_id:08d}") for o in list(acct.open_orders.values())
                if o.symbol == sym and o.is_open]
        if self.engine.market == Market.USDM:
            return {"code": 200, "msg": "The operation of cancel all open order is done."}
        return [wire.cancel_json(self.engine, o, f"cancel{o.order_id:08d}") for o in done]

    def h_open_orders(self, params, acct):
        sym = params.get("symbol")
        if sym is not None:
            sym = self.engine.symbol_of(params)
        return [wire.order_json(self.engine, o) for o in acct.open_orders.values()
                if o.is_open and (sym is None or o.symbol == sym)
                and (self.engine.market == Market.SPOT or o.trigger is None or o.triggered)]

    def _window(self, params, items, ts_of, id_of, id_param):
        start, end = _int(params, "startTime"), _int(params, "endTime")
        from_id = _int(params, id_param)
        limit = _int(params, "limit", 500, 1, 1000)
        out = [x for x in items if (start is None or ts_of(x) >= start) and (end is None or ts_of(x) <= end)
               and (from_id is None or id_of(x) >= from_id)]
        return out[:limit] if (start is not None or from_id is not None) else out[-limit:]

    def h_all_orders(self, params, acct):
        sym = self.engine.symbol_of(params)
        orders = [o for o in acct.orders.values() if o.symbol == sym]
        sel = self._window(params, orders, lambda o: o.time_ms, lambda o: o.order_id, "orderId")
        return [wire.order_json(self.engine, o) for o in sel]

    def h_my_trades(self, params, acct):
        sym = self.engine.symbol_of(params)
        fills = [f for f in acct.fills if f.symbol == sym]
        oid = _int(params, "orderId")
        if oid is not None:
            fills = [f for f in fills if f.order_id == oid]
        sel = self._window(params, fills, lambda f: f.ts_ms, lambda f: f.trade_id, "fromId")
        return [wire.trade_json(self.engine, f, acct.orders[f.order_id]) for f in sel]

    # -- accounts -------------------------------------------------------------------------------

    def h_spot_account(self, params, acct):
        return wire.spot_account(self.engine, acct)

    def h_usdm_account_v2(self, params, acct):
        return wire.usdm_account(self.engine, acct, 2)

    def h_usdm_account_v3(self, params, acct):
        return wire.usdm_account(self.engine, acct, 3)

    def h_usdm_balance(self, params, acct):
        return wire.usdm_balance(self.engine, acct)

    def h_position_risk_v2(self, params, acct):
        return wire.position_risk(self.engine, acct, 2, params.get("symbol"))

    def h_position_risk_v3(self, params, acct):
        return wire.position_risk(self.engine, acct, 3, params.get("symbol"))

    def h_position_mode(self, params, acct):
        return {"dualSidePosition": False}

    def h_leverage(self, params, acct):
        sym = self.engine.symbol_of(params)
        lev = _int(params, "leverage")
        if lev is None:
            raise E.mandatory("leverage")
        self.engine.set_leverage(acct, sym, lev)
        return {"leverage": lev, "maxNotionalValue": "1000000", "symbol": sym}

    def h_leverage_bracket(self, params, acct):
        """One bracket per symbol: the emulator's maintenance margin is a flat 0.4 % of notional."""
        syms = [self.engine.symbol_of(params)] if params.get("symbol") else list(self.engine.symbols)
        return [{"symbol": s, "notionalCoef": 1.0, "brackets": [
            {"bracket": 1, "initialLeverage": int(self.engine.symbols[s].instrument.max_leverage),
             "notionalCap": 1_000_000_000, "notionalFloor": 0, "maintMarginRatio": wire.MAINT_MARGIN_RATE, "cum": 0.0}]}
            for s in syms]

    # -- USD-M Algo Order API (conditional orders since Binance's 2025 change; ccxt 4.5 uses it) --

    def h_new_algo(self, params, acct):
        if params.get("algoType") != "CONDITIONAL":
            raise E.mandatory("algoType")
        if params.get("type") not in _ALGO_TYPES[:4]:
            raise E.err(E.INVALID_TYPE)
        p = {k: v for k, v in params.items() if k not in ("triggerPrice", "clientAlgoId", "algoType")}
        if params.get("triggerPrice"):
            p["stopPrice"] = params["triggerPrice"]
        if params.get("clientAlgoId"):
            p["newClientOrderId"] = params["clientAlgoId"]
        return wire.algo_json(self.engine.place(acct, p))

    def _find_algo(self, params, acct, missing):
        aid, cid = params.get("algoId"), params.get("clientAlgoId")
        if aid is None and cid is None:
            raise ApiError(-1102, "Param 'algoId' or 'clientAlgoId' must be sent, but both were empty/null!")
        for o in sorted(acct.orders.values(), key=lambda o: -o.order_id):
            if o.trigger is not None and (str(o.order_id) == aid or (aid is None and o.client_id == cid)):
                return o
        raise E.err(missing)

    def h_get_algo(self, params, acct):
        return wire.algo_json(self._find_algo(params, acct, E.NO_SUCH_ORDER))

    def h_cancel_algo(self, params, acct):
        o = self._find_algo(params, acct, E.UNKNOWN_ORDER)
        if o.triggered:
            raise E.err(E.UNKNOWN_ORDER)
        self.engine.cancel(acct, o)
        return {"algoId": o.order_id, "clientAlgoId": o.client_id, "code": "200", "msg": "success"}

    def h_open_algos(self, params, acct):
        sym = self.engine.symbol_of(params) if params.get("symbol") else None
        return [wire.algo_json(o) for o in acct.orders.values()
                if o.trigger is not None and o.is_open and not o.triggered and sym in (None, o.symbol)]

    def h_all_algos(self, params, acct):
        sym = self.engine.symbol_of(params)
        return [wire.algo_json(o) for o in acct.orders.values() if o.trigger is not None and o.symbol == sym]

    # -- user data stream listenKeys (API key only; emulator.ws_user) ----------------------------

    def _user(self):
        if self.user_streams is None:
            raise ApiError(-1000, "User data streams are not enabled on this server.")
        return self.user_streams

    def h_listen_key_new(self, params, acct):
        return {"listenKey": self._user().keys.create(acct.cfg.api_key)}

    def h_listen_key_keepalive(self, params, acct):
        key = self._user().keys.keepalive(acct.cfg.api_key, params.get("listenKey"),
                                          required=self.engine.market == Market.SPOT)
        return {} if self.engine.market == Market.SPOT else {"listenKey": key}

    def h_listen_key_delete(self, params, acct):
        self._user().delete(acct.cfg.api_key, params.get("listenKey"), required=self.engine.market == Market.SPOT)
        return {}
