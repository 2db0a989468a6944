"""Benchmark: order round trips through ccxt to the emulator, and the emulator's matching throughput
(not a test; prints figures and ratios).

    .venv/bin/python bench/orders.py                                   # 500 limit, 200 market, 10k resting
    .venv/bin/python bench/orders.py --orders 100 --market-orders 50 --resting 2000   # quicker

Part 1, round trips (USD-M by default, `--market spot`): two in-process emulators on 127.0.0.1 with the
manual clock. Emulator A serves the limiter-ON traffic only (so the server's X-MBX-USED-WEIGHT-1M,
which the WeightLimiter trusts when higher, is that traffic's own); emulator B serves the baselines.
The emulators' own 429 weight cap is raised out of the way: the client-side limiters are measured.
Each round sends, in a rotating order (no path always goes first):

- `aiohttp GET ping` (B): the network stack alone (aiohttp client → aiohttp server, one keep-alive
  connection, JSON body);
- `raw signed aiohttp` (B): the same LIMIT order POST, query GET and cancel DELETE signed by hand
  (HMAC-SHA256) without ccxt: ping + Binance's auth + the emulator's order handling;
- `CcxtVenue, limiter off` (B): the real async ccxt client through `CcxtVenue` with no weight limiter
  and a no-op order-rate limiter: + ccxt (signing, URL building, parsing) + the venue's capture/parse;
- `CcxtVenue, limiter on` (A): `WeightLimiter(RateLimitConfig.for_market(m))` (Binance's weights:
  `ENDPOINT_WEIGHTS`) and `OrderRateLimiter.for_market(m)`: + the limiters (the weight limiter's
  blocking `acquire` runs in a worker thread, one hop per request);
- `OrderManager` (A, same venue and limiters): SQLite journal in a temporary directory (WAL,
  synchronous=FULL: every record fsynced): validate + intent + Submitted + venue + Accepted;
  `sync_order` (query, no record when nothing changed); `cancel` (CancelRequested + venue cancel +
  query + Resolved).

Orders are LIMIT GTC buys at half the last price (never fill), each queried and canceled; then M
MARKET orders (alternating sides, acknowledged NEW, filled by advancing the tape outside the timing)
through the limiter-off venue, the limiter-on venue and the order manager. Rounds are paced at 80 %
of the tightest Binance limit the run would otherwise exceed (orders per 10 s / per minute, weight
per minute), so the limiters add their per-request cost but never make a request wait; `--rate`
overrides (0 = back to back: then the limiter's waits are in the figures). The limiters' waits are
counted and printed. Also, without any network: the order manager on a null venue (journal only),
SQLite with fsync and in memory, so the journal's share is visible on its own.

Part 2, matching (no HTTP): the emulator's `Engine` directly. K resting LIMIT orders (half buys below,
half sells above the last price, spread over the price range the next `--trades` replayed trades
visit) placed with `Engine.place` (orders/s, first 1,000 and all K); then the tape replayed trade by
trade through `Engine.sync()`: trades/s, order checks/s (open orders × trades) and fills/s. Baselines
in the same run: a bare Python loop over the same open orders doing only the crossing comparison, and
the same comparison vectorised with numpy. Then orders placed through the REST layer without a
network client (`RestApi.handle` on an aiohttp mocked request: parsing, the request log, HMAC auth,
the engine, JSON) against `Engine.place` on a fresh engine for the same count. The server's engine
has the websocket user-data listener installed (`emulator.ws_user`), a bare `Engine` has none: the
ratio includes that listener's per-event work, which a profile shows is most of the difference.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import hmac
import sys
import tempfile
import time
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from urllib.parse import urlencode

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from core.time import NS_PER_MS  # noqa: E402
from emulator import AccountConfig, EmulatorConfig, EmulatorServer  # noqa: E402
from emulator.config import FaultConfig  # noqa: E402
from emulator.engine import Engine  # noqa: E402
from emulator.replay import ReplayClock, build_tape  # noqa: E402
from execution.ccxt_venue import (  # noqa: E402
    ENDPOINT_WEIGHTS,
    ORDER_RATE_LIMITS,
    CcxtVenue,
    OrderRateLimiter,
    make_async_binance_client,
)
from execution.order_manager import OrderManager, OrderManagerConfig  # noqa: E402
from execution.orders import (  # noqa: E402
    OrderJournal,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    SymbolRules,
    TimeInForce,
)
from execution.orders.model import Order, VenueOrderView, VenueStatus  # noqa: E402
from execution.venue import SubmitAck  # noqa: E402
from market.ingest.rate_limit import RateLimitConfig, WeightLimiter  # noqa: E402

KEY, SECRET = "bench-key", "bench-secret"
BTC = "BTCUSDT"
LIMIT_QTY = Decimal("0.001")
NAMESPACE = "b0000001"
PATHS = ("ping", "raw", "venue_off", "venue_on", "om")
LABELS = {
    "ping": "aiohttp GET ping (network baseline)",
    "raw": "raw signed aiohttp, no ccxt",
    "venue_off": "CcxtVenue, limiter off",
    "venue_on": "CcxtVenue, limiter on",
    "om": "OrderManager (SQLite fsync), limiter on",
    "null_sqlite": "OrderManager, null venue, SQLite fsync",
    "null_mem": "OrderManager, null venue, in-memory journal",
}


# ---------------------------------------------------------------- helpers
def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    if not s:
        return float("nan")
    k = min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))
    return s[k]


def summary(xs: list[float]) -> tuple[float, float, float, float]:
    return pct(xs, 50), pct(xs, 90), pct(xs, 99), max(xs) if xs else float("nan")


def emulator_config(market: str, n_trades: int, balances: dict[str, float]) -> EmulatorConfig:
    acct = AccountConfig(api_key=KEY, secret=SECRET, balances=balances, leverage=10)
    return EmulatorConfig.for_symbols([BTC], market, manual_clock=True, n_trades=n_trades, seed=7,
                                      accounts=(acct,), faults=FaultConfig(weight_limit=10**9))


def rules_of(cfg: EmulatorConfig) -> dict[str, SymbolRules]:
    out = {}
    for sc in cfg.symbols:
        i = sc.instrument
        out[i.symbol] = SymbolRules.from_instrument(
            i, max_qty=Decimal(repr(sc.max_qty)), market_max_qty=Decimal(repr(sc.max_market_qty)),
            max_price=Decimal(repr(sc.max_price)))
    return out


def far_price(emu: EmulatorServer, tick: Decimal) -> Decimal:
    last = Decimal(repr(emu.engine.last_price(BTC)))
    return (last / 2 / tick).to_integral_value(ROUND_FLOOR) * tick


class NoOrderLimit:
    """The order-rate limiter switched off (the venue's default is Binance's)."""

    async def acquire(self) -> float:
        return 0.0


class CountingOrderLimiter(OrderRateLimiter):
    """Binance's order-rate limits, recording how long each acquire waited."""

    def __init__(self, limits, **kw):
        super().__init__(limits, **kw)
        self.waits: list[float] = []

    async def acquire(self) -> float:
        w = await super().acquire()
        self.waits.append(w)
        return w


