"""Fault drills (spot and USD-M): under each injected fault, after recovery every order the strategy
intended exists exactly once at the venue (the emulator's own books), every fill is applied exactly
once, and journal, ledger (positions from journal fills) and venue agree. Also: the limiters never
exceed their budgets over a burst.

| drill | what the venue did | expected path |
|---|---|---|
| lost_ack | stored the order, reset the connection | UNKNOWN → query by client id → ACCEPTED |
| server_error 503 | nothing | UNKNOWN → not found … grace → REJECTED → new id → ACCEPTED |
| drop | nothing (closed before processing) | same as 503 |
| delay > client timeout | stored it late | UNKNOWN → not found (inside grace) → found → ACCEPTED |
| rate_limit 429 | nothing, Retry-After | not processed → limiter waits → new id → ACCEPTED, no 418 |
| ban 418 | nothing, Retry-After | same as 429 |
| restart after send | stored; the process died before the answer | new manager: start() resolves → ACCEPTED |
| restart before send | nothing (Submitted journaled, then died) | start(): never placed → resubmit → ACCEPTED |
| restart with an unsent intent | nothing | start(): canceled locally |
| restart while fills happen | filled while down | start()/reconcile: fills applied once |
"""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from emulator import FaultRule
from execution.order_manager import never_reached_venue
from execution.orders import (
    Order,
    OrderJournal,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    Submitted,
)
from execution.reconcile import Reconciler
from tests.support.order_manager import (
    BTC,
    ETH,
    NAMESPACE,
    Harness,
    assert_agreement,
    run,
    spot_baseline,
    start_emulator,
    venue_orders,
)

pytestmark = [pytest.mark.network_local, pytest.mark.timeout(60)]
Q = Decimal("0.010")
MARKETS = ["spot", "usdm"]


class SimulatedCrash(BaseException):
    """The process dies (not an Exception: nothing in the stack may handle it)."""


class CrashingVenue:
    """Delegates to a real venue; `submit` dies before or after the real call."""

    def __init__(self, inner, when: str):
        self.inner, self.when = inner, when
        self.market = inner.market

    async def submit(self, order):
        if self.when == "before":
            raise SimulatedCrash("died after journaling Submitted, before the venue call")
        await self.inner.submit(order)
        raise SimulatedCrash("died after the venue stored the order, before the answer was journaled")

    def __getattr__(self, name):
        return getattr(self.inner, name)


async def _finish(h: Harness, market: str, intended: int) -> None:
    """Let the market orders fill, reconcile twice (the second pass must find nothing), then check."""
    h.emu.advance_trades(BTC, 3)
    rec = Reconciler(h.om, [BTC, ETH], fills_since_ms=0, baseline=spot_baseline(market))
    await rec.run_once()
    second = await rec.run_once()
    assert second.clean and not second.events, second
    for s in h.om.orders():
        if not never_reached_venue(s) and s.status is not OrderStatus.CANCELED:
            assert s.status is OrderStatus.FILLED, (s.client_order_id, s.status, s.reason)
    assert_agreement(h, spot_baseline(market), intended=intended)


def _market_buy() -> OrderRequest:
    return OrderRequest(BTC, OrderSide.BUY, OrderType.MARKET, Q)


SUBMIT_FAULTS = {
    "lost_ack": ({"kind": "lost_ack"}, OrderStatus.ACCEPTED, 1),
    "server_error": ({"kind": "server_error", "status": 503}, OrderStatus.ACCEPTED, 2),
    "drop": ({"kind": "drop"}, OrderStatus.ACCEPTED, 2),
    "delay_past_timeout": ({"kind": "delay", "delay_s": 0.5}, OrderStatus.ACCEPTED, 1),
    "rate_limit_429": ({"kind": "rate_limit", "retry_after_s": 1}, OrderStatus.ACCEPTED, 2),
    "ban_418": ({"kind": "ban", "retry_after_s": 1}, OrderStatus.ACCEPTED, 2),
}


