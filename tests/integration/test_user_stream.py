"""`UserStream` against the emulator with the REAL ccxt.pro client (spot: WebSocket API subscription;
USD-M: listenKey stream) and the order-manager Harness: fills reach the journal through the stream
before any REST sync, exactly once even when REST sync and reconciliation also run; a websocket fault
that loses a fill message (the server closes instead of sending it) → reconnect → the reconciliation
applies the lost trade once; stop() returns within a bound. Every wait is bounded."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from emulator.faults import WsFaultRule
from emulator.testing import lots_down
from execution.orders import OrderRequest, OrderSide, OrderType
from execution.reconcile import Reconciler
from execution.user_stream import UserStream
from tests.support.order_manager import (
    BTC,
    Harness,
    assert_agreement,
    run,
    spot_baseline,
    start_emulator,
)

pytestmark = [pytest.mark.network_local, pytest.mark.timeout(60)]
STEP = 0.001
USER_LABEL = {"spot": "user@executionReport", "usdm": "user@ORDER_TRADE_UPDATE"}
REST_SYNC = ("order", "myTrades", "userTrades", "openOrders", "algoOrder", "openAlgoOrders")


@pytest.fixture(params=["spot", "usdm"])
def market(request):
    return request.param


@pytest.fixture
def emu(market):
    e = start_emulator(market)
    yield e
    e.stop()


async def until(pred, timeout: float = 5.0, what: str = "condition"):
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def multi_trade_qty(emu) -> Decimal:
    """A market buy bigger than the next trade: it fills over several trades (several messages)."""
    q0 = lots_down(emu.next_trade(BTC, 0)[1], STEP)
    q1 = lots_down(emu.next_trade(BTC, 1)[1], STEP)
    return Decimal(repr(round(q0 + q1 / 2 + STEP, 3)))


def rest_reads(emu) -> int:
    return sum(1 for r in emu.records() if r.method == "GET" and r.endpoint in REST_SYNC)


async def stack(emu, market, tmp_path, **kw):
    h = Harness(emu, market, tmp_path / "journal.db")
    om = h.open_manager()
    rec = Reconciler(om, [BTC], baseline=spot_baseline(market))
    client = emu.pro_client()
    await client.load_markets()
    us = UserStream(client, om, [BTC], market=market, reconcile=rec.run_once, backoff_base_s=0.05,
                    backoff_max_s=0.3, **kw)
    return h, om, rec, client, us


async def teardown(h, client, us):
    await us.stop()
    await client.close()
    await h.close()


def test_fills_reach_the_journal_through_the_stream_exactly_once(emu, market, tmp_path):
    async def body():
        h, om, rec, client, us = await stack(emu, market, tmp_path)
        try:
            us.start()
            await asyncio.wait_for(us.connected.wait(), 10)
            qty = multi_trade_qty(emu)
            snap = await om.submit(OrderRequest(BTC, OrderSide.BUY, OrderType.MARKET, qty), strategy="ws",
                                   reference_price=h.last())
            cid = snap.client_order_id
            reads = rest_reads(emu)
            for _ in range(10):  # one trade at a time; no REST call of ours in between
                if om.get(cid).is_terminal:
                    break
                emu.advance_trades(BTC, 1)
                n = len(emu.engine.accounts[next(iter(emu.engine.accounts))].fills)
                await until(lambda n=n: len(om.get(cid).fills) == n, what="stream fill in the journal")
            final = om.get(cid)
            assert final.is_terminal and final.filled_qty == qty and len(final.fills) >= 2
            assert rest_reads(emu) == reads, "fills came over REST, not through the stream"
            assert us.stats.fills_applied == len(final.fills) and us.stats.syncs == 0
            # REST sync and reconciliation find nothing new; the journal holds each trade once
            await om.sync_order(cid)
            report = await rec.run_once()
            assert om.get(cid).fills == final.fills
            assert not [e for e in report.events if type(e).__name__ in ("FillApplied", "LateFill")]
            assert_agreement(h, spot_baseline(market), intended=1)
            # the stream may also see a trade REST applied first: a duplicate, not a second fill
            n_before = len(om.get(cid).fills)
            info = {"x": "TRADE", "s": BTC, "c": cid, "t": final.fills[0].trade_id, "l": "1", "L": "1", "T": 1, "z": "1"}
            us.on_trade_event(info)
            assert len(om.get(cid).fills) == n_before and us.stats.fills_duplicate >= 1
            t0 = time.monotonic()
            await us.stop()
            assert time.monotonic() - t0 < 2.0 and not us.running
        finally:
            await teardown(h, client, us)

    run(body(), 40)


def test_lost_fill_message_is_applied_once_by_the_reconciliation_after_reconnect(emu, market, tmp_path):
    async def body():
        h, om, rec, client, us = await stack(emu, market, tmp_path)
        try:
            us.start()
            await asyncio.wait_for(us.connected.wait(), 10)
            assert us.stats.reconciles == 1  # on the first connect
            qty = multi_trade_qty(emu)
            snap = await om.submit(OrderRequest(BTC, OrderSide.BUY, OrderType.MARKET, qty), strategy="ws",
                                   reference_price=h.last())
            cid = snap.client_order_id
            await asyncio.sleep(0.1)  # the NEW event went out on the stream
            # the next order event (the first trade) is not sent: the server closes the connection instead
            emu.add_ws_fault(WsFaultRule(kind="close", stream=USER_LABEL[market]))
            emu.advance_trades(BTC, 1)
            first_trade = str(emu.engine.accounts[next(iter(emu.engine.accounts))].fills[0].trade_id)
            await until(lambda: us.stats.disconnects >= 1, what="disconnect")
            emu.ws.faults.clear()  # the rule counts per connection: it would hit the new one too
            await until(lambda: us.connected.is_set() and us.stats.reconciles >= 2, 10, what="reconnect + reconcile")
            snap = om.get(cid)
            assert [f.trade_id for f in snap.fills].count(first_trade) == 1  # applied by the reconciliation
            assert us.stats.fills_applied == 0 and us.stats.connects == 2
            # the rest through the stream again
            for _ in range(10):
                if om.get(cid).is_terminal:
                    break
                emu.advance_trades(BTC, 1)
                n = len(emu.engine.accounts[next(iter(emu.engine.accounts))].fills)
                await until(lambda n=n: len(om.get(cid).fills) == n, what="stream fill after reconnect")
            final = om.get(cid)
            assert final.is_terminal and final.filled_qty == qty and us.stats.fills_applied >= 1
            await rec.run_once()
            assert om.get(cid).fills == final.fills
            assert_agreement(h, spot_baseline(market), intended=1)
        finally:
            await teardown(h, client, us)

    run(body(), 40)


def test_stop_is_bounded_while_reconnecting(tmp_path):
    """The venue's websocket goes away for good: the stream keeps retrying with backoff; stop() ends it."""
    emu = start_emulator("usdm")

    async def body():
        h, _om, _rec, client, us = await stack(emu, "usdm", tmp_path, subscribe_timeout_s=0.5)
        try:
            us.start()
            await asyncio.wait_for(us.connected.wait(), 10)
            emu.ws.close_connections("/private/ws", abrupt=True)
            await until(lambda: us.stats.disconnects >= 1, what="disconnect")
            t0 = time.monotonic()
            await us.stop(timeout_s=2.0)
            assert time.monotonic() - t0 < 2.5 and not us.running
            await us.stop()  # idempotent
        finally:
            await teardown(h, client, us)

    try:
        run(body(), 20)
    finally:
        emu.stop()


