"""OrderManager end to end through CcxtVenue and the REAL async ccxt client against the emulator
(spot and USD-M): every order type through journal, state machine and fills; local rejects before
the venue; the venue's own rejects, typed with Binance's code."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import pytest

from emulator.testing import first_trade_index
from execution.orders import (
    Liquidity,
    OrderRejected,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    RejectReason,
    TimeInForce,
)
from execution.reconcile import Reconciler
from execution.venue import VenueRejectedError
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
TICK = Decimal("0.1")
Q = Decimal("0.010")


@pytest.fixture(params=["spot", "usdm"])
def market(request):
    return request.param


@pytest.fixture
def emu(market):
    e = start_emulator(market)
    yield e
    e.stop()


def _tick(x: float, up: bool) -> Decimal:
    return (Decimal(repr(x)) / TICK).to_integral_value(ROUND_CEILING if up else ROUND_FLOOR) * TICK


def _future(emu, n=400):
    prices = [emu.next_trade(BTC, k)[0] for k in range(n)]
    return min(prices), max(prices)


async def _advance_until_done(h: Harness, cids: list[str], max_trades: int = 400) -> None:
    """Move the tape until every order is terminal at the venue, syncing the journal as we go."""
    for _ in range(max_trades // 20):
        h.emu.advance_trades(BTC, 20)
        for cid in cids:
            await h.om.sync_order(cid)
        if all(h.om.get(c).is_terminal for c in cids):
            return


def test_every_order_type_end_to_end(emu, market, tmp_path):
    async def body():
        h = Harness(emu, market, tmp_path / "journal.db")
        om = h.open_manager()
        try:
            last = float(emu.engine.last_price(BTC))
            lo, _ = _future(emu)
            k_lo = first_trade_index(emu, BTC, lambda p: p < last - (last - lo) / 2)
            assert k_lo < 400
            below = _tick(last - (last - lo) / 2, up=False)  # a trade goes below this in the window
            ref = Decimal(repr(last))
            reqs = {
                "market": OrderRequest(BTC, OrderSide.BUY, OrderType.MARKET, Q),
                "limit": OrderRequest(BTC, OrderSide.BUY, OrderType.LIMIT, Q, price=below + 3 * TICK),
                "post_only": OrderRequest(BTC, OrderSide.BUY, OrderType.LIMIT, Q, price=below + 2 * TICK,
                                          time_in_force=TimeInForce.POST_ONLY),
                "stop_market": OrderRequest(BTC, OrderSide.SELL, OrderType.STOP_MARKET, Q, stop_price=below),
                "stop_limit": OrderRequest(BTC, OrderSide.SELL, OrderType.STOP_LIMIT, Q, stop_price=below,
                                           price=below - 200 * TICK),
                "take_profit_market": OrderRequest(BTC, OrderSide.BUY, OrderType.TAKE_PROFIT_MARKET, Q,
                                                   stop_price=below),
                "take_profit_limit": OrderRequest(BTC, OrderSide.BUY, OrderType.TAKE_PROFIT_LIMIT, Q,
                                                  stop_price=below, price=below + 200 * TICK),
            }
            snaps = {}
            for name, req in reqs.items():
                snaps[name] = await om.submit(req, strategy="flow", reference_price=ref)
                assert snaps[name].status is OrderStatus.ACCEPTED, (name, snaps[name])
                assert snaps[name].venue_order_id is not None
            if market == "usdm":  # conditional orders live in the algo id space
                algo_cids = {r.params.get("clientAlgoId") for r in emu.records("algoOrder") if r.method == "POST"}
                assert {snaps[n].client_order_id for n in snaps if "stop" in n or "take" in n} == algo_cids
            ioc = await om.submit(OrderRequest(BTC, OrderSide.BUY, OrderType.LIMIT, Q, price=_tick(lo - 500, False),
                                               time_in_force=TimeInForce.IOC), strategy="flow", reference_price=ref)
            assert ioc.status is OrderStatus.EXPIRED and not ioc.fills
            cancel_me = await om.submit(OrderRequest(BTC, OrderSide.BUY, OrderType.LIMIT, Q,
                                                     price=_tick(lo - 500, False)), strategy="flow",
                                        reference_price=ref)
            canceled = await om.cancel(cancel_me.client_order_id)
            assert canceled.status is OrderStatus.CANCELED
            await _advance_until_done(h, [s.client_order_id for s in snaps.values()])
            for name, s in snaps.items():
                s = om.get(s.client_order_id)
                assert s.status is OrderStatus.FILLED, (name, s.status, s.reason)
                assert s.filled_qty == Q and sum(f.qty for f in s.fills) == Q
                assert [t.to_status for t in s.history][:3] == [OrderStatus.SUBMITTED, OrderStatus.ACCEPTED,
                                                                s.history[2].to_status]
            assert om.get(snaps["post_only"].client_order_id).fills[0].liquidity is Liquidity.MAKER
            assert om.get(snaps["market"].client_order_id).fills[0].liquidity is Liquidity.TAKER
            # a second sync and a reconcile pass change nothing
            n_records = len(list(om.journal._store.records()))
            for s in snaps.values():
                await om.sync_order(s.client_order_id)
            report = await Reconciler(om, [BTC, ETH], fills_since_ms=0, baseline=spot_baseline(market)).run_once()
            assert report.clean, report
            assert len(list(om.journal._store.records())) == n_records
            assert_agreement(h, spot_baseline(market), intended=len(snaps) + 2)
        finally:
            await h.close()

    run(body(), 45)


def test_local_rejects_never_reach_the_venue(emu, market, tmp_path):
    async def body():
        h = Harness(emu, market, tmp_path / "journal.db")
        om = h.open_manager()
        try:
            ref = h.last()
            before = len(emu.records())
            cases = [
                (OrderRequest(BTC, OrderSide.BUY, OrderType.LIMIT, Decimal("0.0004"), price=Decimal("30000.0")),
                 RejectReason.QTY_OFF_STEP, None),
                (OrderRequest(BTC, OrderSide.BUY, OrderType.LIMIT, Decimal("0.0004"), price=Decimal("30000.0")),
                 RejectReason.QTY_BELOW_MIN, "round"),
                (OrderRequest(BTC, OrderSide.BUY, OrderType.LIMIT, Decimal("0.001"), price=Decimal("3000.0")),
                 RejectReason.NOTIONAL_BELOW_MIN, None),
                (OrderRequest(BTC, OrderSide.BUY, OrderType.LIMIT, Q, price=Decimal("30000.05")),
                 RejectReason.PRICE_OFF_TICK, None),
                (OrderRequest("DOGEUSDT", OrderSide.BUY, OrderType.LIMIT, Q, price=Decimal("0.1")),
                 RejectReason.UNKNOWN_SYMBOL, None),
                (OrderRequest(BTC, OrderSide.BUY, OrderType.LIMIT, Decimal("1.000"), price=Decimal("30000.0")),
                 RejectReason.INSUFFICIENT_BALANCE, Decimal(100)),
            ]
            for req, reason, available in cases:
                kw = {"round_qty": True} if available == "round" else {"available": available}
                with pytest.raises(OrderRejected) as err:
                    await om.submit(req, strategy="flow", reference_price=ref, **kw)
                assert err.value.reason is reason
            assert len(emu.records()) == before  # nothing was sent
            assert len(om.journal) == 0  # nothing journaled
        finally:
            await h.close()

    run(body(), 20)


def test_venue_rejects_are_typed_with_binance_codes(emu, market, tmp_path):
    async def body():
        h = Harness(emu, market, tmp_path / "journal.db")
        om = h.open_manager()
        try:
            last = h.last()
            # post-only that would take: validation cannot know, the venue refuses it
            crossing = (last / TICK).to_integral_value(ROUND_CEILING) * TICK + 50 * TICK
            with pytest.raises(VenueRejectedError) as err:
                await om.submit(OrderRequest(BTC, OrderSide.BUY, OrderType.LIMIT, Q, price=crossing,
                                             time_in_force=TimeInForce.POST_ONLY), strategy="flow",
                                reference_price=last)
            expected = -2010 if market == "spot" else -5022
            assert err.value.code == expected, err.value
            snap = om.get(err.value.client_order_id)
            assert snap.status is OrderStatus.REJECTED and str(expected) in snap.reason
            # balance only the venue knows (available=None skips the local check)
            big = Decimal("50.000") if market == "spot" else Decimal("90.000")
            with pytest.raises(VenueRejectedError) as err:
                await om.submit(OrderRequest(BTC, OrderSide.SELL if market == "spot" else OrderSide.BUY,
                                             OrderType.LIMIT, big, price=(last * 2 if market == "spot"
                                                                          else last / 2).quantize(TICK)),
                                strategy="flow", reference_price=last)
            assert err.value.code == (-2010 if market == "spot" else -2019), err.value
            assert "insufficient" in err.value.venue_message.lower()
            if market == "usdm":  # reduce-only without a position
                with pytest.raises(VenueRejectedError) as err:
                    await om.submit(OrderRequest(BTC, OrderSide.SELL, OrderType.MARKET, Q, reduce_only=True),
                                    strategy="flow", reference_price=last)
                assert err.value.code == -2022
            assert all(s.status is OrderStatus.REJECTED for s in om.orders())
            assert emu.engine.accounts and not [o for o in emu.engine.accounts["test-key"].orders.values()]
            assert_agreement(h, spot_baseline(market), intended=0)
        finally:
            await h.close()

    run(body(), 20)
