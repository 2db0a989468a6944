"""SimVenue: OrderManager end to end for every order type with exact fills computed from the fed
trades and the fill-model formulas; Binance-coded rejects; parity with the exchange emulator (same
tape, same orders → the same fills: price, qty, fee); fault drills recovered without duplicates."""

from __future__ import annotations

import asyncio
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import pytest

from core.enums import Market
from core.errors import DataError
from core.instrument import Instrument
from execution.fees import FeeConfig
from execution.fill_model import FillModelConfig
from execution.order_manager import OrderManager, OrderManagerConfig
from execution.orders import (
    Liquidity,
    OrderJournal,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    SymbolRules,
    TimeInForce,
    VenueStatus,
)
from execution.orders.model import Order
from execution.reconcile import Reconciler
from execution.sim_venue import SimFault, SimVenue, SimVenueConfig
from execution.venue import Venue, VenueRejectedError

pytestmark = pytest.mark.timeout(60)
BTC = "BTCUSDT"
NS = "t0000001"
T0 = 1_700_000_000_000_000_000
MS = 1_000_000
SLIP = 2.0  # bps
FILL = FillModelConfig(latency_ns=0, slippage_bps=SLIP, impact_coef=0.0, participation_rate=0.5, queue_delay_bars=1)
FEES = {"spot": FeeConfig(venue="binance_spot", maker_rate=0.001, taker_rate=0.001),
        "usdm": FeeConfig(venue="binance_usdm", maker_rate=0.0002, taker_rate=0.0004)}
BALANCES = {"spot": {"USDT": 100_000.0, "BTC": 1.0}, "usdm": {"USDT": 100_000.0}}
BASELINE = {"spot": {BTC: Decimal(1)}, "usdm": {}}
Q = Decimal("0.030")
OMC = OrderManagerConfig(not_found_grace_s=1.5, resolve_timeout_s=5.0, backoff_base_s=0.05, backoff_max_s=0.4)


def instrument(market: str) -> Instrument:
    return Instrument(symbol=BTC, market=market, tick_size=0.1, step_size=0.001, min_qty=0.001, min_notional=5.0,
                      max_leverage=1.0 if market == "spot" else 125.0)


class FakeClock:
    """Manager clock (ns) that moves only when the manager sleeps."""

    def __init__(self, t: int = T0):
        self.t = t

    def __call__(self) -> int:
        return self.t

    async def sleep(self, s: float) -> None:
        self.t += int(s * 1e9)
        await asyncio.sleep(0)


class Stack:
    """SimVenue fed by hand + an OrderManager on an in-memory journal; stream fills applied as a
    user-data stream would (the paper-trading wiring)."""

    def __init__(self, market: str, config: SimVenueConfig | None = None):
        self.market = market
        self.venue = SimVenue([instrument(market)], config or SimVenueConfig(
            market=market, fill=FILL, fees=FEES[market], balances=BALANCES[market], leverage=10.0))
        self.clock = FakeClock()
        self.om = OrderManager(OrderJournal.in_memory(), self.venue, {BTC: SymbolRules.from_instrument(instrument(market))},
                               namespace=NS, config=OMC, clock=self.clock, sleep=self.clock.sleep,
                               base_assets={BTC: "BTC"} if market == "spot" else None)
        self.ts = T0
        self.trade(40_000.0, 1.0)

    def trade(self, price: float, qty: float) -> None:
        self.ts += MS
        for vf in self.venue.on_trade(BTC, self.ts, price, qty, False):
            cid = next(o.client_order_id for o in self.venue.all_orders() if o.venue_order_id == vf.venue_order_id)
            self.om.apply_fill(cid, vf.fill)

    async def submit(self, req: OrderRequest, **kw):
        return await self.om.submit(req, strategy="sim", reference_price=Decimal("40000.0"), **kw)

    async def reconcile_clean(self) -> None:
        rec = Reconciler(self.om, [BTC], fills_since_ms=0, baseline=BASELINE[self.market])
        for _ in range(2):
            report = await rec.run_once()
            assert report.clean, report


