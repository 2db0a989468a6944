"""Shared harness of the order-manager integration tests (no tests here): the emulator with a
manual clock, the REAL async ccxt client (`make_async_binance_client`) behind `CcxtVenue`, the
project's `WeightLimiter`, an `OrderManager` on a SQLite journal, and checks that read the
emulator's own books and trade records."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal
from pathlib import Path

from core.enums import Market
from emulator.testing import BTC, KEY, SECRET, make_server
from execution.ccxt_venue import CcxtVenue, OrderRateLimiter, make_async_binance_client
from execution.order_manager import (
    OrderManager,
    OrderManagerConfig,
    never_reached_venue,
)
from execution.orders import OrderSide, OrderStatus, SymbolRules
from market.ingest.rate_limit import RateLimitConfig, WeightLimiter

ETH = "ETHUSDT"
NAMESPACE = "t0000001"
RECV_WINDOW_MS = 1_000
# grace > recvWindow + skew (same machine): "not found" after it means never placed
FAST = OrderManagerConfig(not_found_grace_s=1.5, resolve_timeout_s=6.0, backoff_base_s=0.05, backoff_max_s=0.4,
                          max_attempts=3)


def run(coro, timeout: float = 30.0):
    """Run one async test body with a hard time limit."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def rules_of(emu) -> dict[str, SymbolRules]:
    out = {}
    for sc in emu.config.symbols:
        i = sc.instrument
        out[i.symbol] = SymbolRules.from_instrument(
            i, max_qty=Decimal(repr(sc.max_qty)), market_max_qty=Decimal(repr(sc.max_market_qty)),
            max_price=Decimal(repr(sc.max_price)))
    return out


def start_emulator(market: str, **overrides):
    balances = {"USDT": 100_000.0, "BTC": 1.0, "ETH": 10.0} if market == "spot" else {"USDT": 100_000.0}
    return make_server(market, balances=balances, **overrides)


class Harness:
    """One market's stack. `open_manager()` may be called again after `crash()` (a restart on the
    same journal file)."""

    def __init__(self, emu, market: str, journal_path: Path, *, timeout_ms: int = 3_000,
                 config: OrderManagerConfig = FAST, weight_limit: int | None = None,
                 order_limits: tuple[tuple[int, float], ...] | None = None):
        self.emu = emu
        self.market = market
        self.journal_path = journal_path
        self.timeout_ms = timeout_ms
        self.config = config
        cfg = RateLimitConfig.for_market(market) if weight_limit is None else RateLimitConfig(
            weight_limit=weight_limit, window_s=1.0)
        self.limiter = WeightLimiter(cfg)
        self.order_limiter = (OrderRateLimiter(order_limits) if order_limits is not None
                              else OrderRateLimiter.for_market(market))
        self.venue: CcxtVenue | None = None
        self.om: OrderManager | None = None

    def make_venue(self) -> CcxtVenue:
        client = make_async_binance_client(self.market, api_key=KEY, secret=SECRET, base_url=self.emu.base_url,
                                           timeout_ms=self.timeout_ms)
        return CcxtVenue(client, self.market, limiter=self.limiter, order_limiter=self.order_limiter,
                         recv_window_ms=RECV_WINDOW_MS, backoff_base_s=0.05, backoff_max_s=0.5)

    def open_manager(self, venue=None) -> OrderManager:
        self.venue = self.make_venue() if venue is None else venue
        base = {BTC: "BTC", ETH: "ETH"} if self.market == "spot" else None
        self.om = OrderManager.open(self.journal_path, self.venue, rules_of(self.emu), namespace=NAMESPACE,
                                    config=self.config, base_assets=base)
        return self.om

    async def crash(self) -> None:
        """The process dies: the manager object is dropped without any further venue call."""
        self.om.close()
        await self.venue.close()
        self.om = None

    async def close(self) -> None:
        if self.om is not None:
            self.om.close()
        if self.venue is not None:
            await self.venue.close()

    def last(self, symbol: str = BTC) -> Decimal:
        return Decimal(repr(self.emu.engine.last_price(symbol)))


# -- what the emulator itself holds -----------------------------------------------------------------


def venue_orders(emu) -> list:
    return list(emu.engine.accounts[KEY].orders.values())


