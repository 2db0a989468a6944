"""Websockets of the emulator: the connection hub (paths, SUBSCRIBE protocol, faults, delivery) and
the market streams, emitted as the replay clock advances.

Paths (what ccxt.pro 4.5.90 dials, see docs/emulator.md "Websockets"):

- raw `/ws`, `/ws/<stream>` and combined `/stream?streams=a/b` (messages wrapped as
  {"stream": name, "data": payload}); USD-M also `/public/ws[/…]`, `/market/ws[/…]`,
  `/public/stream`, `/market/stream` (ccxt rewrites `/ws` by channel: depth, bookTicker and trade go
  to /public, the rest to /market; the emulator serves every stream on every path). A path segment
  that is not a stream name (ccxt dials `/ws/0`, `/ws/1`, ...) opens a bare connection.
- `{"method": "SUBSCRIBE" | "UNSUBSCRIBE" | "LIST_SUBSCRIPTIONS", "params": [...], "id": N}` answered
  `{"result": null | [...], "id": N}`; a malformed request gets `{"error": {"code": 2, "msg": ...}, "id": N}`.
- user data: `/ws/<listenKey>` (spot and USD-M), `/private/ws?listenKey=<key>` (USD-M, what ccxt
  dials), `/ws-api/v3` (spot WebSocket API `userDataStream.subscribe.signature`, what ccxt dials):
  see `emulator.ws_user`.

Streams (symbol lower-case, as Binance): `<s>@aggTrade`, `<s>@trade`, `<s>@kline_<interval>`,
`<s>@depth[@100ms|@250ms|@500ms|@1000ms|@0ms]` (diffs), `<s>@depth<5|10|20>[@…ms]` (partial book),
`<s>@bookTicker`, `<s>@ticker`, `<s>@miniTicker`.

The book is synthetic and a pure function of the last trade price: price levels one tick apart,
bids below the last trade's level and asks above it, `BOOK_LEVELS` per side, each level's quantity
a fixed function of its price (`level_qty`). Its update id is the number of trades consumed
(`tape.cursor`, the REST snapshot's `lastUpdateId`); a depth event covers every update id after the
previous event (U = previous u + 1, usdm pu = previous u) and lists every level that changed at any
trade inside it, with its final quantity (0 = removed), so snapshot + diffs rebuild the book exactly.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from aiohttp import WSMsgType, web
from pydantic import Field

from core.config import FrozenConfig
from core.enums import Market
from emulator.engine import Engine
from emulator.faults import WsFaultGate, WsFaultRule
from emulator.wire import INTERVAL_MS, f8

BOOK_LEVELS = 5000  # levels per side of the synthetic book (the REST depth maximum)
DAY_MS = 86_400_000


class WsConfig(FrozenConfig):
    """Websocket settings of the emulator (`EmulatorServer(config, ws=WsConfig(...))`)."""

    listen_key_ttl_s: float = Field(3600.0, gt=0, description="listenKey validity after create/keep-alive (wall s)")
    pump_interval_s: float = Field(0.05, gt=0, le=5, description="accelerated clock: how often trades are pushed")
    heartbeat_s: float | None = Field(20.0, gt=0, description="server ping interval (Binance spot: 20 s)")
    faults: tuple[WsFaultRule, ...] = ()
    seed: int = Field(0, ge=0, description="seed of the probabilistic websocket faults")


# -- the synthetic book -----------------------------------------------------------------------------


def level_qty(level: int, step: float) -> float:
    """Quantity resting at price level `level` (= price / tick): 10..100 lots, fixed per price."""
    return round(step * (10 + (level * 7919) % 91), 8)


def price_level(price: float, tick: float) -> int:
    return round(price / tick)


def _px(level: int, tick: float) -> str:
    return f8(round(level * tick, 8))


def _book_center(engine: Engine, symbol: str) -> int:
    sc = engine.symbols[symbol]
    last = engine.last_price(symbol) or sc.initial_price
    return price_level(last, sc.instrument.tick_size)


def _side_levels(center: int, side: str, limit: int) -> range:
    return range(center - 1, center - 1 - limit, -1) if side == "bid" else range(center + 1, center + 1 + limit)


def _rows(center: int, side: str, limit: int, tick: float, step: float) -> list[list[str]]:
    return [[_px(lv, tick), f8(level_qty(lv, step))] for lv in _side_levels(center, side, limit)]


def depth_snapshot(engine: Engine, symbol: str, limit: int) -> dict:
    """GET depth: the top `limit` levels of the synthetic book; lastUpdateId = trades consumed."""
    inst = engine.symbols[symbol].instrument
    center = _book_center(engine, symbol)
    out = {"lastUpdateId": int(engine.tapes[symbol].cursor),
           "bids": _rows(center, "bid", limit, inst.tick_size, inst.step_size),
           "asks": _rows(center, "ask", limit, inst.tick_size, inst.step_size)}
    if engine.market == Market.USDM:
        now = engine.now_ms()
        out.update({"E": now, "T": now})
    return out


def book_changes(a: int, b: int, levels: int = BOOK_LEVELS) -> tuple[set[int], set[int]]:
    """(bid levels, ask levels) whose quantity differs between the books centred on levels a and b."""
    if a == b:
        return set(), set()
    old_b = set(_side_levels(a, "bid", levels)) if abs(a - b) > levels else None
    if old_b is not None:  # a jump beyond the book: everything changes
        return old_b | set(_side_levels(b, "bid", levels)), set(_side_levels(a, "ask", levels)) | set(_side_levels(b, "ask", levels))
    lo, hi = min(a, b), max(a, b)
    # bids are (c-L .. c-1): moving the centre between lo and hi changes [lo, hi-1] and [lo-L, hi-L-1]
    bids = set(range(lo, hi)) | set(range(lo - levels, hi - levels))
    # asks are (c+1 .. c+L): changes [lo+1, hi] and [lo+L+1, hi+L]
    asks = set(range(lo + 1, hi + 1)) | set(range(lo + levels + 1, hi + levels + 1))
    return bids, asks


# -- stream names ------------------------------------------------------------------------------------

_STREAM = re.compile(r"^([a-z0-9]+)@(aggTrade|trade|kline_[0-9]+[smhdwM]|depth(?:5|10|20)?|bookTicker|ticker|miniTicker)"
                     r"(?:@(100ms|250ms|500ms|1000ms|0ms))?$")


@dataclass(frozen=True)
class Stream:
    name: str
    symbol: str  # upper-case exchange id
    kind: str  # aggTrade | trade | kline | depth | partial | bookTicker | ticker | miniTicker
    interval: str | None = None  # kline
    levels: int = 0  # partial depth


def parse_stream(name: str, symbols: dict) -> Stream | None:
    """A market stream name → Stream; None when it is not one (bad syntax or unknown interval)."""
    m = _STREAM.match(name)
    if m is None:
        return None
    sym, kind = m.group(1).upper(), m.group(2)
    if kind.startswith("kline_"):
        interval = kind[len("kline_"):]
        if interval not in INTERVAL_MS or m.group(3):
            return None
        return Stream(name, sym, "kline", interval)
    if kind.startswith("depth") and kind != "depth":
        return Stream(name, sym, "partial", levels=int(kind[len("depth"):]))
    if m.group(3) and kind != "depth":
        return None
    return Stream(name, sym, kind)


# -- market data state ---------------------------------------------------------------------------------


@dataclass
class _Kline:
    t: int
    f: int
    L: int
    o: float
    h: float
    l: float  # Binance's field name
    c: float
    v: float = 0.0
    q: float = 0.0
    n: int = 0
    V: float = 0.0
    Q: float = 0.0

    def add(self, tape, i: int) -> None:
        p, qty = float(tape.price[i]), float(tape.qty[i])
        self.h, self.l, self.c = max(self.h, p), min(self.l, p), p
        self.v += qty
        self.q += p * qty
        self.n += 1
        self.L = int(tape.last_id[i])
        if not tape.buyer_maker[i]:
            self.V += qty
            self.Q += p * qty


@dataclass
class _DepthState:
    last_u: int  # update id of the last depth event (or of the state's start)
    center: int  # book centre level at the end of the last pump
    bids: set[int] = field(default_factory=set)  # levels changed since the last event
    asks: set[int] = field(default_factory=set)


class MarketStreams:
    """Builds the market-stream messages of the trades consumed since the last pump."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.usdm = engine.market == Market.USDM
        self.pub: dict[str, int] = {s: t.cursor for s, t in engine.tapes.items()}  # trades published
        self.klines: dict[tuple[str, str], _Kline | None] = {}
        self.depth: dict[str, _DepthState] = {}
        self._best: dict[str, int] = {}  # centre at the last bookTicker / partial push

    def _kline_from_history(self, sym: str, interval: str) -> _Kline | None:
        tape, iv = self.engine.tapes[sym], INTERVAL_MS[interval]
        hi = self.pub[sym]
        if hi == 0:
            return None
        t_last = int(tape.ts[hi - 1] // 1_000_000)
        start = t_last - t_last % iv
        if self.engine.now_ms() >= start + iv:
            return None  # that candle is closed already
        lo = int(np.searchsorted(tape.ts[:hi], start * 1_000_000, side="left"))
        k = _Kline(start, int(tape.first_id[lo]), 0, float(tape.price[lo]), float(tape.price[lo]), float(tape.price[lo]),
                   float(tape.price[lo]))
        for i in range(lo, hi):
            k.add(tape, i)
        return k

    def _kline_msg(self, sym: str, interval: str, k: _Kline, closed: bool, now: int) -> dict:
        iv = INTERVAL_MS[interval]
        return {"e": "kline", "E": now, "s": sym, "k": {
            "t": k.t, "T": k.t + iv - 1, "s": sym, "i": interval, "f": k.f, "L": k.L, "o": f8(k.o), "c": f8(k.c),
            "h": f8(k.h), "l": f8(k.l), "v": f8(k.v), "n": k.n, "x": closed, "q": f8(k.q), "V": f8(k.V), "Q": f8(k.Q),
            "B": "0"}}

    def collect(self, wanted: dict[str, Stream]) -> list[tuple[str, dict]]:
        """Messages (stream name, payload) for the streams in `wanted` (name → Stream), from the
        trades consumed since the last call. Called under the engine lock."""
        eng = self.engine
        now = eng.now_ms()
        out: list[tuple[str, dict]] = []
        by_sym: dict[str, list[Stream]] = {}
        for st in wanted.values():
            by_sym.setdefault(st.symbol, []).append(st)
        for sym, tape in eng.tapes.items():
            lo, hi = self.pub[sym], tape.cursor
            streams = by_sym.get(sym, [])
            kinds = {s.kind for s in streams}
            sc = eng.symbols[sym]
            tick, step = sc.instrument.tick_size, sc.instrument.step_size
            # depth state: kept up to date while anyone listens, else restarted at the present
            if "depth" in kinds:
                st = self.depth.get(sym)
                if st is None:  # starts at the last published trade: update id lo
                    prev = float(tape.price[lo - 1]) if lo else sc.initial_price
                    st = self.depth[sym] = _DepthState(lo, price_level(prev, tick))
                for i in range(lo, hi):
                    c = price_level(float(tape.price[i]), tick)
                    if c != st.center:
                        b, a = book_changes(st.center, c)
                        st.bids |= b
                        st.asks |= a
                        st.center = c
            else:
                self.depth.pop(sym, None)
            for name in [s.name for s in streams if s.kind == "kline"]:
                key = (sym, name.split("_", 1)[1])
                if key not in self.klines:
                    self.klines[key] = self._kline_from_history(sym, key[1])
            self.pub[sym] = hi
            if not streams:
                continue
            for s in streams:
                if s.kind == "aggTrade":
                    for i in range(lo, hi):
                        d = {"e": "aggTrade", "E": now, "s": sym, "a": int(tape.agg_id[i]), "p": f8(tape.price[i]),
                             "q": f8(tape.qty[i]), "f": int(tape.first_id[i]), "l": int(tape.last_id[i]),
                             "T": int(tape.ts[i] // 1_000_000), "m": bool(tape.buyer_maker[i])}
                        if self.usdm:
                            d["nq"] = d["q"]
                        else:
                            d["M"] = True
                        out.append((s.name, d))
                elif s.kind == "trade":
                    for i in range(lo, hi):
                        for tid, q in split_trade(tape, i, step):
                            t_ms = int(tape.ts[i] // 1_000_000)
                            if self.usdm:
                                d = {"e": "trade", "E": now, "T": t_ms, "s": sym, "t": tid, "p": f8(tape.price[i]),
                                     "q": f8(q), "X": "MARKET", "m": bool(tape.buyer_maker[i])}
                            else:
                                d = {"e": "trade", "E": now, "s": sym, "t": tid, "p": f8(tape.price[i]), "q": f8(q),
                                     "T": t_ms, "m": bool(tape.buyer_maker[i]), "M": True}
                            out.append((s.name, d))
                elif s.kind == "kline":
                    interval = s.interval
                    iv = INTERVAL_MS[interval]
                    k = self.klines.get((sym, interval))
                    changed = False
                    for i in range(lo, hi):
                        t_ms = int(tape.ts[i] // 1_000_000)
                        start = t_ms - t_ms % iv
                        if k is not None and k.t != start:
                            out.append((s.name, self._kline_msg(sym, interval, k, True, now)))
                            k = None
                        if k is None:
                            p = float(tape.price[i])
                            k = _Kline(start, int(tape.first_id[i]), 0, p, p, p, p)
                        k.add(tape, i)
                        changed = True
                    if k is not None and now >= k.t + iv:
                        out.append((s.name, self._kline_msg(sym, interval, k, True, now)))
                        k = None
                    elif k is not None and changed:
                        out.append((s.name, self._kline_msg(sym, interval, k, False, now)))
                    self.klines[(sym, interval)] = k
            if hi > lo and kinds & {"ticker", "miniTicker"}:
                tk = ticker_stats(eng, sym, now, hi)
                for s in streams:
                    if s.kind == "ticker":
                        out.append((s.name, tk["ticker"]))
                    elif s.kind == "miniTicker":
                        out.append((s.name, tk["mini"]))
            center = _book_center(eng, sym)
            moved = self._best.get(sym) != center
            self._best[sym] = center
            t_last = int(tape.ts[hi - 1] // 1_000_000) if hi else now
            for s in streams:
                if s.kind == "bookTicker" and moved:  # the best levels change only when the price level does
                    d = {"u": hi, "s": sym, "b": _px(center - 1, tick), "B": f8(level_qty(center - 1, step)),
                         "a": _px(center + 1, tick), "A": f8(level_qty(center + 1, step))}
                    if self.usdm:
                        d = {"e": "bookTicker", "u": hi, "E": now, "T": t_last, **{k: d[k] for k in "sbBaA"}}
                    out.append((s.name, d))
                elif s.kind == "partial" and moved:
                    bids = _rows(center, "bid", s.levels, tick, step)
                    asks = _rows(center, "ask", s.levels, tick, step)
                    if self.usdm:
                        out.append((s.name, {"e": "depthUpdate", "E": now, "T": t_last, "s": sym, "U": lo + 1, "u": hi,
                                             "pu": lo, "b": bids, "a": asks}))
                    else:
                        out.append((s.name, {"lastUpdateId": hi, "bids": bids, "asks": asks}))
            st = self.depth.get(sym)
            if st is not None and (st.bids or st.asks):
                final = st.center
                lo_b, lo_a = final - BOOK_LEVELS, final + 1
                b = [[_px(lv, tick), f8(level_qty(lv, step) if lo_b <= lv <= final - 1 else 0.0)] for lv in sorted(st.bids, reverse=True)]
                a = [[_px(lv, tick), f8(level_qty(lv, step) if lo_a <= lv <= final + BOOK_LEVELS else 0.0)] for lv in sorted(st.asks)]
                d = {"e": "depthUpdate", "E": now, "s": sym, "U": st.last_u + 1, "u": hi, "b": b, "a": a}
                if self.usdm:
                    d = {"e": "depthUpdate", "E": now, "T": t_last, "s": sym, "U": st.last_u + 1, "u": hi,
                         "pu": st.last_u, "b": b, "a": a}
                for s in streams:
                    if s.kind == "depth":
                        out.append((s.name, d))
                st.last_u = hi
                st.bids, st.asks = set(), set()
        return out


def split_trade(tape, i: int, step: float) -> list[tuple[int, float]]:
    """The individual trades (trade id, qty) of aggregate row i: its ids first..last, the quantity
    shared out in whole lots (the first ones get the remainder)."""
    first, last = int(tape.first_id[i]), int(tape.last_id[i])
    n = last - first + 1
    if n == 1:
        return [(first, float(tape.qty[i]))]
    units = round(float(tape.qty[i]) / step)
    base, rem = divmod(units, n)
    if base == 0:  # fewer lots than trades: cannot happen on the synthetic tape, be safe anyway
        return [(first + k, float(tape.qty[i]) if k == 0 else 0.0) for k in range(n)]
    return [(first + k, round((base + (1 if k < rem else 0)) * step, 8)) for k in range(n)]


def ticker_stats(engine: Engine, sym: str, now: int, hi: int) -> dict:
    """24hrTicker and 24hrMiniTicker payloads over the trades of the last 24 h of market time."""
    tape = engine.tapes[sym]
    lo = int(np.searchsorted(tape.ts[:hi], (now - DAY_MS) * 1_000_000, side="left"))
    p, q = tape.price[lo:hi], tape.qty[lo:hi]
    o, c = float(p[0]), float(p[-1])
    vol, quote = float(q.sum()), float((p * q).sum())
    sc = engine.symbols[sym]
    center = _book_center(engine, sym)
    tick, step = sc.instrument.tick_size, sc.instrument.step_size
    usdm = engine.market == Market.USDM
    t = {"e": "24hrTicker", "E": now, "s": sym, "p": f8(c - o), "P": f"{100.0 * (c - o) / o:.3f}",
         "w": f8(quote / vol if vol else 0.0)}
    if not usdm:
        t["x"] = f8(tape.price[lo - 1] if lo > 0 else o)
    t.update({"c": f8(c), "Q": f8(q[-1])})
    if not usdm:
        t.update({"b": _px(center - 1, tick), "B": f8(level_qty(center - 1, step)), "a": _px(center + 1, tick),
                  "A": f8(level_qty(center + 1, step))})
    first, last = int(tape.first_id[lo]), int(tape.last_id[hi - 1])
    t.update({"o": f8(o), "h": f8(p.max()), "l": f8(p.min()), "v": f8(vol), "q": f8(quote), "O": now - DAY_MS,
              "C": now, "F": first, "L": last, "n": last - first + 1})
    mini = {"e": "24hrMiniTicker", "E": now, "s": sym, "c": f8(c), "o": f8(o), "h": f8(p.max()), "l": f8(p.min()),
            "v": f8(vol), "q": f8(quote)}
    return {"ticker": t, "mini": mini}


# -- connections -----------------------------------------------------------------------------------


_conn_ids = itertools.count(1)


@dataclass(eq=False)
class Conn:
    """One websocket connection."""

    ws: web.WebSocketResponse
    path: str
    combined: bool
    streams: set[str] = field(default_factory=set)
    listen_key: str | None = None  # a user-data stream by listenKey
    ws_api: bool = False  # the spot WebSocket API
    user_subs: dict[int, str] = field(default_factory=dict)  # ws-api: subscriptionId → api key
    n: int = field(default_factory=lambda: next(_conn_ids))
    out: asyncio.Queue | None = None
    sender: asyncio.Task | None = None
    sent: int = 0
    closing: bool = False


_CLOSE = object()


class WsHub:
    """All websocket connections of one server: routing, subscriptions, delivery with faults, and
    the pump that turns replayed trades into stream messages (and keeps the engine matching when the
    clock runs by itself)."""

    def __init__(self, engine: Engine, lock: threading.Lock, cfg: WsConfig, wall_ms: Callable[[], int]):
        from emulator.ws_user import UserStreams

        self.engine = engine
        self.lock = lock
        self.cfg = cfg
        self.wall_ms = wall_ms
        self.spot = engine.market == Market.SPOT
        self.market = MarketStreams(engine)
        self.faults = WsFaultGate(cfg.faults, cfg.seed)
        self.user = UserStreams(engine, self, cfg, wall_ms)
        self.conns: set[Conn] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task] = []
        self._loop_thread: int | None = None
        self.log: list[tuple[int, str, str]] = []  # (connection id, direction, text) of control messages

    # -- app wiring ---------------------------------------------------------------------------------

    def setup(self, app: web.Application) -> None:
        paths = ["/ws", "/ws/{name}", "/stream"]
        if self.spot:
            paths.append("/ws-api/v3")
        else:
            paths += ["/public/ws", "/public/ws/{name}", "/market/ws", "/market/ws/{name}", "/public/stream",
                      "/market/stream", "/private/ws", "/private/ws/{name}"]
        for p in paths:
            app.router.add_get(p, self.handle)
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)

    async def _on_startup(self, app) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wake = asyncio.Event()
        self._tasks = [asyncio.ensure_future(self._pump_loop()), asyncio.ensure_future(self._expiry_loop())]

    async def _on_shutdown(self, app) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for c in list(self.conns):
            c.closing = True
            if c.sender is not None:
                c.sender.cancel()
            await c.ws.close(code=1001, message=b"server shutdown")

    def wake(self) -> None:
        """Thread-safe: push what the clock has revealed now (called after a manual clock move)."""
        loop = self._loop
        if loop is not None and not loop.is_closed() and self._wake is not None:
            try:
                loop.call_soon_threadsafe(self._wake.set)
            except RuntimeError:  # loop closing
                pass

    def call_in_loop(self, fn: Callable[[], None]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            if threading.get_ident() == self._loop_thread:
                loop.call_soon(fn)
            else:
                loop.call_soon_threadsafe(fn)
        except RuntimeError:
            pass

    # -- the pump -----------------------------------------------------------------------------------

    async def _pump_loop(self) -> None:
        interval = self.cfg.pump_interval_s if not self.engine.clock.manual else 1.0
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), interval)
            except TimeoutError:
                pass
            self._wake.clear()
            self.pump()

    def pump(self) -> None:
        """Match what market time has reached and send the resulting stream messages (loop thread)."""
        wanted: dict[str, Stream] = {}
        for c in self.conns:
            for name in c.streams:
                if name not in wanted:
                    st = parse_stream(name, self.engine.symbols)
                    if st is not None and st.symbol in self.engine.symbols:
                        wanted[name] = st
        with self.lock:
            self.engine.sync()
            msgs = self.market.collect(wanted)
        if not msgs:
            return
        for c in list(self.conns):
            if not c.streams:
                continue
            for name, payload in msgs:
                if name in c.streams:
                    self.send(c, name, payload, stream=name)

    async def _expiry_loop(self) -> None:
        period = min(1.0, self.cfg.listen_key_ttl_s / 5)
        while True:
            await asyncio.sleep(period)
            self.user.expire_due()

    # -- delivery -----------------------------------------------------------------------------------

    def send(self, c: Conn, label: str, payload: dict, stream: str | None = None) -> None:
        """Queue one data message on `c` (loop thread), through the websocket faults."""
        if c.closing or c.out is None:
            return
        rule = self.faults.decide(c.n, label)
        delay = 0.0
        if rule is not None:
            if rule.kind == "drop":
                return
            if rule.kind == "close":
                self.close(c, abrupt=rule.abrupt)
                return
            delay = rule.delay_s
        body = {"stream": stream, "data": payload} if (c.combined and stream is not None) else payload
        c.out.put_nowait((time.monotonic() + delay, json.dumps(body, separators=(",", ":"))))

    def reply(self, c: Conn, payload: dict) -> None:
        """A control answer (SUBSCRIBE result, ws-api response): no faults, never wrapped."""
        if c.closing or c.out is None:
            return
        text = json.dumps(payload, separators=(",", ":"))
        self.log.append((c.n, "out", text))
        c.out.put_nowait((time.monotonic(), text))

    def close(self, c: Conn, *, abrupt: bool = False, code: int = 1001, after_queue: bool = False) -> None:
        """Close `c` from the server side: a close frame (after what is queued when `after_queue`),
        or the TCP connection aborted (`abrupt`)."""
        if c.closing:
            return
        if abrupt:
            c.closing = True
            tr = c.ws._req.transport if c.ws._req is not None else None  # aiohttp has no public handle
            if tr is not None:
                tr.abort()
            return
        if after_queue and c.out is not None:
            c.out.put_nowait((0.0, (_CLOSE, code)))
            c.closing = True
            return
        c.closing = True
        if c.out is not None:
            while not c.out.empty():
                c.out.get_nowait()
            c.out.put_nowait((0.0, (_CLOSE, code)))

    def close_connections(self, path_contains: str | None = None, *, abrupt: bool = False) -> int:
        """Thread-safe test control: the server closes every matching connection now."""
        targets = [c for c in list(self.conns) if path_contains is None or path_contains in c.path]

        def go():
            for c in targets:
                self.close(c, abrupt=abrupt)

        self.call_in_loop(go)
        return len(targets)

    async def _sender(self, c: Conn) -> None:
        try:
            while True:
                due, item = await c.out.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if isinstance(item, tuple) and item and item[0] is _CLOSE:
                    await c.ws.close(code=item[1])
                    return
                if c.ws.closed:
                    return
                await c.ws.send_str(item)
                c.sent += 1
        except (ConnectionResetError, RuntimeError, asyncio.CancelledError):
            return

    # -- connection handling ------------------------------------------------------------------------

    def subscribers(self, stream: str) -> int:
        """How many connections are subscribed to `stream` (tests wait on this)."""
        return sum(1 for c in list(self.conns) if stream in c.streams and not c.closing)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=self.cfg.heartbeat_s, timeout=2.0, autoping=True)
        await ws.prepare(request)
        path = request.path
        combined = path.endswith("/stream")
        c = Conn(ws, path + ("?" + request.query_string if request.query_string else ""), combined)
        c.out = asyncio.Queue()
        c.sender = asyncio.ensure_future(self._sender(c))
        self.conns.add(c)
        try:
            name = request.match_info.get("name")
            if path.startswith("/ws-api"):
                c.ws_api = True
            elif combined:
                for s in filter(None, request.query.get("streams", "").split("/")):
                    if self.user.keys.valid(s):
                        self.user.attach(c, s)
                    else:
                        c.streams.add(s)
            elif path.startswith("/private/ws") or (name and self.user.keys.looks_like(name)):
                key = request.query.get("listenKey") or name
                if not key or not self.user.keys.valid(key):
                    self.close(c, code=1008)
                else:
                    self.user.attach(c, key)
            elif name and parse_stream(name, self.engine.symbols) is not None:
                c.streams.add(name)
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                self.log.append((c.n, "in", msg.data))
                if c.ws_api:
                    self.user.handle_ws_api(c, msg.data)
                else:
                    self._handle_method(c, msg.data)
        finally:
            self.conns.discard(c)
            c.closing = True
            self.user.detach(c)
            # let queued close frames go out; cancel a sender that waits for more
            if c.sender is not None and not c.sender.done() and c.out is not None and c.out.empty():
                c.sender.cancel()
        return ws

    def _handle_method(self, c: Conn, text: str) -> None:
        try:
            req = json.loads(text)
        except ValueError:
            self.reply(c, {"error": {"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"}, "id": None})
            return
        if not isinstance(req, dict):
            self.reply(c, {"error": {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"},
                           "id": None})
            return
        rid = req.get("id")
        method = req.get("method")
        params = req.get("params", [])
        if not (rid is None or isinstance(rid, (int, str))) or isinstance(rid, bool):
            self.reply(c, {"error": {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"},
                           "id": None})
            return
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                self.reply(c, {"error": {"code": 2, "msg": "Invalid request: params must be an array of strings"},
                               "id": rid})
                return
            bad = [p for p in params if parse_stream(p, self.engine.symbols) is None and not self.user.keys.valid(p)]
            if bad:
                self.reply(c, {"error": {"code": 2, "msg": f"Invalid request: invalid stream {bad[0]!r}"}, "id": rid})
                return
            for p in params:
                if self.user.keys.valid(p):
                    if method == "SUBSCRIBE":
                        self.user.attach(c, p)
                    else:
                        self.user.detach(c)
                elif method == "SUBSCRIBE":
                    c.streams.add(p)
                else:
                    c.streams.discard(p)
            self.reply(c, {"result": None, "id": rid})
        elif method == "LIST_SUBSCRIPTIONS":
            subs = sorted(c.streams) + ([c.listen_key] if c.listen_key else [])
            self.reply(c, {"result": subs, "id": rid})
        elif method == "GET_PROPERTY" and params == ["combined"]:
            self.reply(c, {"result": c.combined, "id": rid})
        elif method == "SET_PROPERTY" and isinstance(params, list) and len(params) == 2 and params[0] == "combined":
            c.combined = bool(params[1])
            self.reply(c, {"result": None, "id": rid})
        else:
            self.reply(c, {"error": {"code": 2, "msg": f"Invalid request: unknown variant `{method}`, expected one of "
                                                       "`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, "
                                                       "`SET_PROPERTY`, `GET_PROPERTY`"}, "id": rid})
