"""User-data streams of the emulator: listenKeys, the order/account events, and the spot WebSocket
API subscription that ccxt.pro 4.5.90 uses for spot.

- listenKey (API key header only, no signature, as Binance): spot `POST|PUT|DELETE
  /api/v3/userDataStream` (PUT/DELETE need `listenKey`), USD-M `POST|PUT|DELETE /fapi/v1/listenKey`
  (the key is found by the API key). POST returns the account's active key when it has one (and
  extends it). A key is valid `WsConfig.listen_key_ttl_s` (60 min) after its last POST/PUT (wall
  clock); PUT/DELETE of an unknown or expired key → -1125 "This listenKey does not exist.".
- streams: `/ws/<listenKey>` (spot, USD-M) and `/private/ws?listenKey=<key>` (USD-M; ccxt's URL).
  On expiry the server sends {"e": "listenKeyExpired", "E", "listenKey"} and closes the stream
  (close 1000); DELETE closes it without that event.
- spot WebSocket API at `/ws-api/v3`: `userDataStream.subscribe.signature` (params apiKey,
  timestamp, [recvWindow], signature = HMAC-SHA256 of the other params sorted by name),
  answered {"id", "status": 200, "result": {"subscriptionId": n}}; events then arrive as
  {"subscriptionId": n, "event": {...}}. Also `userDataStream.unsubscribe`, `ping`, `time`.

Events (built at the moment the engine changes the order, under the engine lock):

- spot: `executionReport` (x NEW / TRADE / CANCELED / EXPIRED) followed by
  `outboundAccountPosition` with the symbol's two assets (placement locks, fills, releases);
  `balanceUpdate` for `EmulatorServer.adjust_balance` (a deposit or withdrawal).
- USD-M: `ORDER_TRADE_UPDATE` (x NEW / TRADE / CANCELED / EXPIRED), `ACCOUNT_UPDATE` (m ORDER)
  after every fill with the USDT wallet and the symbol's position; conditional orders placed
  through /fapi/v1/algoOrder: `ALGO_UPDATE` X NEW at placement, CANCELED / EXPIRED before the
  trigger, TRIGGERED (ai = the order id, then the order's own ORDER_TRADE_UPDATE NEW), FINISHED
  when the triggered order is final.
"""

from __future__ import annotations

import json
import secrets as _secrets
import string
import time
from typing import TYPE_CHECKING

from core.enums import Market
from emulator import errors as E
from emulator.auth import check_api_key, verify_signed
from emulator.config import split_symbol
from emulator.engine import Account, Engine, Fill, Order
from emulator.errors import ApiError
from emulator.wire import f8

if TYPE_CHECKING:
    from emulator.ws_market import Conn, WsConfig, WsHub

NO_LISTEN_KEY = (-1125, "This listenKey does not exist.")
_ALNUM = string.ascii_letters + string.digits


class ListenKeys:
    """Active listenKeys: key → (api key, expiry on the monotonic clock). One key per account."""

    def __init__(self, ttl_s: float, clock=time.monotonic):
        self.ttl_s = ttl_s
        self.clock = clock
        self._keys: dict[str, list] = {}  # key → [api_key, expires_at]

    @staticmethod
    def looks_like(s: str) -> bool:
        return len(s) == 64 and all(ch in _ALNUM for ch in s)

    def valid(self, key: str) -> bool:
        v = self._keys.get(key)
        return v is not None and v[1] > self.clock()

    def owner(self, key: str) -> str | None:
        v = self._keys.get(key)
        return v[0] if v is not None else None

    def of_account(self, api_key: str) -> str | None:
        for k, (owner, exp) in self._keys.items():
            if owner == api_key and exp > self.clock():
                return k
        return None

    def create(self, api_key: str) -> str:
        key = self.of_account(api_key)
        if key is None:
            key = "".join(_secrets.choice(_ALNUM) for _ in range(64))
        self._keys[key] = [api_key, self.clock() + self.ttl_s]
        return key

    def _find(self, api_key: str, key: str | None, required: bool) -> str:
        if key is None and required:
            raise E.mandatory("listenKey")
        if key is None:
            key = self.of_account(api_key)
        if key is None or not self.valid(key) or self.owner(key) != api_key:
            raise E.err(NO_LISTEN_KEY)
        return key

    def keepalive(self, api_key: str, key: str | None, required: bool) -> str:
        key = self._find(api_key, key, required)
        self._keys[key][1] = self.clock() + self.ttl_s
        return key

    def remove(self, api_key: str, key: str | None, required: bool) -> str:
        key = self._find(api_key, key, required)
        del self._keys[key]
        return key

    def expire(self, key: str) -> None:
        """Test control: the key expires now."""
        if key in self._keys:
            self._keys[key][1] = self.clock() - 1.0

    def pop_expired(self) -> list[str]:
        now = self.clock()
        gone = [k for k, (_, exp) in self._keys.items() if exp <= now]
        for k in gone:
            del self._keys[k]
        return gone