def test_usdm_listen_key_keep_alive(tmp_path):
    """ccxt.pro 4.5.90 PUTs the listenKey once after the POST and never again (its re-scheduling looks
    the subscriptions up with safe_dict on Client objects); UserStream PUTs it on its own timer."""
    emu = start_emulator("usdm")

    async def body():
        h, _om, _rec, client, us = await stack(emu, "usdm", tmp_path, keepalive_s=0.2)
        client.options["listenKeyRefreshRate"] = 100  # ccxt's own keep-alive, sped up
        try:
            us.start()
            await asyncio.wait_for(us.connected.wait(), 10)
            await until(lambda: us.stats.keepalives >= 3, 5, what="our keep-alives")
            puts = [r for r in emu.records("listenKey") if r.method == "PUT"]
            assert len(puts) >= 3 and us.stats.keepalive_errors == 0
            assert us.stats.connects == 1  # the stream stayed up
        finally:
            await teardown(h, client, us)

    try:
        run(body(), 20)
    finally:
        emu.stop()



def test_trade_without_cumulative_quantity_queues_a_rest_sync():
    """A raw TRADE event whose `z` (cumulative executed) is missing cannot rule out a lost earlier
    trade: the fill is applied and the order is also queued for a REST sync, and counted."""
    from decimal import Decimal

    from execution.user_stream import UserStream, UserStreamStats

    class WorkingOrder:  # the journal's view of an accepted order with no fills yet
        fills = ()
        is_in_flight = False
        is_terminal = False
        status = None
        filled_qty = Decimal(0)

    class Journal:
        def get(self, cid):
            return WorkingOrder()

    us = UserStream.__new__(UserStream)  # only the event handler is exercised: no client, no loop
    us.om, us.stats, us._deferred = Journal(), UserStreamStats(), {}
    applied, synced = [], []
    us._apply = lambda cid, fill: applied.append((cid, fill.trade_id, fill.qty))
    us._queue_sync = synced.append
    ev = {"c": "ns.s.1", "t": 7, "l": "0.5", "L": "100.0", "n": "0.01", "N": "USDT", "T": 1, "m": False}
    us.on_trade_event(ev)
    assert applied == [("ns.s.1", "7", Decimal("0.5"))] and synced == ["ns.s.1"]
    assert us.stats.gaps_unchecked == 1 and us.stats.gaps == 0
    us.on_trade_event({**ev, "t": 8, "z": "1.0"})  # with z: 1.0 − 0.5 = 0.5 > 0 filled → a real gap
    assert us.stats.gaps == 1 and us.stats.gaps_unchecked == 1