class NullVenue:
    """A venue that answers at once (NEW on submit, CANCELED after a cancel): the order manager's
    own cost without any I/O but the journal."""

    def __init__(self, market: str):
        self.market = market
        self._ids: dict[str, str] = {}
        self._canceled: set[str] = set()

    async def submit(self, order: Order) -> SubmitAck:
        vid = self._ids[order.client_order_id] = str(len(self._ids) + 1)
        return SubmitAck(order.client_order_id, vid, VenueStatus.NEW, Decimal(0), time.time_ns())

    async def cancel(self, symbol: str, client_order_id: str, *, conditional: bool = False) -> None:
        self._canceled.add(client_order_id)

    async def query_order(self, symbol: str, client_order_id: str, *, conditional: bool = False) -> VenueOrderView:
        st = VenueStatus.CANCELED if client_order_id in self._canceled else VenueStatus.NEW
        return VenueOrderView(st, Decimal(0), self._ids[client_order_id])

    async def close(self) -> None:
        pass


class RawClient:
    """Binance's signed REST by hand on one aiohttp session (no ccxt)."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, market: str):
        self.s = session
        self.base = base_url + ("/api/v3" if market == "spot" else "/fapi/v1")
        self.hdr = {"X-MBX-APIKEY": KEY}

    def _signed(self, params: dict) -> str:
        q = urlencode({**params, "timestamp": time.time_ns() // NS_PER_MS, "recvWindow": 5000})
        return q + "&signature=" + hmac.new(SECRET.encode(), q.encode(), hashlib.sha256).hexdigest()

    async def ping(self) -> None:
        async with self.s.get(self.base + "/ping") as r:
            await r.json()
            assert r.status == 200, r.status

    async def call(self, method: str, params: dict) -> dict:
        body = self._signed(params)
        if method == "POST":
            kw = {"data": body, "headers": {**self.hdr, "Content-Type": "application/x-www-form-urlencoded"}}
            url = self.base + "/order"
        else:
            kw = {"headers": self.hdr}
            url = self.base + "/order?" + body
        async with self.s.request(method, url, **kw) as r:
            data = await r.json()
            assert r.status == 200, (r.status, data)
            return data


# ---------------------------------------------------------------- part 1: round trips
def pacing(market: str, n_orders_per_round: int, weight_per_round: int, total_rounds: int, rate: float | None
           ) -> float:
    """Rounds per second at 80 % of the tightest limit the run would otherwise exceed (0 = unpaced)."""
    if rate is not None:
        return rate
    budget = RateLimitConfig.for_market(market).weight_limit
    caps = [float("inf")]
    for count, window in ORDER_RATE_LIMITS[market]:
        if total_rounds * n_orders_per_round > 0.8 * count:
            caps.append(0.8 * count / window / n_orders_per_round)
    if total_rounds * weight_per_round > 0.8 * budget:
        caps.append(0.8 * budget / 60.0 / weight_per_round)
    return 0.0 if min(caps) == float("inf") else min(caps)


async def round_trips(args) -> dict:
    market = args.market
    balances = {"USDT": 10_000_000.0, "BTC": 1000.0} if market == "spot" else {"USDT": 10_000_000.0}
    n_trades = max(4000, 2 * args.market_orders + 2000)
    cfg = emulator_config(market, n_trades, balances)
    emu_a = EmulatorServer(cfg).start()  # limiter-on traffic
    emu_b = EmulatorServer(cfg).start()  # baselines
    tick = Decimal(repr(cfg.symbols[0].instrument.tick_size))
    tmp = tempfile.TemporaryDirectory(prefix="bench_orders_")
    sess = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
    raw = RawClient(sess, emu_b.base_url, market)
    limiter = WeightLimiter(RateLimitConfig.for_market(market))
    order_limiter = CountingOrderLimiter(ORDER_RATE_LIMITS[market])
    off = CcxtVenue(make_async_binance_client(market, api_key=KEY, secret=SECRET, base_url=emu_b.base_url),
                    market, limiter=None, order_limiter=NoOrderLimit())
    on = CcxtVenue(make_async_binance_client(market, api_key=KEY, secret=SECRET, base_url=emu_a.base_url),
                   market, limiter=limiter, order_limiter=order_limiter)
    rules = rules_of(cfg)
    om = OrderManager.open(Path(tmp.name) / "journal.db", on, rules, namespace=NAMESPACE,
                           config=OrderManagerConfig())
    res: dict[str, dict[str, list[float]]] = {p: {"submit": [], "query": [], "cancel": []} for p in PATHS}
    mkt: dict[str, list[float]] = {"venue_off": [], "venue_on": [], "om": []}
    vtype = {"spot": "LIMIT", "usdm": "LIMIT"}[market]
    seq = [0]

    def order_of(otype: OrderType, side: OrderSide, price: Decimal | None) -> Order:
        seq[0] += 1
        req = OrderRequest(BTC, side, otype, LIMIT_QTY, price=price,
                           time_in_force=TimeInForce.GTC if price is not None else None)
        return Order.create(req, f"{NAMESPACE}.bench.{seq[0]:x}", "bench", time.time_ns())

    async def timed(coro) -> float:
        t0 = time.perf_counter()
        await coro
        return (time.perf_counter() - t0) * 1e3

    async def one(path: str, price_b: Decimal, price_a: Decimal) -> None:
        r = res[path]
        if path == "ping":
            r["submit"].append(await timed(raw.ping()))
        elif path == "raw":
            seq[0] += 1
            cid = f"{NAMESPACE}.raw.{seq[0]:x}"
            p = {"symbol": BTC, "side": "BUY", "type": vtype, "timeInForce": "GTC", "quantity": str(LIMIT_QTY),
                 "price": str(price_b), "newClientOrderId": cid}
            r["submit"].append(await timed(raw.call("POST", p)))
            r["query"].append(await timed(raw.call("GET", {"symbol": BTC, "origClientOrderId": cid})))
            r["cancel"].append(await timed(raw.call("DELETE", {"symbol": BTC, "origClientOrderId": cid})))
        elif path in ("venue_off", "venue_on"):
            v, price = (off, price_b) if path == "venue_off" else (on, price_a)
            o = order_of(OrderType.LIMIT, OrderSide.BUY, price)
            r["submit"].append(await timed(v.submit(o)))
            t0 = time.perf_counter()
            view = await v.query_order(BTC, o.client_order_id)
            r["query"].append((time.perf_counter() - t0) * 1e3)
            assert view.status is VenueStatus.NEW, view
            r["cancel"].append(await timed(v.cancel(BTC, o.client_order_id)))
        else:
            req = OrderRequest(BTC, OrderSide.BUY, OrderType.LIMIT, LIMIT_QTY, price=price_a,
                               time_in_force=TimeInForce.GTC)
            t0 = time.perf_counter()
            snap = await om.submit(req, strategy="bench")
            r["submit"].append((time.perf_counter() - t0) * 1e3)
            assert snap.status is OrderStatus.ACCEPTED, snap
            r["query"].append(await timed(om.sync_order(snap.client_order_id)))
            t0 = time.perf_counter()
            snap = await om.cancel(snap.client_order_id)
            r["cancel"].append((time.perf_counter() - t0) * 1e3)
            assert snap.status is OrderStatus.CANCELED, snap

    q_w = ENDPOINT_WEIGHTS[(market, "order.get")]
    rate = pacing(market, 2, 2 * (2 + q_w), args.orders, args.rate)
    rate_m = pacing(market, 2, 2, args.market_orders, args.rate)
    try:
        price_a, price_b = far_price(emu_a, tick), far_price(emu_b, tick)
        # warm-up: connections, ccxt's first-call paths, SQLite pages (not measured)
        for _ in range(5):
            for p in PATHS:
                await one(p, price_b, price_a)
        for p in PATHS:
            for v in res[p].values():
                v.clear()
        order_limiter.waits.clear()
        w0 = limiter.stats()
        loop = asyncio.get_running_loop()
        t_start = loop.time()
        for i in range(args.orders):
            if rate > 0:
                await asyncio.sleep(max(0.0, t_start + i / rate - loop.time()))
            k = i % len(PATHS)
            for p in PATHS[k:] + PATHS[:k]:
                await one(p, price_b, price_a)
        t_limit = loop.time() - t_start
        # market orders: acknowledged NEW; filled by the next trade (advanced outside the timing)
        t_start = loop.time()
        for i in range(args.market_orders):
            if rate_m > 0:
                await asyncio.sleep(max(0.0, t_start + i / rate_m - loop.time()))
            side = OrderSide.BUY if i % 2 == 0 else OrderSide.SELL
            order = [("venue_off", off), ("venue_on", on), ("om", None)]
            for name, v in order[i % 3:] + order[: i % 3]:
                if v is None:
                    t0 = time.perf_counter()
                    ref = Decimal(repr(emu_a.engine.last_price(BTC)))
                    snap = await om.submit(OrderRequest(BTC, side, OrderType.MARKET, LIMIT_QTY), strategy="bench",
                                           reference_price=ref)
                    mkt[name].append((time.perf_counter() - t0) * 1e3)
                    assert snap.status is OrderStatus.ACCEPTED, snap
                else:
                    o = order_of(OrderType.MARKET, side, None)
                    t0 = time.perf_counter()
                    ack = await v.submit(o)
                    mkt[name].append((time.perf_counter() - t0) * 1e3)
                    assert ack.status is VenueStatus.NEW, ack
            emu_a.advance_trades(BTC, 1)
            emu_b.advance_trades(BTC, 1)
        t_market = loop.time() - t_start
        w1 = limiter.stats()
    finally:
        om.close()
        await on.close()
        await off.close()
        await sess.close()
        emu_a.stop()
        emu_b.stop()
        tmp.cleanup()
    return {"res": res, "mkt": mkt, "rate": rate, "rate_m": rate_m, "t_limit": t_limit, "t_market": t_market,
            "weight_waits": w1.waits - w0.waits, "weight_waited_s": w1.waited_s - w0.waited_s,
            "order_waits": sum(1 for w in order_limiter.waits if w > 1e-3), "order_waited_s": sum(order_limiter.waits)}


async def null_venue(args, market: str, sqlite: bool, cfg: EmulatorConfig) -> dict[str, list[float]]:
    """The order manager's own cost: a venue that answers at once; the journal on SQLite (fsync) or in memory."""
    out = {"submit": [], "query": [], "cancel": []}
    with tempfile.TemporaryDirectory(prefix="bench_orders_null_") as d:
        journal = OrderJournal.open_sqlite(Path(d) / "j.db") if sqlite else OrderJournal.in_memory()
        om = OrderManager(journal, NullVenue(market), rules_of(cfg), namespace=NAMESPACE)
        req = OrderRequest(BTC, OrderSide.BUY, OrderType.LIMIT, LIMIT_QTY, price=Decimal("20000.0"),
                           time_in_force=TimeInForce.GTC)
        try:
            for i in range(args.orders + 5):
                t0 = time.perf_counter()
                snap = await om.submit(req, strategy="bench")
                t1 = time.perf_counter()
                await om.sync_order(snap.client_order_id)
                t2 = time.perf_counter()
                snap = await om.cancel(snap.client_order_id)
                t3 = time.perf_counter()
                assert snap.status is OrderStatus.CANCELED, snap
                if i >= 5:
                    out["submit"].append((t1 - t0) * 1e3)
                    out["query"].append((t2 - t1) * 1e3)
                    out["cancel"].append((t3 - t2) * 1e3)
        finally:
            om.close()
    return out