@pytest.mark.parametrize("market", MARKETS)
@pytest.mark.parametrize("fault", list(SUBMIT_FAULTS))
def test_fault_on_submit(market, fault, tmp_path):
    rule, expected, attempts = SUBMIT_FAULTS[fault]
    emu = start_emulator(market)

    async def body():
        h = Harness(emu, market, tmp_path / "journal.db", timeout_ms=250)
        om = h.open_manager()
        try:
            emu.add_fault(FaultRule(endpoint="order", method="POST", **rule))
            t0 = time.monotonic()
            snap = await om.submit(_market_buy(), strategy="drill", reference_price=h.last())
            elapsed = time.monotonic() - t0
            assert snap.status is expected, (snap.status, snap.reason)
            assert len(om.orders()) == attempts, [(s.client_order_id, s.status, s.reason) for s in om.orders()]
            first = om.orders()[0]
            if attempts == 2:  # the first attempt provably never reached the venue; the second is a new id
                assert never_reached_venue(first), first.reason
                assert first.client_order_id not in {o.client_id for o in venue_orders(emu)}
            posts = [r for r in emu.records("order") if r.method == "POST"]
            assert len({r.params["newClientOrderId"] for r in posts}) == len(posts)  # no id ever sent twice
            if fault in ("rate_limit_429", "ban_418"):
                assert elapsed >= 0.9  # Retry-After honoured before the new attempt
                assert not [r for r in emu.records() if r.fault == "banned"]  # never hit inside the window
            if fault in ("server_error", "drop"):
                assert any(t.to_status is OrderStatus.UNKNOWN for t in first.history)
            await _finish(h, market, intended=1)
        finally:
            await h.close()

    try:
        run(body(), 30)
    finally:
        emu.stop()


@pytest.mark.parametrize("market", MARKETS)
def test_rate_limited_and_failing_reads_are_retried(market, tmp_path):
    emu = start_emulator(market)

    async def body():
        h = Harness(emu, market, tmp_path / "journal.db")
        om = h.open_manager()
        try:
            snap = await om.submit(_market_buy(), strategy="drill", reference_price=h.last())
            emu.advance_trades(BTC, 2)
            emu.add_fault(FaultRule(kind="rate_limit", endpoint="order", method="GET", retry_after_s=1))
            emu.add_fault(FaultRule(kind="server_error", endpoint="openOrders", method="GET"))
            t0 = time.monotonic()
            snap = await om.sync_order(snap.client_order_id)
            assert snap.status is OrderStatus.FILLED and time.monotonic() - t0 >= 0.9
            assert not [r for r in emu.records() if r.fault == "banned"]
            assert await h.venue.open_orders(BTC) == []  # 503 then retried
            assert h.venue.stats["retries"] >= 2
            await _finish(h, market, intended=1)
        finally:
            await h.close()

    try:
        run(body(), 30)
    finally:
        emu.stop()


@pytest.mark.parametrize("market", MARKETS)
@pytest.mark.parametrize("when", ["after", "before"])
def test_restart_in_the_middle_of_a_submission(market, when, tmp_path):
    emu = start_emulator(market)

    async def body():
        h = Harness(emu, market, tmp_path / "journal.db")
        h.open_manager()
        h.om.venue = crashing = CrashingVenue(h.venue, when)
        with pytest.raises(SimulatedCrash):
            await h.om.submit(_market_buy(), strategy="drill", reference_price=h.last())
        assert crashing is h.om.venue
        await h.crash()
        emu.advance_trades(BTC, 2)  # the market moves while we are down (a stored order fills)
        om = h.open_manager()  # same journal file, new objects
        try:
            report = await om.start()
            cid = f"{NAMESPACE}.drill.0"
            if when == "after":
                assert report.resolved == {cid: OrderStatus.FILLED}, report
            else:
                assert report.never_placed == [cid], report
                snap = await om.resubmit(cid)
                assert snap.status is OrderStatus.ACCEPTED and snap.client_order_id == f"{NAMESPACE}.drill.1"
                with pytest.raises(ValueError):
                    await om.resubmit(snap.client_order_id)
            await _finish(h, market, intended=1)
        finally:
            await h.close()

    try:
        run(body(), 30)
    finally:
        emu.stop()


