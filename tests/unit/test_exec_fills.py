"""Fees and the bar fill model: exact prices, latency, participation, limit trade-through, stops."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import ConfigError, RejectedError
from core.instrument import Instrument
from execution.fees import FeeConfig, FeeModel, fee_nb
from execution.fill_model import (
    PLACE_INVALID,
    PLACE_OK,
    PLACE_WOULD_CROSS,
    FillModel,
    FillModelConfig,
    fillable_qty_nb,
    instrument_row,
    round_qty_down_nb,
)

BTC = Instrument(symbol="BTCUSDT", tick_size=0.1, step_size=0.001)
S = 1_000_000_000


# --- fees ---------------------------------------------------------------------------------------
def test_fee_defaults_and_rates():
    p = FeeConfig().to_params()
    assert fee_nb(60_000.0, False, p) == pytest.approx(24.0, rel=1e-15)  # 60,000 × 0.0004
    assert fee_nb(60_000.0, True, p) == pytest.approx(12.0, rel=1e-15)  # 60,000 × 0.0002
    assert fee_nb(-60_000.0, True, p) == pytest.approx(12.0, rel=1e-15)  # sign of notional ignored
    rebate = FeeModel(FeeConfig(maker_rate=-0.0001, taker_rate=0.0005))
    assert rebate.fee(10_000, True) == pytest.approx(-1.0, rel=1e-15)
    assert rebate.fee(10_000, False) == pytest.approx(5.0, rel=1e-15)


def test_fee_bad_inputs():
    with pytest.raises(ConfigError, match="taker_rate"):
        FeeConfig(taker_rate=-0.001)
    with pytest.raises(ConfigError, match="unknown key"):
        FeeConfig(taker=0.001)
    with pytest.raises(RejectedError, match="finite"):
        FeeModel().fee(float("nan"), True)


# --- market orders ------------------------------------------------------------------------------
def test_market_fill_price_slippage_and_impact():
    fm = FillModel()  # 1 bp fixed, impact_coef 1
    # buy 2 @ open 50,000 with |impact| 0.5: 50,000·1e-4 = 5, 1·2·0.5 = 1 → 50,006
    assert fm.market_fill_price(1, 2.0, 50_000.0, -0.5) == pytest.approx(50_006.0, rel=1e-15)
    assert fm.market_fill_price(-1, 2.0, 50_000.0, -0.5) == pytest.approx(49_994.0, rel=1e-15)
    fm2 = FillModel(FillModelConfig(slippage_bps=2.5, impact_coef=3.0))
    # 2.5e-4·40,000 = 10; 3·0.25·0.8 = 0.6
    assert fm2.market_fill_price(1, 0.25, 40_000.0, 0.8) == pytest.approx(40_010.6, rel=1e-15)
    assert FillModel(FillModelConfig(slippage_bps=0, impact_coef=0)).market_fill_price(1, 5, 123.4, 9.0) == 123.4


def test_latency_selects_bar():
    ts_open = np.arange(5, dtype=np.int64) * 60 * S  # bars open at 0, 60 s, 120 s, ...
    decision_ts = 60 * S - 1_000_000  # bar 0 closes at 59.999 s
    assert FillModel().first_fill_bar(ts_open, 0, decision_ts) == 1  # latency 0 → next bar
    assert FillModel(FillModelConfig(latency_ns=500_000_000)).first_fill_bar(ts_open, 0, decision_ts) == 2
    # 59.999 + 60.001 = 120.000 exactly: a bar opening exactly at the earliest time fills
    assert FillModel(FillModelConfig(latency_ns=60_001_000_000)).first_fill_bar(ts_open, 0, decision_ts) == 2
    assert FillModel(FillModelConfig(latency_ns=60_002_000_000)).first_fill_bar(ts_open, 0, decision_ts) == 3
    assert FillModel(FillModelConfig(latency_ns=600 * S)).first_fill_bar(ts_open, 0, decision_ts) == -1
    # trade bars: the next bar may open at the same ns as the decision bar's last trade
    same = np.array([0, 10, 10, 20], dtype=np.int64)
    assert FillModel().first_fill_bar(same, 1, 10) == 2
    assert FillModel().first_fill_bar(same, 3, 20) == -1


def test_participation_splits_order_over_bars():
    fm = FillModel()  # 10 % of volume per bar
    remaining, fills = 10.0, []
    for vol in (30.0, 50.0, 200.0, 500.0):
        if remaining == 0.0:
            break
        q = fm.fillable_qty(BTC, remaining, vol)
        if q > 0:
            fills.append(q)
            remaining = round(remaining - q, 9)
    assert fills == [3.0, 5.0, 2.0]
    assert remaining == 0.0
    assert fm.fillable_qty(BTC, 10.0, 33.33333) == 3.333  # cap rounded down to the 0.001 step
    assert fm.fillable_qty(BTC, 10.0, 0.005) == 0.0  # below one step: nothing this bar
    big = Instrument(symbol="XUSDT", tick_size=0.01, step_size=1.0, contract_size=10.0)
    assert fm.fillable_qty(big, 100.0, 1234.0) == 12.0  # 123.4 base units = 12.34 contracts → 12


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([1e-8, 0.00001, 0.001, 0.005, 0.01, 0.1, 0.5, 1.0, 5.0, 100.0]),
       st.floats(min_value=0.0, max_value=1e6, allow_nan=False))
def test_round_qty_down_matches_instrument(step, qty):
    inst = Instrument(symbol="X", tick_size=0.01, step_size=step)
    row = instrument_row(inst)
    assert round_qty_down_nb(qty, row) == inst.round_qty_down(qty)
    assert round_qty_down_nb(-qty, row) == inst.round_qty_down(-qty)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10_000_000), st.floats(0.0, 1e7, allow_nan=False), st.floats(0.01, 1.0))
def test_fillable_never_exceeds_remaining_or_cap(rem_units, vol, part):
    params = FillModelConfig(participation_rate=part).to_params()
    row = instrument_row(BTC)
    remaining = rem_units * 0.001
    q = fillable_qty_nb(params, row, remaining, vol)
    assert 0.0 <= q <= remaining + 1e-12
    assert q <= part * vol + 1e-9
    assert q == BTC.round_qty_down(q)


def test_market_bad_inputs():
    fm = FillModel()
    with pytest.raises(RejectedError, match="qty"):
        fm.market_fill_price(1, -1.0, 100.0, 0.0)
    with pytest.raises(RejectedError, match="bar_open"):
        fm.market_fill_price(1, 1.0, float("nan"), 0.0)
    with pytest.raises(RejectedError, match="side"):
        fm.market_fill_price(0, 1.0, 100.0, 0.0)
    with pytest.raises(RejectedError, match="bar_volume"):
        fm.fillable_qty(BTC, 1.0, -5.0)
    with pytest.raises(RejectedError, match="decision_bar"):
        fm.first_fill_bar(np.zeros(3, dtype=np.int64), 3, 0)
    with pytest.raises(ConfigError, match="participation_rate"):
        FillModelConfig(participation_rate=0.0)
    with pytest.raises(ConfigError, match="latency_ns"):
        FillModelConfig(latency_ns=-1)


# --- limit orders -------------------------------------------------------------------------------
def test_limit_needs_trade_through_not_touch():
    fm = FillModel()
    assert fm.limit_fill(1, 100.0, bar_low=100.0, bar_high=101.0) == (False, 0)  # touch only
    assert fm.limit_fill(1, 100.0, bar_low=99.99, bar_high=101.0) == (True, 1)
    assert fm.limit_fill(-1, 100.0, bar_low=99.0, bar_high=100.0) == (False, 0)
    assert fm.limit_fill(-1, 100.0, bar_low=99.0, bar_high=100.01) == (True, 1)


def test_limit_queue_delay_counts_bars_through():
    fm = FillModel(FillModelConfig(queue_delay_bars=2))
    lows = [99.0, 100.5, 99.5, 98.0, 97.0]  # through, not, through, through (3rd → fills), ...
    n, filled_at = 0, None
    for i, low in enumerate(lows):
        filled, n = fm.limit_fill(1, 100.0, low, 101.0, n)
        if filled:
            filled_at = i
            break
    assert filled_at == 3 and n == 3


def test_post_only_placement():
    fm = FillModel()
    assert fm.check_limit_placement(1, 100.0, 100.0) == PLACE_WOULD_CROSS  # at the last price: would take
    assert fm.check_limit_placement(1, 100.5, 100.0) == PLACE_WOULD_CROSS
    assert fm.check_limit_placement(1, 99.9, 100.0) == PLACE_OK
    assert fm.check_limit_placement(-1, 100.0, 100.0) == PLACE_WOULD_CROSS
    assert fm.check_limit_placement(-1, 100.1, 100.0) == PLACE_OK
    assert fm.check_limit_placement(1, float("nan"), 100.0) == PLACE_INVALID
    assert fm.check_limit_placement(1, -5.0, 100.0) == PLACE_INVALID


# --- stops --------------------------------------------------------------------------------------
def test_stop_trigger_and_gap_fill():
    fm = FillModel()  # slippage: 1e-4·ref + 1·qty·|impact|
    # long's stop (sell) at 95, bar 97/94: fills at 95 − (0.0095 + 1·1·0.01) = 94.9805
    trig, px = fm.stop_fill(-1, 95.0, 1.0, bar_open=97.0, bar_low=94.0, bar_high=98.0, price_impact=0.01)
    assert trig and px == pytest.approx(94.9805, rel=1e-14)
    # gap through: open 93 ≤ 95 → reference 93: 93 − 0.0093 − 0.01 = 92.9807
    trig, px = fm.stop_fill(-1, 95.0, 1.0, bar_open=93.0, bar_low=92.0, bar_high=94.0, price_impact=-0.01)
    assert trig and px == pytest.approx(92.9807, rel=1e-14)
    # low exactly at the level triggers; one tick above does not
    assert fm.stop_fill(-1, 95.0, 1.0, 97.0, 95.0, 98.0)[0]
    trig, px = fm.stop_fill(-1, 95.0, 1.0, 97.0, 95.01, 98.0)
    assert not trig and np.isnan(px)
    # short's stop (buy) at 105: gap up to open 107 → 107 + 0.0107 + 2·0.005 = 107.0207
    trig, px = fm.stop_fill(1, 105.0, 2.0, bar_open=107.0, bar_low=106.0, bar_high=108.0, price_impact=0.005)
    assert trig and px == pytest.approx(107.0207, rel=1e-14)
    trig, px = fm.stop_fill(1, 105.0, 2.0, bar_open=103.0, bar_low=102.0, bar_high=105.0, price_impact=0.0)
    assert trig and px == pytest.approx(105.0105, rel=1e-14)
    assert not fm.stop_fill(1, 105.0, 2.0, 103.0, 102.0, 104.99)[0]
