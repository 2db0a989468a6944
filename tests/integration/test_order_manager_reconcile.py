"""Reconciler against the emulator (spot and USD-M): venue orders in our namespace claimed, foreign
ones flagged; fills missing from the journal applied once; position differences reported with
their amounts."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from execution.orders import Order, OrderRequest, OrderSide, OrderStatus, OrderType
from execution.reconcile import (
    FillApplied,
    ForeignOrderFlagged,
    OrderClaimed,
    PositionMismatch,
    Reconciler,
    UnattributedFill,
)
from tests.support.order_manager import (
    BTC,
    ETH,
    Harness,
    assert_agreement,
    run,
    spot_baseline,
    start_emulator,
)

pytestmark = [pytest.mark.network_local, pytest.mark.timeout(60)]
Q = Decimal("0.010")


def _order(cid: str, otype: OrderType, side: OrderSide, price: Decimal | None = None) -> Order:
    return Order(client_order_id=cid, strategy_id="elsewhere", symbol=BTC, side=side, type=otype, qty=Q, price=price,
                 stop_price=None, time_in_force=None if price is None else "GTC", reduce_only=False,
                 ts_created=time.time_ns())


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_claim_flag_missing_fills_and_position_differences(market, tmp_path):
    emu = start_emulator(market)

    async def body():
        h = Harness(emu, market, tmp_path / "journal.db")
        om = h.open_manager()
        other = h.make_venue()  # another process on the same account (an earlier run, a person)
        try:
            last = h.last()
            below = (last - 30).quantize(Decimal("0.1"))
            mine = await om.submit(OrderRequest(BTC, OrderSide.BUY, OrderType.MARKET, Q), strategy="rec",
                                   reference_price=last)
            # an earlier run of this account (tag "t"), journal lost: a resting order in our namespace
            await other.submit(_order("t0000000.rec.7", OrderType.LIMIT, OrderSide.BUY, below))
            # a person's orders: one resting, one market that fills (moves the position behind our back)
            await other.submit(_order("manual-limit", OrderType.LIMIT, OrderSide.BUY, below - 50))
            await other.submit(_order("manual-market", OrderType.MARKET, OrderSide.BUY))
            emu.advance_trades(BTC, 3)
            rec = Reconciler(om, [BTC, ETH], fills_since_ms=0, account_tag="t", baseline=spot_baseline(market))
            report = await rec.run_once()
            claimed = report.of(OrderClaimed)
            assert [(c.client_order_id, c.status) for c in claimed] == [("t0000000.rec.7", OrderStatus.ACCEPTED)]
            assert om.get("t0000000.rec.7").order.price == below
            assert [f.client_order_id for f in report.of(ForeignOrderFlagged)] == ["manual-limit"]
            unattributed = report.of(UnattributedFill)
            assert unattributed and sum(u.qty for u in unattributed) == Q
            mismatch = report.of(PositionMismatch)
            assert len(mismatch) == 1 and mismatch[0].symbol == BTC
            fee = sum((f.fee for f in om.get(mine.client_order_id).fills if f.fee_asset == "BTC"), Decimal(0))
            assert mismatch[0].difference + fee == Q or mismatch[0].difference == Q, mismatch[0]
            assert mismatch[0].venue_qty - mismatch[0].journal_qty == mismatch[0].difference
            assert om.get(mine.client_order_id).status is OrderStatus.FILLED
            # the claimed order is ours now: it fills and is synced like any other
            from emulator.testing import first_trade_index
            k = first_trade_index(emu, BTC, lambda p: p < float(below))
            emu.advance_trades(BTC, k + 3)
            report = await rec.run_once()
            assert om.get("t0000000.rec.7").status is OrderStatus.FILLED
            again = await rec.run_once()
            assert not again.of(UnattributedFill) and not again.of(OrderClaimed) and not again.of(FillApplied)
            assert len(again.of(PositionMismatch)) == 1  # the person's trade stays a reported difference
        finally:
            await other.close()
            await h.close()

    try:
        run(body(), 30)
    finally:
        emu.stop()


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_missing_fills_applied_once_from_the_trade_list(market, tmp_path):
    """Trades the journal missed (e.g. stream gap) come from fills-since and are applied once, even
    if the order's own sync would not run (here: a partially filled order's trades)."""
    emu = start_emulator(market)

    async def body():
        h = Harness(emu, market, tmp_path / "journal.db")
        om = h.open_manager()
        try:
            big = Decimal("3.000") if market == "usdm" else Decimal("0.900")
            snap = await om.submit(OrderRequest(BTC, OrderSide.SELL, OrderType.MARKET, big), strategy="rec",
                                   reference_price=h.last())
            emu.advance_trades(BTC, 1)
            rec = Reconciler(om, [BTC, ETH], fills_since_ms=0, baseline=spot_baseline(market), check_positions=False)
            rec._settle_journal = _skip  # only the trade list this time
            report = await rec.run_once()
            applied = report.of(FillApplied)
            assert applied and all(a.client_order_id == snap.client_order_id for a in applied)
            assert (await rec.run_once()).events == []
            emu.advance_trades(BTC, 40)
            del rec._settle_journal
            await rec.run_once()
            assert om.get(snap.client_order_id).status is OrderStatus.FILLED
            assert_agreement(h, spot_baseline(market), intended=1)
        finally:
            await h.close()

    try:
        run(body(), 30)
    finally:
        emu.stop()


async def _skip(report):
    return None