def print_round_trips(args, r: dict, nulls: dict) -> None:
    res, mkt = r["res"], r["mkt"]
    ping50 = pct(res["ping"]["submit"], 50)
    pace = (lambda x: f"paced at {x:.1f} rounds/s" if x > 0 else "back to back")
    print(f"\n== order round trips ({args.market}, {args.orders} LIMIT GTC far from the market, each queried "
          f"and canceled; {pace(r['rate'])}, {r['t_limit']:.0f}s) ==")
    print(f"{'path':<46}{'op':<8}{'p50 ms':>9}{'p90':>9}{'p99':>9}{'max':>9}{'p50/ping':>10}")
    rows = [(p, res[p]) for p in PATHS] + [("null_sqlite", nulls["null_sqlite"]), ("null_mem", nulls["null_mem"])]
    for p, ops in rows:
        for op in ("submit", "query", "cancel"):
            xs = ops[op]
            if not xs:
                continue
            a, b, c, d = summary(xs)
            name = LABELS[p] if op == "submit" or p == "ping" else ""
            opn = "GET" if p == "ping" else op
            print(f"{name:<46}{opn:<8}{a:>9.3f}{b:>9.3f}{c:>9.3f}{d:>9.3f}{a / ping50:>9.1f}x")
    print(f"\n== market orders ({args.market_orders}, acknowledged NEW; {pace(r['rate_m'])}) ==")
    print(f"{'path':<46}{'op':<8}{'p50 ms':>9}{'p90':>9}{'p99':>9}{'max':>9}{'p50/ping':>10}")
    for p in ("venue_off", "venue_on", "om"):
        a, b, c, d = summary(mkt[p])
        print(f"{LABELS[p]:<46}{'submit':<8}{a:>9.3f}{b:>9.3f}{c:>9.3f}{d:>9.3f}{a / ping50:>9.1f}x")

    def ratio(p1, p2, op, src=res):
        return pct(src[p1][op], 50) / pct(src[p2][op], 50)

    print("\nratios of p50 (same run):")
    print(f"  ccxt venue limiter off / raw signed aiohttp: submit {ratio('venue_off', 'raw', 'submit'):.2f}x, "
          f"query {ratio('venue_off', 'raw', 'query'):.2f}x, cancel {ratio('venue_off', 'raw', 'cancel'):.2f}x")
    print(f"  limiter on / limiter off:                    submit {ratio('venue_on', 'venue_off', 'submit'):.2f}x, "
          f"query {ratio('venue_on', 'venue_off', 'query'):.2f}x, cancel {ratio('venue_on', 'venue_off', 'cancel'):.2f}x"
          f", market {ratio('venue_on', 'venue_off', 'x', {k: {'x': v} for k, v in mkt.items()}):.2f}x")
    print(f"  OrderManager / venue (both limiter on):      submit {ratio('om', 'venue_on', 'submit'):.2f}x, "
          f"query {ratio('om', 'venue_on', 'query'):.2f}x, cancel(+query) {ratio('om', 'venue_on', 'cancel'):.2f}x, "
          f"market {ratio('om', 'venue_on', 'x', {k: {'x': v} for k, v in mkt.items()}):.2f}x")
    om_extra = pct(res["om"]["submit"], 50) - pct(res["venue_on"]["submit"], 50)
    print(f"  OrderManager submit − venue submit (p50): {om_extra:.3f} ms; null-venue submit p50: SQLite+fsync "
          f"{pct(nulls['null_sqlite']['submit'], 50):.3f} ms (3 fsynced records), in memory "
          f"{pct(nulls['null_mem']['submit'], 50):.3f} ms")
    print(f"limiter waits (> 1 ms): weight limiter {r['weight_waits']} ({r['weight_waited_s']:.3f}s in all), "
          f"order-rate limiter {r['order_waits']} ({r['order_waited_s']:.3f}s in all)")