@pytest.mark.parametrize("market", MARKETS)
def test_restart_with_unsent_intent_and_fills_while_down(market, tmp_path):
    emu = start_emulator(market)

    async def body():
        h = Harness(emu, market, tmp_path / "journal.db")
        om = h.open_manager()
        last = h.last()
        limit_px = (last - Decimal(30)).quantize(Decimal("0.1"))
        resting = await om.submit(OrderRequest(BTC, OrderSide.BUY, OrderType.LIMIT, Q, price=limit_px),
                                  strategy="drill", reference_price=last)
        assert resting.status is OrderStatus.ACCEPTED
        await h.crash()
        # a crash between the intent and the Submitted record: an intent that was never sent
        j = OrderJournal.open_sqlite(h.journal_path)
        unsent = Order(client_order_id=f"{NAMESPACE}.drill.1", strategy_id="drill", symbol=BTC, side=OrderSide.BUY,
                       type=OrderType.MARKET, qty=Q, price=None, stop_price=None, time_in_force=None,
                       reduce_only=False, ts_created=time.time_ns())
        j.record_intent(unsent)
        j.close()
        # while down, the resting order fills
        from emulator.testing import first_trade_index
        k = first_trade_index(emu, BTC, lambda p: p < float(limit_px))
        emu.advance_trades(BTC, k + 3)
        om = h.open_manager()
        try:
            report = await om.start()
            assert report.canceled_unsent == [unsent.client_order_id]
            assert report.synced == {resting.client_order_id: OrderStatus.FILLED}, report
            assert om.get(unsent.client_order_id).status is OrderStatus.CANCELED
            n = len(om.get(resting.client_order_id).fills)
            assert n >= 1
            await om.start()  # a second recovery applies nothing again
            assert len(om.get(resting.client_order_id).fills) == n
            await _finish(h, market, intended=1)
        finally:
            await h.close()

    try:
        run(body(), 30)
    finally:
        emu.stop()


def test_in_flight_orders_after_restart_wait_for_the_grace_window(tmp_path):
    """A SUBMITTED order the venue never saw stays in flight while the venue could still process
    it; only after the grace window does it become REJECTED (never placed)."""
    emu = start_emulator("usdm")

    async def body():
        h = Harness(emu, "usdm", tmp_path / "journal.db")
        j = OrderJournal.open_sqlite(h.journal_path)
        order = Order(client_order_id=f"{NAMESPACE}.drill.0", strategy_id="drill", symbol=BTC, side=OrderSide.BUY,
                      type=OrderType.MARKET, qty=Q, price=None, stop_price=None, time_in_force=None,
                      reduce_only=False, ts_created=time.time_ns())
        j.record_intent(order)
        j.apply(order.client_order_id, Submitted(time.time_ns()))
        j.close()
        om = h.open_manager()
        try:
            report = await om.start(resolve_timeout_s=0)
            assert report.still_unknown == [order.client_order_id]
            report = await om.start(resolve_timeout_s=5)
            assert report.never_placed == [order.client_order_id]
            assert not venue_orders(emu)
        finally:
            await h.close()

    try:
        run(body(), 20)
    finally:
        emu.stop()


def test_limiters_never_exceed_their_budgets_over_a_burst(tmp_path):
    emu = start_emulator("usdm")
    budget, window = 10, 1.0

    async def body():
        import asyncio

        h = Harness(emu, "usdm", tmp_path / "journal.db", weight_limit=budget, order_limits=((4, 1.0),))
        om = h.open_manager()
        try:
            start = len(emu.records())
            # 15 reads of weight 1 (GET order) at once
            await asyncio.gather(*(h.venue.query_order(BTC, f"x.y.{i}") for i in range(15)))
            # 6 orders at once: each costs weight 1 and one ORDERS slot (4 per second)
            ref = h.last()
            snaps = await asyncio.gather(*(om.submit(OrderRequest(BTC, OrderSide.BUY, OrderType.LIMIT, Q,
                                                                  price=(ref - 100).quantize(Decimal("0.1"))),
                                                     strategy=f"b{i}", reference_price=ref) for i in range(6)))
            assert all(s.status is OrderStatus.ACCEPTED for s in snaps)
            recs = emu.records()[start:]
            assert all(r.status == 200 or r.code == -2013 for r in recs), [(r.status, r.code) for r in recs]
            slack = 0.1  # arrival jitter on loopback (the first requests also open connections)
            times = [r.t for r in recs]
            for t in times:
                assert sum(1 for u in times if t <= u < t + window - slack) <= budget
            posts = [r.t for r in recs if r.method == "POST"]
            for t in posts:
                assert sum(1 for u in posts if t <= u < t + 1.0 - slack) <= 4
            assert times[-1] - times[0] >= (len(times) / budget - 1) * window - slack
        finally:
            await h.close()

    try:
        run(body(), 30)
    finally:
        emu.stop()