def run(coro, timeout: float = 30.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


# -- expected fills, from the fill-model formulas (docs/execution.md) -------------------------------


def mkt(p: float, side: int) -> float:
    """Market fill at trade price p: p ± slippage_bps·1e-4·p (impact 0), rounded to 8 decimals."""
    return round(p + side * (SLIP * 1e-4 * p), 8)


def stop_sell(stop: float, p: float) -> float:
    ref = min(stop, p)  # a gap through the level fills at the trade price
    return round(ref - SLIP * 1e-4 * ref, 8)


def expected(market: str, side: int, rows: list[tuple[float, str, bool]]) -> list[tuple]:
    """(price, qty, fee, fee_asset, liquidity) per fill; spot buys pay the fee in the base asset."""
    fees = FEES[market]
    out = []
    for price, qty, maker in rows:
        rate = fees.maker_rate if maker else fees.taker_rate
        q = float(qty)
        if market == "spot" and side == 1:
            fee, asset = q * rate, "BTC"
        else:
            fee, asset = abs(q * price) * rate, "USDT"
        out.append((Decimal(f"{price:.8f}"), Decimal(qty), Decimal(f"{fee:.8f}"), asset,
                    Liquidity.MAKER if maker else Liquidity.TAKER))
    return out


B, S = OrderSide.BUY, OrderSide.SELL
T = OrderType
CASES = {
    # name: (request, trades after submission, expected fills (price, qty, maker), final status)
    "market_buy_partials": (
        OrderRequest(BTC, B, T.MARKET, Q), [(40001.0, 0.04), (40002.0, 0.01), (40003.0, 1.0)],
        # participation 0.5: 0.02, then 0.005, then the 0.005 left
        [(mkt(40001.0, 1), "0.020", False), (mkt(40002.0, 1), "0.005", False), (mkt(40003.0, 1), "0.005", False)],
        OrderStatus.FILLED),
    "market_sell": (
        OrderRequest(BTC, S, T.MARKET, Q), [(39999.0, 1.0)], [(mkt(39999.0, -1), "0.030", False)], OrderStatus.FILLED),
    "limit_queue_and_partials": (
        OrderRequest(BTC, B, T.LIMIT, Q, price=Decimal("39990.0")),
        # touch (no), through #1 (queue delay 1: no), above, through #2 → 0.01 (0.5 × 0.02), through #3 → rest
        [(39990.0, 1.0), (39989.9, 0.1), (39995.0, 1.0), (39989.0, 0.02), (39980.0, 1.0)],
        [(39990.0, "0.010", True), (39990.0, "0.020", True)], OrderStatus.FILLED),
    "post_only": (
        OrderRequest(BTC, S, T.LIMIT, Q, price=Decimal("40010.0"), time_in_force=TimeInForce.POST_ONLY),
        [(40010.0, 1.0), (40010.5, 1.0), (40011.0, 1.0)], [(40010.0, "0.030", True)], OrderStatus.FILLED),
    "stop_market_gap": (
        OrderRequest(BTC, S, T.STOP_MARKET, Q, stop_price=Decimal("39950.0")),
        [(39960.0, 1.0), (39940.0, 0.001)],  # triggers through a gap: the trade price; never participation-capped
        [(stop_sell(39950.0, 39940.0), "0.030", False)], OrderStatus.FILLED),
    "stop_limit": (
        OrderRequest(BTC, S, T.STOP_LIMIT, Q, stop_price=Decimal("39950.0"), price=Decimal("39900.0")),
        [(39949.0, 1.0), (39948.0, 1.0)],  # trigger → marketable limit → taker on the next trade
        [(mkt(39948.0, -1), "0.030", False)], OrderStatus.FILLED),
    "take_profit_market": (
        OrderRequest(BTC, B, T.TAKE_PROFIT_MARKET, Q, stop_price=Decimal("39950.0")),
        [(39960.0, 1.0), (39949.5, 0.002)], [(mkt(39949.5, 1), "0.030", False)], OrderStatus.FILLED),
    "take_profit_limit": (
        OrderRequest(BTC, B, T.TAKE_PROFIT_LIMIT, Q, stop_price=Decimal("39950.0"), price=Decimal("39960.0")),
        [(39949.5, 1.0), (39949.0, 1.0)], [(mkt(39949.0, 1), "0.030", False)], OrderStatus.FILLED),
    "ioc_partial_then_expired": (
        OrderRequest(BTC, B, T.LIMIT, Q, price=Decimal("40010.0"), time_in_force=TimeInForce.IOC),
        [(40000.0, 0.02), (39000.0, 1.0)], [(mkt(40000.0, 1), "0.010", False)], OrderStatus.EXPIRED),
    "fok_not_enough": (
        OrderRequest(BTC, B, T.LIMIT, Q, price=Decimal("40010.0"), time_in_force=TimeInForce.FOK),
        [(40000.0, 0.02), (39000.0, 1.0)], [], OrderStatus.EXPIRED),
    "gtc_marketable_then_rests": (
        OrderRequest(BTC, B, T.LIMIT, Q, price=Decimal("40010.0")),
        [(40000.0, 0.02), (40010.0, 1.0), (40009.0, 1.0), (40008.0, 1.0)],
        [(mkt(40000.0, 1), "0.010", False), (40010.0, "0.020", True)], OrderStatus.FILLED),
    "ioc_not_marketable": (
        OrderRequest(BTC, B, T.LIMIT, Q, price=Decimal("39000.0"), time_in_force=TimeInForce.IOC),
        [(39000.0, 1.0), (38000.0, 1.0)], [], OrderStatus.EXPIRED),
}


@pytest.mark.parametrize("market", ["spot", "usdm"])
@pytest.mark.parametrize("case", list(CASES))
def test_every_order_type_exact_fills(market, case):
    req, trades, rows, final = CASES[case]

    async def body():
        st = Stack(market)
        assert isinstance(st.venue, Venue)
        snap = await st.submit(req)
        if case == "ioc_not_marketable":
            assert snap.status is OrderStatus.EXPIRED  # expired in the ack itself
        else:
            assert snap.status is OrderStatus.ACCEPTED and snap.venue_order_id is not None
        for p, q in trades:
            st.trade(p, q)
        snap = await st.om.sync_order(snap.client_order_id)
        got = [(f.price, f.qty, f.fee, f.fee_asset, f.liquidity) for f in snap.fills]
        assert got == expected(market, 1 if req.side is B else -1, rows)
        assert snap.status is final, (snap.status, snap.reason)
        assert snap.filled_qty == sum((Decimal(q) for _, q, _ in rows), Decimal(0))
        assert not await st.venue.open_orders()
        await st.reconcile_clean()
        n_records = len(list(st.om.journal._store.records()))
        await st.om.sync_order(snap.client_order_id)  # nothing new to record
        assert len(list(st.om.journal._store.records())) == n_records

    run(body())


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_cancel_balances_and_positions(market):
    async def body():
        st = Stack(market)
        rest = await st.submit(OrderRequest(BTC, B, T.LIMIT, Q, price=Decimal("39000.0")))
        if market == "spot":  # the limit buy locks its quote
            assert (await st.venue.balances())["USDT"].locked == Decimal("1170.00000000")
        assert [o.client_order_id for o in await st.venue.open_orders(BTC)] == [rest.client_order_id]
        canceled = await st.om.cancel(rest.client_order_id)
        assert canceled.status is OrderStatus.CANCELED
        with pytest.raises(VenueRejectedError) as err:
            await st.venue.cancel(BTC, rest.client_order_id)
        assert err.value.code == -2011
        buy = await st.submit(OrderRequest(BTC, B, T.MARKET, Q))
        st.trade(40_100.0, 1.0)
        buy = await st.om.sync_order(buy.client_order_id)
        px = mkt(40_100.0, 1)
        bal = await st.venue.balances()
        if market == "spot":
            fee_btc = 0.03 * 0.001
            assert bal["BTC"].total == Decimal(f"{1.0 + 0.03 - fee_btc:.8f}")
            assert bal["USDT"].total == Decimal(f"{100_000.0 - 0.03 * px:.8f}") and bal["USDT"].locked == 0
            assert await st.venue.positions() == {}
        else:
            pos = (await st.venue.positions())[BTC]
            assert pos.qty == Q and pos.entry_price == Decimal(f"{px:.8f}")
            assert bal["USDT"].total == Decimal(f"{100_000.0 - 0.03 * px * 0.0004:.8f}")
            # reduce-only larger than the position: capped at it, then expired
            ro = await st.submit(OrderRequest(BTC, S, T.MARKET, Decimal("0.050"), reduce_only=True))
            st.trade(40_200.0, 1.0)
            ro = await st.om.sync_order(ro.client_order_id)
            assert ro.status is OrderStatus.EXPIRED and ro.filled_qty == Q
            assert ro.fills[0].price == Decimal(f"{mkt(40_200.0, -1):.8f}")
            assert await st.venue.positions() == {}
            assert st.venue.ledger.position(BTC).realized_pnl == pytest.approx(0.03 * (mkt(40_200.0, -1) - px))
        await st.reconcile_clean()

    run(body())


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_venue_rejects_carry_binance_codes(market):
    spot = market == "spot"

    def order(n: int, **kw) -> Order:
        base = {"client_order_id": f"{NS}.sim.{n}", "strategy_id": "sim", "symbol": BTC, "side": B,
                "type": T.LIMIT, "qty": Q, "price": Decimal("39000.0"), "stop_price": None,
                "time_in_force": TimeInForce.GTC, "reduce_only": False, "ts_created": T0}
        base.update(kw)
        return Order(**base)

    async def body():
        st = Stack(market)
        v = st.venue
        cases = [
            (order(1, price=Decimal("40100.0"), time_in_force=TimeInForce.POST_ONLY), -2010 if spot else -5022),
            (order(2, type=T.STOP_MARKET, side=S, price=None, time_in_force=None, stop_price=Decimal("40100.0")),
             -2010 if spot else -2021),
            (order(3, qty=Decimal("10.000")), -2010),  # spot: 390 000 USDT; usdm below
            (order(4, qty=Decimal("0.0105")), -1013 if spot else -1111),
            (order(5, price=Decimal("39000.05")), -1013 if spot else -4014),
            (order(6, qty=Decimal("0.001"), price=Decimal("3000.0")), -1013 if spot else -4164),
            (order(7, symbol="ETHUSDT"), -1121),
            (order(8, type=T.MARKET, side=S, price=None, time_in_force=None, reduce_only=True),
             -1106 if spot else -2022),
        ]
        if not spot:  # 10 BTC at 39000 / 10x = 39 000 of margin fits; 100 BTC does not
            cases[2] = (order(3, qty=Decimal("100.000")), -2019)
        for o, code in cases:
            with pytest.raises(VenueRejectedError) as err:
                await v.submit(o)
            assert err.value.code == code, (o, err.value)
            assert err.value.client_order_id == o.client_order_id and err.value.venue_message
        assert v.all_orders() == []
        assert (await v.query_order(BTC, f"{NS}.sim.1")).status is VenueStatus.NOT_FOUND
        ok = order(9)
        await v.submit(ok)
        with pytest.raises(VenueRejectedError) as err:
            await v.submit(ok)  # a client id is unique among open orders
        assert err.value.code == (-2010 if spot else -4116)
        # through the manager: the venue's reject is journaled REJECTED with the code
        with pytest.raises(VenueRejectedError) as err:
            await st.om.submit(OrderRequest(BTC, B, T.LIMIT, Q, price=Decimal("40100.0"),
                                            time_in_force=TimeInForce.POST_ONLY), strategy="sim")
        assert st.om.get(err.value.client_order_id).status is OrderStatus.REJECTED

    run(body())


# -- fault drills ---------------------------------------------------------------------------------


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_lost_ack_recovers_without_duplicate(market):
    async def body():
        st = Stack(market)
        st.venue.inject(SimFault("lost_ack"))
        st.venue.inject(SimFault("unavailable", call="query"))  # the first question fails too
        snap = await st.submit(OrderRequest(BTC, B, T.MARKET, Q))
        assert snap.status is OrderStatus.ACCEPTED
        assert [t.to_status for t in snap.history][:2] == [OrderStatus.SUBMITTED, OrderStatus.UNKNOWN]
        st.trade(40_001.0, 1.0)
        snap = await st.om.sync_order(snap.client_order_id)
        assert snap.status is OrderStatus.FILLED and snap.fills[0].price == Decimal(f"{mkt(40_001.0, 1):.8f}")
        assert len(st.venue.all_orders()) == 1 and len(st.om.orders()) == 1
        await st.reconcile_clean()

    run(body())


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_timeout_and_not_processed_give_one_order_with_new_ids(market):
    async def body():
        st = Stack(market)
        st.venue.inject(SimFault("timeout"))  # never reached the book: not found after the grace
        st.venue.inject(SimFault("not_processed"))  # the second attempt gets a 429
        snap = await st.submit(OrderRequest(BTC, B, T.MARKET, Q))
        assert snap.status is OrderStatus.ACCEPTED
        journal = st.om.orders()
        assert [s.status for s in journal] == [OrderStatus.REJECTED, OrderStatus.REJECTED, OrderStatus.ACCEPTED]
        assert journal[0].reason.startswith("not found at venue")
        assert journal[1].reason.startswith("not processed")
        assert len({s.client_order_id for s in journal}) == 3
        assert [o.client_order_id for o in st.venue.all_orders()] == [snap.client_order_id]
        st.trade(40_001.0, 1.0)
        assert (await st.om.sync_order(snap.client_order_id)).status is OrderStatus.FILLED
        await st.reconcile_clean()

    run(body())


def test_deterministic_with_seeded_faults_and_latency():
    cfg = SimVenueConfig(market="usdm", fill=FILL.model_copy(update={"latency_ns": 5 * MS}), fees=FEES["usdm"],
                         balances=BALANCES["usdm"], seed=11, random_submit_faults=0.5)

    async def once():
        st = Stack("usdm", cfg)
        out = []
        for k in range(6):
            snap = await st.submit(OrderRequest(BTC, B if k % 2 else S, T.MARKET, Q))
            t_sub = st.venue.now_ns()
            for j in range(8):
                st.trade(40_000.0 + k + j, 1.0)
            snap = await st.om.sync_order(snap.client_order_id)
            assert snap.status is OrderStatus.FILLED
            assert snap.fills[0].ts_event >= t_sub + 5 * MS  # latency: trades before arrival never fill
            out.append([(f.price, f.qty, f.fee, f.ts_event) for f in snap.fills])
        return out, [(s.client_order_id, s.status) for s in st.om.orders()]

    a, b = run(once()), run(once())
    assert a == b
    assert any(s is OrderStatus.REJECTED for _, s in a[1])  # the seeded faults did fire


def test_bad_market_data_raises():
    v = SimVenue([instrument("usdm")])
    v.on_trade(BTC, T0, 40_000.0, 1.0)
    with pytest.raises(DataError):
        v.on_trade(BTC, T0 - 1, 40_000.0, 1.0)
    with pytest.raises(DataError):
        v.on_trade(BTC, T0, float("nan"), 1.0)
    with pytest.raises(DataError):
        v.on_trade("ETHUSDT", T0, 1.0, 1.0)
    with pytest.raises(DataError):
        v.on_book(BTC, T0, 40_001.0, 40_000.0)


# -- parity with the exchange emulator ------------------------------------------------------------


@pytest.mark.network_local
@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_same_fills_as_the_emulator(market, tmp_path):
    from emulator.testing import first_trade_index
    from tests.support.order_manager import (
        FAST,
        NAMESPACE,
        Harness,
        rules_of,
        start_emulator,
    )

    emu = start_emulator(market)
    tick = Decimal("0.1")

    def ticks(x: float, up: bool) -> Decimal:
        return (Decimal(repr(x)) / tick).to_integral_value(ROUND_CEILING if up else ROUND_FLOOR) * tick

    async def body():
        h = Harness(emu, market, tmp_path / "emu.db")
        om_e = h.open_manager()
        balances = {"USDT": 100_000.0, "BTC": 1.0, "ETH": 10.0} if market == "spot" else {"USDT": 100_000.0}
        sim = SimVenue([sc.instrument for sc in emu.config.symbols],
                       SimVenueConfig(market=market, fill=emu.config.fill, fees=emu.config.fee_config(),
                                      balances=balances, leverage=emu.config.accounts[0].leverage),
                       rules=rules_of(emu))
        fed = {s: 0 for s in emu.tapes}

        def feed() -> None:  # the same trades the emulator has matched
            for sym, tape in emu.tapes.items():
                for i in range(fed[sym], tape.cursor):
                    sim.on_trade(sym, int(tape.ts[i]), float(tape.price[i]), float(tape.qty[i]),
                                 bool(tape.buyer_maker[i]))
                fed[sym] = tape.cursor

        feed()
        om_s = OrderManager(OrderJournal.in_memory(), sim, rules_of(emu), namespace=NAMESPACE, config=FAST,
                            base_assets={BTC: "BTC", "ETHUSDT": "ETH"} if market == "spot" else None)
        try:
            last = float(emu.engine.last_price(BTC))
            assert sim.last_price(BTC) == last
            prices = [emu.next_trade(BTC, k)[0] for k in range(300)]
            lo, hi = min(prices), max(prices)
            assert first_trade_index(emu, BTC, lambda p: p < last - (last - lo) / 2) < 300
            below = ticks(last - (last - lo) / 2, up=False)
            above = ticks(last + (hi - last) / 2, up=True)
            ref = Decimal(repr(last))
            q = Decimal("0.010")
            reqs = [
                OrderRequest(BTC, B, T.MARKET, Decimal("0.600")),  # several partial fills (participation 1.0)
                OrderRequest(BTC, S, T.MARKET, q),
                OrderRequest(BTC, B, T.LIMIT, q, price=below + 3 * tick),
                OrderRequest(BTC, B, T.LIMIT, q, price=below + 2 * tick, time_in_force=TimeInForce.POST_ONLY),
                OrderRequest(BTC, S, T.LIMIT, q, price=above, time_in_force=TimeInForce.POST_ONLY),
                OrderRequest(BTC, S, T.STOP_MARKET, q, stop_price=below),
                OrderRequest(BTC, S, T.STOP_LIMIT, q, stop_price=below, price=below - 200 * tick),
                OrderRequest(BTC, B, T.TAKE_PROFIT_MARKET, q, stop_price=below),
                OrderRequest(BTC, B, T.TAKE_PROFIT_LIMIT, q, stop_price=below, price=below + 200 * tick),
                OrderRequest(BTC, B, T.LIMIT, Decimal("0.500"), price=ticks(last + 20, True),
                             time_in_force=TimeInForce.IOC),
                OrderRequest(BTC, B, T.LIMIT, Decimal("0.800"), price=ticks(last + 20, True)),  # taker, then rests
                OrderRequest(BTC, B, T.LIMIT, q, price=ticks(lo - 500, False), time_in_force=TimeInForce.FOK),
                OrderRequest(BTC, B, T.LIMIT, q, price=ticks(lo - 500, False)),  # canceled below
            ]
            pairs = []
            for req in reqs:
                se = await om_e.submit(req, strategy="par", reference_price=ref)
                ss = await om_s.submit(req, strategy="par", reference_price=ref)
                assert se.client_order_id == ss.client_order_id and se.status is ss.status, (req, se, ss)
                pairs.append((se.client_order_id, req))
            for om in (om_e, om_s):
                assert (await om.cancel(pairs[-1][0])).status is OrderStatus.CANCELED
            for _ in range(15):
                h.emu.advance_trades(BTC, 20)
                feed()
                for cid, _ in pairs:
                    await om_e.sync_order(cid)
                    await om_s.sync_order(cid)
            n_fills = 0
            for cid, req in pairs:
                e, s = om_e.get(cid), om_s.get(cid)
                fe = [(f.trade_id, f.price, f.qty, f.fee, f.fee_asset, f.liquidity) for f in e.fills]
                fs = [(f.trade_id, f.price, f.qty, f.fee, f.fee_asset, f.liquidity) for f in s.fills]
                assert fe == fs, (req, fe, fs)
                assert e.status is s.status and e.filled_qty == s.filled_qty, (req, e.status, s.status)
                n_fills += len(fe)
            assert n_fills >= 12 and om_e.get(pairs[0][0]).status is OrderStatus.FILLED
            assert len(om_e.get(pairs[0][0]).fills) > 1
            assert await h.venue.positions() == await sim.positions()
            if market == "spot":
                be, bs = await h.venue.balances(), await sim.balances()
                for asset in ("BTC", "USDT"):
                    assert (be[asset].free, be[asset].locked) == (bs[asset].free, bs[asset].locked), asset
            for cid, _ in pairs:
                ve, vs = await h.venue.query_order(BTC, cid, conditional=Market(market) == Market.USDM
                                                   and om_e.get(cid).order.type.has_stop_price), \
                    await sim.query_order(BTC, cid, conditional=Market(market) == Market.USDM
                                          and om_s.get(cid).order.type.has_stop_price)
                assert ve.status is vs.status and ve.executed_qty == vs.executed_qty
        finally:
            await h.close()

    try:
        run(body(), 45)
    finally:
        emu.stop()