# ---------------------------------------------------------------- part 2: matching
def _limit_params(side: int, price: float, cid: str) -> dict[str, str]:
    return {"symbol": BTC, "side": "BUY" if side == 1 else "SELL", "type": "LIMIT", "timeInForce": "GTC",
            "quantity": "0.001", "price": f"{price:.1f}", "newClientOrderId": cid}


def book_prices(tape, n_trades: int, k: int, rng: np.random.Generator) -> list[tuple[int, float]]:
    """K (side, price): buys below the last price, sells above, uniform over the range the next
    `n_trades` trades visit (tick 0.1)."""
    last = float(tape.price[tape.cursor - 1])
    fut = tape.price[tape.cursor: tape.cursor + n_trades]
    lo, hi = float(fut.min()), float(fut.max())
    out = []
    for i in range(k):
        if i % 2 == 0:
            p = rng.uniform(min(lo, last - 1.0), last - 0.1)
            out.append((1, max(0.1, np.floor(p * 10) / 10)))
        else:
            p = rng.uniform(last + 0.1, max(hi, last + 1.0))
            out.append((-1, np.ceil(p * 10) / 10))
    return out


def fresh_engine(cfg: EmulatorConfig, tape_cache: dict) -> Engine:
    sc = cfg.symbols[0]
    if "tape" not in tape_cache:
        tape_cache["tape"] = build_tape(cfg, sc)
    t = tape_cache["tape"]
    tape = type(t)(symbol=t.symbol, agg_id=t.agg_id, ts=t.ts, price=t.price, qty=t.qty, buyer_maker=t.buyer_maker,
                   first_id=t.first_id, last_id=t.last_id)
    clock = ReplayClock(int(tape.ts[0]) + cfg.warmup, 1.0, True)
    eng = Engine(cfg, {sc.instrument.symbol: tape}, clock)
    eng.sync()
    return eng