def _side(side: int) -> str:
    return "BUY" if side == 1 else "SELL"


class UserStreams:
    """Order/account events → the connections of the account (listenKey streams, ws-api subscriptions)."""

    def __init__(self, engine: Engine, hub: WsHub, cfg: WsConfig, wall_ms):
        self.engine = engine
        self.hub = hub
        self.wall_ms = wall_ms
        self.spot = engine.market == Market.SPOT
        self.keys = ListenKeys(cfg.listen_key_ttl_s)
        self.secrets = {k: a.cfg.secret for k, a in engine.accounts.items()}
        self.events: list[tuple[str, dict]] = []  # (api key, payload) of every event built, for tests
        self._next_sub = 0
        engine.listener = self.on_engine_event

    # -- connections ----------------------------------------------------------------------------------

    def attach(self, c: Conn, key: str) -> None:
        c.listen_key = key

    def detach(self, c: Conn) -> None:
        c.listen_key = None
        c.user_subs.clear()

    def _targets(self, api_key: str) -> list[tuple[Conn, int | None]]:
        out = []
        for c in list(self.hub.conns):
            if c.listen_key is not None and self.keys.owner(c.listen_key) == api_key:
                out.append((c, None))
            for sid, owner in list(c.user_subs.items()):
                if owner == api_key:
                    out.append((c, sid))
        return out

    def deliver(self, api_key: str, payloads: list[dict]) -> None:
        """Loop thread: send `payloads` to every user stream of `api_key`."""
        for c, sid in self._targets(api_key):
            for p in payloads:
                label = "user@" + p["e"]
                if sid is not None:
                    self.hub.send(c, label, {"subscriptionId": sid, "event": p})
                else:
                    self.hub.send(c, label, p, stream=c.listen_key)

    def post(self, api_key: str, payloads: list[dict]) -> None:
        """Any thread (engine lock held): hand `payloads` to the loop for delivery."""
        for p in payloads:
            self.events.append((api_key, p))
        self.hub.call_in_loop(lambda: self.deliver(api_key, payloads))

    def delete(self, api_key: str, key: str | None, required: bool) -> None:
        key = self.keys.remove(api_key, key, required)
        self.hub.call_in_loop(lambda: self._close_key(key, None))

    def _close_key(self, key: str, event: dict | None) -> None:
        for c in list(self.hub.conns):
            if c.listen_key == key:
                if event is not None:
                    self.hub.send(c, "user@" + event["e"], event, stream=key)
                self.hub.close(c, code=1000, after_queue=True)

    def expire_due(self) -> None:
        """Loop thread: close the streams of keys past their validity, with listenKeyExpired."""
        for key in self.keys.pop_expired():
            now = self.engine.now_ms()
            self._close_key(key, {"e": "listenKeyExpired", "E": now, "listenKey": key})

    # -- the spot WebSocket API ---------------------------------------------------------------------

    def handle_ws_api(self, c: Conn, text: str) -> None:
        try:
            req = json.loads(text)
        except ValueError:
            self.hub.reply(c, {"id": None, "status": 400, "error": {"code": -1000, "msg": "Malformed request."}})
            return
        rid = req.get("id") if isinstance(req, dict) else None
        method = req.get("method") if isinstance(req, dict) else None
        params = req.get("params") or {} if isinstance(req, dict) else {}
        try:
            if method == "ping":
                result = {}
            elif method == "time":
                result = {"serverTime": self.wall_ms()}
            elif method == "userDataStream.subscribe.signature":
                api_key = self._check_signature(params)
                sid = self._next_sub
                self._next_sub += 1
                c.user_subs[sid] = api_key
                result = {"subscriptionId": sid}
            elif method == "userDataStream.unsubscribe":
                sid = params.get("subscriptionId")
                if sid is None:
                    c.user_subs.clear()
                elif int(sid) in c.user_subs:
                    del c.user_subs[int(sid)]
                else:
                    raise ApiError(-2, "Not subscribed to the user data stream.", 400)
                result = {}
            elif method == "session.subscriptions":
                result = [{"subscriptionId": s} for s in sorted(c.user_subs)]
            else:
                raise ApiError(-1020, "This operation is not supported.", 400)
        except ApiError as e:
            self.hub.reply(c, {"id": rid, "status": e.http_status, "error": {"code": e.code, "msg": e.msg}})
            return
        self.hub.reply(c, {"id": rid, "status": 200, "result": result})

    def _check_signature(self, params: dict) -> str:
        api_key = params.get("apiKey")
        secret = check_api_key(api_key, self.secrets)
        sig = params.get("signature")
        if not sig:
            raise E.mandatory("signature")
        strp = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in params.items()}
        query = "&".join(f"{k}={strp[k]}" for k in sorted(strp) if k != "signature")
        verify_signed(query + "&signature=" + str(sig), "", strp, secret, self.wall_ms(),
                      self.engine.cfg.default_recv_window_ms)
        return api_key

    # -- events ---------------------------------------------------------------------------------------

    def on_engine_event(self, acct: Account, o: Order, kind: str, fill: Fill | None, ts_ms: int) -> None:
        now = self.engine.now_ms()
        if self.spot:
            if kind == "TRIGGERED":
                return
            payloads = [self._execution_report(o, kind, fill, now, ts_ms), self._account_position(acct, o, now)]
        else:
            payloads = self._usdm_events(acct, o, kind, fill, now, ts_ms)
        if payloads:
            self.post(acct.cfg.api_key, payloads)

    def _execution_report(self, o: Order, x: str, f: Fill | None, now: int, ts: int) -> dict:
        cancel = x == "CANCELED" and o.cancel_client_id is not None
        working = o.is_open and o.exec_kind == "limit" and (o.trigger is None or o.triggered)
        return {"e": "executionReport", "E": now, "s": o.symbol, "c": o.cancel_client_id if cancel else o.client_id,
                "S": _side(o.side), "o": o.type, "f": o.tif or "GTC", "q": f8(o.qty), "p": f8(o.price),
                "P": f8(o.stop_price), "F": "0.00000000", "g": -1, "C": o.client_id if cancel else "",
                "x": x, "X": o.status, "r": "NONE", "i": o.order_id,
                "l": f8(f.qty if f else 0.0), "z": f8(o.executed), "L": f8(f.price if f else 0.0),
                "n": f8(f.commission) if f else "0", "N": f.commission_asset if f else None,
                "T": f.ts_ms if f else ts, "t": f.trade_id if f else -1, "I": o.order_id * 10,
                "w": working, "m": bool(f.is_maker) if f else False, "M": False, "O": o.time_ms,
                "Z": f8(o.cum_quote), "Y": f8(f.price * f.qty if f else 0.0), "Q": "0.00000000",
                "W": o.time_ms if o.trigger is None or o.triggered else -1, "V": "NONE"}

    def _account_position(self, acct: Account, o: Order, now: int) -> dict:
        assets = split_symbol(o.symbol)
        return {"e": "outboundAccountPosition", "E": now, "u": acct.update_ms or now,
                "B": [{"a": a, "f": f8(acct.balances[a][0]), "l": f8(acct.balances[a][1])} for a in assets]}

    def _usdm_events(self, acct: Account, o: Order, kind: str, f: Fill | None, now: int, ts: int) -> list[dict]:
        algo = o.trigger is not None
        out: list[dict] = []
        if algo and kind == "NEW":
            return [self._algo_update(o, "NEW", now, ts)]
        if algo and kind in ("CANCELED", "EXPIRED") and not o.triggered:
            return [self._algo_update(o, kind, now, ts)]
        if kind == "TRIGGERED":
            return [self._algo_update(o, "TRIGGERED", now, ts), self._order_update(acct, o, "NEW", None, now, ts)]
        out.append(self._order_update(acct, o, kind, f, now, ts))
        if f is not None:
            out.append(self._account_update(acct, o.symbol, now, ts))
        if algo and not o.is_open:
            out.append(self._algo_update(o, "FINISHED", now, ts))
        return out

    def _order_update(self, acct: Account, o: Order, x: str, f: Fill | None, now: int, ts: int) -> dict:
        bids = sum(q.remaining * (q.price or 0.0) for q in acct.open_orders.values()
                   if q.is_open and q.symbol == o.symbol and q.side == 1 and (q.trigger is None or q.triggered))
        asks = sum(q.remaining * (q.price or 0.0) for q in acct.open_orders.values()
                   if q.is_open and q.symbol == o.symbol and q.side == -1 and (q.trigger is None or q.triggered))
        d = {"s": o.symbol, "c": o.client_id, "S": _side(o.side), "o": o.type, "f": o.tif or "GTC", "q": f8(o.qty),
             "p": f8(o.price), "ap": f8(o.avg_price), "sp": f8(o.stop_price), "x": x, "X": o.status, "i": o.order_id,
             "l": f8(f.qty if f else 0.0), "z": f8(o.executed), "L": f8(f.price if f else 0.0)}
        if f is not None:
            d.update({"N": f.commission_asset, "n": f8(f.commission)})
        d.update({"T": f.ts_ms if f else ts, "t": f.trade_id if f else 0, "b": f8(bids), "a": f8(asks),
                  "m": bool(f.is_maker) if f else False, "R": o.reduce_only, "wt": "CONTRACT_PRICE", "ot": o.type,
                  "ps": "BOTH", "cp": False, "rp": f8(f.realized_pnl if f else 0.0), "pP": False, "si": 0, "ss": 0,
                  "V": "NONE", "pm": "NONE", "gtd": 0})
        return {"e": "ORDER_TRADE_UPDATE", "E": now, "T": d["T"], "o": d}

    def _account_update(self, acct: Account, sym: str, now: int, ts: int) -> dict:
        led = acct.ledger
        self.engine.mark_all(acct)
        p = led.position(sym)
        realized = sum(f.realized_pnl for f in acct.fills if f.symbol == sym)
        _, quote = split_symbol(sym)
        return {"e": "ACCOUNT_UPDATE", "E": now, "T": ts, "a": {
            "m": "ORDER",
            "B": [{"a": quote, "wb": f8(led.wallet), "cw": f8(led.wallet), "bc": "0"}],
            "P": [{"s": sym, "pa": f8(p.qty), "ep": f8(p.avg_price if p.qty else 0.0),
                   "bep": f8(p.avg_price if p.qty else 0.0), "cr": f8(realized),
                   "up": f8(p.unrealized_pnl if p.qty else 0.0), "mt": "cross", "iw": "0", "ps": "BOTH", "ma": quote}]}}

    def _algo_update(self, o: Order, status: str, now: int, ts: int) -> dict:
        d = {"caid": o.client_id, "aid": o.order_id, "at": "CONDITIONAL", "o": o.type, "s": o.symbol,
             "S": _side(o.side), "ps": "BOTH", "f": o.tif or "GTC", "q": f8(o.qty), "X": status,
             "ai": str(o.order_id) if o.triggered else "", "ap": f8(o.avg_price), "aq": f8(o.executed),
             "act": ("MARKET" if o.exec_kind == "market" else "LIMIT") if o.triggered else "0",
             "tp": f8(o.stop_price), "p": f8(o.price), "V": "NONE", "wt": "CONTRACT_PRICE", "pm": "NONE",
             "cp": False, "pP": False, "R": o.reduce_only, "tt": o.update_ms if o.triggered else 0, "gtd": 0, "rm": ""}
        return {"e": "ALGO_UPDATE", "T": ts, "E": now, "o": d}

    # -- balance changes outside orders ---------------------------------------------------------------

    def balance_event(self, acct: Account, asset: str, delta: float) -> None:
        now = self.engine.now_ms()
        if self.spot:
            bal = acct.balances[asset]
            payloads = [{"e": "balanceUpdate", "E": now, "a": asset, "d": f8(delta), "T": now},
                        {"e": "outboundAccountPosition", "E": now, "u": now,
                         "B": [{"a": asset, "f": f8(bal[0]), "l": f8(bal[1])}]}]
        else:
            w = acct.ledger.wallet
            payloads = [{"e": "ACCOUNT_UPDATE", "E": now, "T": now, "a": {
                "m": "DEPOSIT" if delta >= 0 else "WITHDRAW",
                "B": [{"a": asset, "wb": f8(w), "cw": f8(w), "bc": f8(delta)}], "P": []}}]
        self.post(acct.cfg.api_key, payloads)
