"""Ledger: hand-computed open/add/reduce/flip/close, journals, equity identity (hypothesis)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.enums import Market, Reason
from core.errors import ConfigError, RejectedError
from core.instrument import Instrument
from execution.funding import apply_funding_nb
from execution.ledger import (
    ACC_FILLS_DROPPED,
    EquityCurve,
    Ledger,
    apply_fill_nb,
    fills_frame,
    new_account_state,
    new_fills_journal,
    new_position_state,
    new_trades_journal,
)

BTC = Instrument(symbol="BTCUSDT", tick_size=0.1, step_size=0.001, max_leverage=125)
ETH = Instrument(symbol="ETHUSDT", tick_size=0.01, step_size=0.001)
SPOT = Instrument(symbol="BTCUSDT_SPOT", market=Market.SPOT, tick_size=0.01, step_size=0.00001, max_leverage=1)
H = 3_600_000_000_000
A = int(Reason.SIGNAL_A)


def test_hand_sequence_open_add_reduce_flip_close():
    led = Ledger([BTC], 10_000.0, leverage=[10.0])
    # 1 open long 1 @ 100, fee 0.04
    assert led.apply_fill(0, 1 * H, 1, 1.0, 100.0, 0.04, False, A, signal_id=7, order_id=1, bar=0) == 0.0
    p = led.position(0)
    assert (p.qty, p.avg_price, p.isolated_margin, p.entry_ts) == (1.0, 100.0, 10.0, 1 * H)
    # 2 add 1 @ 110 → avg (100 + 110)/2 = 105, isolated margin 10 + 11
    assert led.apply_fill(0, 2 * H, 1, 1.0, 110.0, 0.044, False, A, 7, 2, bar=1) == 0.0
    p = led.position(0)
    assert (p.qty, p.avg_price) == (2.0, 105.0) and p.isolated_margin == pytest.approx(21.0, rel=1e-15)
    u, eq = led.mark(0, 120.0)  # 2·(120 − 105) = 30
    assert u == pytest.approx(30.0, rel=1e-15)
    assert eq == pytest.approx(10_000 - 0.084 + 30.0, rel=1e-15)
    # 3 partial close 0.5 @ 120 → realized 0.5·(120 − 105) = 7.5; margin 21·(1 − 0.5/2) = 15.75
    r = led.apply_fill(0, 3 * H, -1, 0.5, 120.0, 0.024, True, int(Reason.TAKE_PROFIT_TRAIL), 7, 3, bar=3)
    assert r == pytest.approx(7.5, rel=1e-15)
    p = led.position(0)
    assert (p.qty, p.avg_price) == (1.5, 105.0) and p.isolated_margin == pytest.approx(15.75, rel=1e-15)
    assert p.unrealized_pnl == pytest.approx(1.5 * 15.0, rel=1e-15)  # re-marked at the last mark
    # 4 flip: sell 3 @ 90 → close 1.5: 1.5·(90 − 105) = −22.5, then short 1.5 @ 90; fee 0.108 split 0.054/0.054
    r = led.apply_fill(0, 5 * H, -1, 3.0, 90.0, 0.108, False, int(Reason.SIGNAL_B), 8, 4, bar=5)
    assert r == pytest.approx(-22.5, rel=1e-15)
    p = led.position(0)
    assert (p.qty, p.avg_price, p.entry_ts) == (-1.5, 90.0, 5 * H)
    assert p.isolated_margin == pytest.approx(13.5, rel=1e-15)
    # 5 close the short: buy 1.5 @ 80 → −1.5·(80 − 90) = +15
    r = led.apply_fill(0, 8 * H, 1, 1.5, 80.0, 0.048, False, int(Reason.STOP_L1), 8, 5, bar=8)
    assert r == pytest.approx(15.0, rel=1e-15)
    p = led.position(0)
    assert (p.qty, p.avg_price, p.unrealized_pnl, p.isolated_margin) == (0.0, 0.0, 0.0, 0.0)
    fees = 0.04 + 0.044 + 0.024 + 0.108 + 0.048
    assert p.realized_pnl == pytest.approx(0.0, abs=1e-12)  # 7.5 − 22.5 + 15
    assert p.fees == pytest.approx(fees, rel=1e-14)
    assert led.wallet == pytest.approx(10_000 - fees, rel=1e-15)
    assert led.equity == led.wallet

    t = led.trades_frame()
    assert t.height == 2
    r0, r1 = t.row(0, named=True), t.row(1, named=True)
    # trip 1: long, entered 2 @ avg 105, exited 0.5 @ 120 + 1.5 @ 90 → (60 + 135)/2 = 97.5
    assert (r0["side"], r0["qty"], r0["entry_ts"], r0["exit_ts"], r0["bars_held"]) == (1, 2.0, 1 * H, 5 * H, 5)
    assert r0["entry_price"] == pytest.approx(105.0, rel=1e-15)
    assert r0["exit_price"] == pytest.approx(97.5, rel=1e-15)
    assert r0["gross_pnl"] == pytest.approx(-15.0, rel=1e-14)
    assert r0["fees"] == pytest.approx(0.04 + 0.044 + 0.024 + 0.054, rel=1e-14)
    assert r0["net_pnl"] == pytest.approx(-15.162, rel=1e-14)
    assert (r0["entry_reason_name"], r0["exit_reason_name"], r0["signal_id"]) == ("SIGNAL_A", "SIGNAL_B", 7)
    # trip 2: short 1.5 @ 90 → 80
    assert (r1["side"], r1["qty"], r1["entry_ts"], r1["exit_ts"], r1["bars_held"]) == (-1, 1.5, 5 * H, 8 * H, 3)
    assert (r1["entry_price"], r1["exit_price"]) == (90.0, 80.0)
    assert r1["gross_pnl"] == pytest.approx(15.0, rel=1e-15)
    assert r1["fees"] == pytest.approx(0.054 + 0.048, rel=1e-14)
    assert r1["net_pnl"] == pytest.approx(14.898, rel=1e-14)
    assert (r1["entry_reason_name"], r1["exit_reason_name"], r1["signal_id"]) == ("SIGNAL_B", "STOP_L1", 8)

    f = led.fills_frame()
    assert f.height == 5
    assert f["order_id"].to_list() == [1, 2, 3, 4, 5]
    assert f["side"].to_list() == [1, 1, -1, -1, 1]
    assert f["position_after"].to_list() == [1.0, 2.0, 1.5, -1.5, 0.0]
    assert f["is_maker"].to_list() == [False, False, True, False, False]
    assert f["reason_name"].to_list() == ["SIGNAL_A", "SIGNAL_A", "TAKE_PROFIT_TRAIL", "SIGNAL_B", "STOP_L1"]
    assert f["ts"].dtype == pl.Int64 and f["ts"].to_list() == [1 * H, 2 * H, 3 * H, 5 * H, 8 * H]
    assert f["symbol"].to_list() == ["BTCUSDT"] * 5


def test_contract_size_scales_pnl():
    inst = Instrument(symbol="XUSDT", tick_size=0.01, step_size=1.0, contract_size=10.0)
    led = Ledger([inst], 1_000.0)
    led.apply_fill(0, 1, 1, 3.0, 2.0, 0.0, False, A)
    assert led.mark(0, 2.5)[0] == pytest.approx(3 * 10 * 0.5, rel=1e-15)
    assert led.apply_fill(0, 2, -1, 3.0, 2.4, 0.0, False, A) == pytest.approx(12.0, rel=1e-14)


def test_spot_cannot_short_and_bad_fills_are_rejected():
    led = Ledger([SPOT], 1_000.0)
    led.apply_fill(0, 1, 1, 0.5, 100.0, 0.0, False, A)
    with pytest.raises(RejectedError, match="spot"):
        led.apply_fill(0, 2, -1, 0.6, 100.0, 0.0, False, A)
    assert led.apply_fill(0, 2, -1, 0.5, 110.0, 0.0, False, A) == pytest.approx(5.0, rel=1e-15)
    with pytest.raises(RejectedError, match="qty"):
        led.apply_fill(0, 3, 1, -1.0, 100.0, 0.0, False, A)
    with pytest.raises(RejectedError, match="price"):
        led.apply_fill(0, 3, 1, 1.0, float("nan"), 0.0, False, A)
    with pytest.raises(RejectedError, match="fee"):
        led.apply_fill(0, 3, 1, 1.0, 100.0, float("inf"), False, A)
    with pytest.raises(RejectedError, match="side"):
        led.apply_fill(0, 3, 2, 1.0, 100.0, 0.0, False, A)
    with pytest.raises(RejectedError, match="Reason"):
        led.apply_fill(0, 3, 1, 1.0, 100.0, 0.0, False, 999)
    with pytest.raises(RejectedError, match="unknown symbol"):
        led.apply_fill("DOGEUSDT", 3, 1, 1.0, 100.0, 0.0, False, A)
    with pytest.raises(RejectedError, match="initial_wallet"):
        Ledger([BTC], 0.0)
    with pytest.raises(ConfigError, match="leverage"):
        Ledger([SPOT], 1.0, leverage=[2.0])
    assert led.fills_frame().height == 2  # rejected fills left no trace


def test_journal_overflow_is_loud_and_ledger_grows():
    pos, pos_ts = new_position_state([BTC])
    acc = new_account_state(1_000.0)
    fills, fill_ts = new_fills_journal(2)
    trades, trade_ts = new_trades_journal(1)
    for i in range(3):
        apply_fill_nb(pos, pos_ts, acc, fills, fill_ts, trades, trade_ts, 0, np.int64(i), np.int64(i), 1.0, 1.0,
                      100.0, 0.0, False, float(A), 0.0, float(i))
    assert pos[0, 0] == 3.0 and acc[ACC_FILLS_DROPPED] == 1.0  # applied, counted as not journaled
    with pytest.raises(RejectedError, match="overflow"):
        fills_frame(fills, fill_ts, acc)
    led = Ledger([BTC], 1_000.0, fills_capacity=1, trades_capacity=1)
    for i in range(6):
        led.apply_fill(0, i, 1 if i % 2 == 0 else -1, 1.0, 100.0 + i, 0.0, False, A, order_id=i)
    assert led.fills_frame()["order_id"].to_list() == list(range(6))
    assert led.trades_frame().height == 3


def test_equity_curve_records_each_bar():
    led = Ledger([BTC, ETH], 1_000.0)
    curve = EquityCurve(3)
    led.apply_fill(0, 0, 1, 0.1, 100.0, 0.01, False, A)
    led.apply_fill(1, 0, -1, 2.0, 10.0, 0.02, False, A)
    for i, (pb, pe) in enumerate([(100.0, 10.0), (110.0, 9.0), (90.0, 12.0)]):
        led.mark(0, pb)
        led.mark(1, pe)
        curve.record(led, i * H)
    df = curve.frame()
    # bar 1: 0.1·10 + (−2)·(−1) = 3; bar 2: 0.1·(−10) + (−2)·2 = −5
    assert df["unrealized_pnl"].to_list() == pytest.approx([0.0, 3.0, -5.0], abs=1e-12)
    assert df["equity"].to_list() == pytest.approx([999.97, 1002.97, 994.97], rel=1e-14)
    assert df["gross_exposure"].to_list() == pytest.approx([30.0, 29.0, 33.0], rel=1e-14)
    assert df["net_exposure"].to_list() == pytest.approx([-10.0, -7.0, -15.0], rel=1e-14)
    with pytest.raises(RejectedError, match="full"):
        curve.record(led, 4 * H)


class RefLedger:
    """Plain-python average-cost reference for one symbol (independent of the kernels)."""

    def __init__(self):
        self.qty = 0.0
        self.avg = 0.0

    def fill(self, side, qty, price):
        q0 = self.qty
        if q0 == 0 or (q0 > 0) == (side > 0):
            self.avg = (abs(q0) * self.avg + qty * price) / (abs(q0) + qty)
            self.qty = q0 + side * qty
            return 0.0
        close = min(qty, abs(q0))
        pnl = (1 if q0 > 0 else -1) * close * (price - self.avg)
        rest = qty - close
        self.qty = q0 + side * qty
        if abs(self.qty) < 1e-9:
            self.qty, self.avg = 0.0, 0.0
        elif rest > 1e-12:
            self.avg = price
        return pnl


fill_st = st.tuples(st.integers(0, 1), st.sampled_from([1, -1]), st.integers(1, 3000),
                    st.floats(50.0, 150.0), st.floats(0.0, 0.001), st.floats(50.0, 150.0))


@settings(max_examples=150, deadline=None)
@given(st.lists(fill_st, min_size=1, max_size=40), st.floats(-0.001, 0.001))
def test_accounting_identity_random_sequences(seq, funding_rate):
    led = Ledger([BTC, ETH], 50_000.0, fills_capacity=4, trades_capacity=2)
    refs = [RefLedger(), RefLedger()]
    realized = fees = funding = 0.0
    signed = [0.0, 0.0]
    for k, (sym, side, units, price, fee_rate, mark) in enumerate(seq):
        qty = units * 0.001
        fee = qty * price * fee_rate
        r = led.apply_fill(sym, k, side, qty, price, fee, False, A, bar=k)
        assert r == pytest.approx(refs[sym].fill(side, qty, price), rel=1e-9, abs=1e-9)
        realized += r
        fees += fee
        signed[sym] += side * qty
        led.mark(sym, mark)
        if k % 3 == 0:  # a funding event on symbol sym: payment = qty · mark · rate, + = paid
            pay = apply_funding_nb(led.pos, led.acc, sym, funding_rate, mark)
            assert pay == pytest.approx(refs[sym].qty * mark * funding_rate, rel=1e-9, abs=1e-12)
            funding += pay
        upnl = sum(led.position(s).unrealized_pnl for s in (0, 1))
        expect = 50_000.0 + realized - fees - funding + upnl
        assert led.equity == pytest.approx(expect, rel=1e-9)
        for s in (0, 1):
            assert led.position(s).qty == pytest.approx(signed[s], abs=1e-9)
            assert led.position(s).qty == pytest.approx(refs[s].qty, abs=1e-9)
            if refs[s].qty != 0:
                assert led.position(s).avg_price == pytest.approx(refs[s].avg, rel=1e-9)
    # close everything
    closing = 0
    for s in (0, 1):
        q = led.position(s).qty
        if q != 0:
            closing += 1
            realized += led.apply_fill(s, 10_000, -1 if q > 0 else 1, abs(q), 100.0, 0.0, False,
                                       int(Reason.END_OF_DATA), bar=len(seq))
    assert [led.position(s).unrealized_pnl for s in (0, 1)] == [0.0, 0.0]
    assert [led.position(s).qty for s in (0, 1)] == [0.0, 0.0]
    t = led.trades_frame()
    assert t["gross_pnl"].sum() == pytest.approx(realized, rel=1e-9, abs=1e-9)
    assert t["net_pnl"].sum() == pytest.approx(realized - fees - funding, rel=1e-9, abs=1e-9)
    assert t["fees"].sum() == pytest.approx(fees, rel=1e-9, abs=1e-12)
    assert t["funding"].sum() == pytest.approx(funding, rel=1e-9, abs=1e-12)
    assert led.equity == pytest.approx(50_000.0 + realized - fees - funding, rel=1e-9)
    assert led.fills_frame().height == len(seq) + closing