def matching(args) -> None:
    market = args.market
    k = args.resting
    big = {"USDT": 1e12, "BTC": 1e9} if market == "spot" else {"USDT": 1e12}
    n_trades = args.trades + 5000
    cfg = emulator_config(market, n_trades, big)
    cache: dict = {}
    rng = np.random.default_rng(3)

    # warm-up (numba kernels, first-call paths) on a throwaway engine
    eng = fresh_engine(cfg, cache)
    acct = eng.accounts[KEY]
    tape = eng.tapes[BTC]
    for j, (s, p) in enumerate(book_prices(tape, 200, 200, rng)):
        eng.place(acct, _limit_params(s, p, f"w{j}"))
    for _ in range(100):
        eng.clock.set(int(tape.ts[tape.cursor]))
        eng.sync()

    # placement into the engine
    eng = fresh_engine(cfg, cache)
    acct = eng.accounts[KEY]
    tape = eng.tapes[BTC]
    book = book_prices(tape, args.trades, k, rng)
    gc.collect()
    t0 = time.perf_counter()
    t_first = None
    for j, (s, p) in enumerate(book):
        eng.place(acct, _limit_params(s, p, f"c{j}"))
        if j == min(k, 1000) - 1:
            t_first = time.perf_counter() - t0
    t_place = time.perf_counter() - t0
    n_first = min(k, 1000)

    # baselines on a copy of the initial book: the crossing predicate alone
    sides = np.array([s for s, _ in book], dtype=np.int64)
    prices = np.array([p for _, p in book])
    plain = list(zip(sides.tolist(), prices.tolist()))
    n_base = min(200, args.trades)
    trade_px = tape.price[tape.cursor: tape.cursor + n_base].tolist()
    t0 = time.perf_counter()
    crossed = 0
    for px in trade_px:
        for s, lp in plain:
            if s * (lp - px) > 0:
                crossed += 1
    t_py = time.perf_counter() - t0
    t0 = time.perf_counter()
    for px in trade_px:
        crossed += int(np.count_nonzero(sides * (prices - px) > 0))
    t_np = time.perf_counter() - t0
    py_checks, np_checks = n_base * k / t_py, n_base * k / t_np

    # matching: trade by trade through Engine.sync()
    open_ = eng._open[BTC]
    checks = trades = 0
    fills0 = len(acct.fills)
    gc.collect()
    t0 = time.perf_counter()
    stop = min(len(tape), tape.cursor + args.trades)
    while tape.cursor < stop and eng._open[BTC]:
        n_open = len(eng._open[BTC])
        eng.clock.set(int(tape.ts[tape.cursor]))
        before = tape.cursor
        eng.sync()
        consumed = tape.cursor - before
        trades += consumed
        checks += n_open * min(consumed, 1) + max(0, consumed - 1) * len(eng._open[BTC])
        if time.perf_counter() - t0 > args.match_seconds:
            break
    t_match = time.perf_counter() - t0
    fills = len(acct.fills) - fills0
    filled = sum(1 for o in acct.orders.values() if o.status == "FILLED")
    left = len(open_) if open_ is eng._open[BTC] else len(eng._open[BTC])

    # REST without a network client vs Engine.place, same count on fresh engines
    from aiohttp.test_utils import make_mocked_request

    r_n = min(k, args.rest_orders)
    emu = EmulatorServer(cfg)  # not started: its RestApi is called directly
    api = emu.api
    rbook = book_prices(emu.engine.tapes[BTC], args.trades, r_n, rng)
    prefix = "/api/v3/order" if market == "spot" else "/fapi/v1/order"

    def mocked(j: int, s: int, p: float):
        q = urlencode({**_limit_params(s, p, f"r{j}"), "timestamp": time.time_ns() // NS_PER_MS})
        sig = hmac.new(SECRET.encode(), q.encode(), hashlib.sha256).hexdigest()
        return make_mocked_request("POST", f"{prefix}?{q}&signature={sig}", headers={"X-MBX-APIKEY": KEY})

    async def rest_place() -> float:
        t = 0.0
        for j, (s, p) in enumerate(rbook):
            req = mocked(j, s, p)  # building the request is the client's work: not timed
            t1 = time.perf_counter()
            resp = await api.handle(req)
            t += time.perf_counter() - t1
            assert resp.status == 200, resp.text
        return t

    w = EmulatorServer(cfg).api
    for j, (s, p) in enumerate(rbook[:20]):
        q = urlencode({**_limit_params(s, p, f"w{j}"), "timestamp": time.time_ns() // NS_PER_MS})
        sig = hmac.new(SECRET.encode(), q.encode(), hashlib.sha256).hexdigest()
        asyncio.run(w.handle(make_mocked_request("POST", f"{prefix}?{q}&signature={sig}",
                                                 headers={"X-MBX-APIKEY": KEY})))
    gc.collect()
    t_rest = asyncio.run(rest_place())
    eng2 = fresh_engine(cfg, cache)
    acct2 = eng2.accounts[KEY]
    gc.collect()
    t0 = time.perf_counter()
    for j, (s, p) in enumerate(rbook):
        eng2.place(acct2, _limit_params(s, p, f"e{j}"))
    t_eng = time.perf_counter() - t0

    print(f"\n== matching engine, no HTTP ({market}; {k:,} resting LIMIT orders, tape of the next "
          f"{args.trades:,} trades) ==")
    print(f"{'stage':<58}{'rate':>16}")
    print(f"{'Engine.place, first ' + format(n_first, ',') + ' orders':<58}{n_first / t_first:>12,.0f} /s")
    print(f"{'Engine.place, all ' + format(k, ',') + ' orders':<58}{k / t_place:>12,.0f} /s"
          f"   ({t_place:.2f}s)")
    print(f"{'Engine.sync trade by trade: trades':<58}{trades / t_match:>12,.1f} /s"
          f"   ({trades:,} trades in {t_match:.2f}s)")
    print(f"{'  order checks (open orders × trades)':<58}{checks / t_match:>12,.0f} /s")
    print(f"{'  fills':<58}{fills / t_match:>12,.1f} /s"
          f"   ({fills:,} fills, {filled:,} orders filled, {left:,} still open)")
    print(f"{'baseline: bare Python loop, crossing test only':<58}{py_checks:>12,.0f} checks/s")
    print(f"{'baseline: numpy, crossing test only':<58}{np_checks:>12,.0f} checks/s")
    print(f"{'REST layer, no network (RestApi.handle), ' + format(r_n, ',') + ' orders':<58}{r_n / t_rest:>12,.0f} /s")
    print(f"{'Engine.place on a fresh engine, same ' + format(r_n, ',') + ' orders':<58}{r_n / t_eng:>12,.0f} /s")
    growth = (f"; placement rate after the first {n_first:,} / first {n_first:,}: "
              f"{((k - n_first) / (t_place - t_first)) / (n_first / t_first):.2f}x" if k > n_first else "")
    print(f"ratios: engine order checks / bare Python loop {checks / t_match / py_checks:.3f}x, "
          f"/ numpy {checks / t_match / np_checks:.4f}x; RestApi.handle / Engine.place {t_eng / t_rest:.2f}x{growth}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--orders", type=int, default=500, help="LIMIT round trips per path (default 500)")
    ap.add_argument("--market-orders", type=int, default=200, help="MARKET orders per path (default 200)")
    ap.add_argument("--resting", type=int, default=10_000, help="resting orders in the matching part (10k)")
    ap.add_argument("--trades", type=int, default=2_000, help="replayed trades in the matching part (2k)")
    ap.add_argument("--match-seconds", type=float, default=30.0, help="time cap of the matching replay")
    ap.add_argument("--rest-orders", type=int, default=2_000, help="orders placed through RestApi.handle")
    ap.add_argument("--market", choices=["usdm", "spot"], default="usdm")
    ap.add_argument("--rate", type=float, default=None,
                    help="rounds per second (default: 80%% of the tightest Binance limit; 0 = back to back)")
    ap.add_argument("--skip-round-trips", action="store_true")
    ap.add_argument("--skip-matching", action="store_true")
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, aiohttp {aiohttp.__version__}, ccxt "
          f"{__import__('ccxt').__version__}; emulator in-process (server threads share the GIL with the client)")
    if not args.skip_round_trips:
        r = asyncio.run(round_trips(args))
        cfg = emulator_config(args.market, 4000, {"USDT": 1e7})
        nulls = {"null_sqlite": asyncio.run(null_venue(args, args.market, True, cfg)),
                 "null_mem": asyncio.run(null_venue(args, args.market, False, cfg))}
        print_round_trips(args, r, nulls)
    if not args.skip_matching:
        matching(args)


if __name__ == "__main__":
    main()