def venue_fills(emu) -> list:
    return list(emu.engine.accounts[KEY].fills)


def venue_position(emu, symbol: str) -> Decimal:
    acct = emu.engine.accounts[KEY]
    if acct.ledger is not None:
        return Decimal(f"{acct.ledger.position(symbol).qty:.8f}")
    base = symbol[:-4]
    free, locked = acct.balances.get(base, [0.0, 0.0])
    return Decimal(f"{free:.8f}") + Decimal(f"{locked:.8f}")


def assert_agreement(h: Harness, baseline: dict[str, Decimal] | None = None, *, intended: int | None = None) -> None:
    """Journal, ledger (positions from journal fills) and the emulator's books agree:
    - every journal order that reached the venue exists there exactly once (by client id), none
      that never reached it exists there, and no venue order is missing from the journal;
    - every venue trade is applied exactly once, to the order that made it, and nothing else is;
    - journal positions (+ baseline) equal the venue's positions (spot: base-asset balances).
    `intended`: how many live (not never-placed) orders the strategy intended."""
    emu, om = h.emu, h.om
    orders = venue_orders(emu)
    by_cid = Counter(o.client_id for o in orders)
    assert all(n == 1 for n in by_cid.values()), f"duplicated client ids at the venue: {by_cid}"
    snaps = om.orders()
    placed = [s for s in snaps if not never_reached_venue(s) and s.status is not OrderStatus.NEW
              and not (s.status is OrderStatus.CANCELED and s.venue_order_id is None and s.reason.startswith("canceled locally"))
              and not (s.status is OrderStatus.REJECTED and s.reason.startswith("venue rejected"))]
    for s in snaps:
        expected = 1 if s in placed else 0
        assert by_cid.get(s.client_order_id, 0) == expected, (s.client_order_id, s.status, s.reason, expected)
    assert set(by_cid) == {s.client_order_id for s in placed}, "venue orders missing from the journal"
    if intended is not None:
        assert len(placed) == intended, [(s.client_order_id, s.status, s.reason) for s in snaps]
    # fills: each venue trade once in the journal, on the right order
    oid_to_cid = {o.order_id: o.client_id for o in orders}
    journal_trades = Counter()
    journal_owner = {}
    for s in snaps:
        for f in s.fills:
            journal_trades[f.trade_id] += 1
            journal_owner[f.trade_id] = s.client_order_id
            assert s.filled_qty <= s.order.qty
    vf = venue_fills(emu)
    assert all(n == 1 for n in journal_trades.values())
    assert set(journal_trades) == {str(f.trade_id) for f in vf}, "journal trades != venue trades"
    for f in vf:
        assert journal_owner[str(f.trade_id)] == oid_to_cid[f.order_id]
        snap = om.get(oid_to_cid[f.order_id])
        jf = {x.trade_id: x for x in snap.fills}[str(f.trade_id)]
        assert jf.qty == Decimal(f"{f.qty:.8f}") and jf.price == Decimal(f"{f.price:.8f}")
    # statuses of closed venue orders match
    for o in orders:
        s = om.get(o.client_id)
        if o.status == "FILLED":
            assert s.status is OrderStatus.FILLED, (o.client_id, s.status)
        if o.status in ("NEW", "PARTIALLY_FILLED"):
            assert not s.is_terminal, (o.client_id, s.status)
        assert s.filled_qty == Decimal(f"{o.executed:.8f}"), (o.client_id, s.filled_qty, o.executed)
    # positions
    baseline = baseline or {}
    pos = om.positions()
    for sym in (BTC, ETH):
        mine = baseline.get(sym, Decimal(0)) + pos.get(sym, Decimal(0))
        assert mine == venue_position(emu, sym), (sym, mine, venue_position(emu, sym))


def spot_baseline(market: str) -> dict[str, Decimal]:
    return {BTC: Decimal(1), ETH: Decimal(10)} if market == "spot" else {}


def side_sign(side: OrderSide) -> int:
    return 1 if side is OrderSide.BUY else -1


__all__ = [
    "BTC",
    "ETH",
    "FAST",
    "Harness",
    "Market",
    "assert_agreement",
    "rules_of",
    "run",
    "side_sign",
    "spot_baseline",
    "start_emulator",
    "venue_fills",
    "venue_orders",
    "venue_position",
]
