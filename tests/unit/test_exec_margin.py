"""Margin: liquidation prices pinned against hand arithmetic, bracket consistency, forced liquidation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.enums import Reason
from core.errors import ConfigError, RejectedError
from core.instrument import Instrument
from execution import load_venue_config
from execution.ledger import Ledger
from execution.margin import (
    BINANCE_BTCUSDT_BRACKETS,
    MarginConfig,
    MarginModel,
    brackets_from_rows,
)
from tests.conftest import REPO_ROOT

BTC = Instrument(symbol="BTCUSDT", tick_size=0.1, step_size=0.001, max_leverage=125)
ETH = Instrument(symbol="ETHUSDT", tick_size=0.01, step_size=0.001, max_leverage=100)
# two-tier table with a wide first tier: mmr 0.4 %, cum 0 up to 250,000; cum_1 = 250,000·0.001 = 250
SIMPLE = [(0, 250_000, 125, 0.004, 0), (250_000, 1_000_000, 100, 0.005, 250)]
ETH_TABLE = [(0, 1e9, 100, 0.005, 0)]
A = int(Reason.SIGNAL_A)


def _bracket_dicts(rows):
    return [{"notional_floor": r[0], "notional_cap": r[1], "max_leverage": r[2], "mmr": r[3], "cum": r[4]} for r in rows]


def _cfg(mode="isolated", table=SIMPLE, lev=10.0, **kw):
    return MarginConfig(mode=mode, default_leverage=lev, max_leverage_cap=125,
                        brackets={"BTCUSDT": _bracket_dicts(table), "ETHUSDT": _bracket_dicts(ETH_TABLE)}, **kw)


def _open(cfg, side, qty, price, fee=0.0, wallet=10_000.0, insts=(BTC,)):
    mm = MarginModel(cfg, list(insts))
    led = Ledger(list(insts), wallet, leverage=mm.leverages())
    led.apply_fill(0, 0, side, qty, price, fee, False, A)
    led.mark(0, price)
    return mm, led


def test_isolated_long_and_short_by_hand():
    mm, led = _open(_cfg(), 1, 1.0, 60_000.0)
    # WB = 60,000/10 = 6,000: LP = (6,000 − 0 + 0 + 0 − 1·1·60,000) / (1·0.004 − 1·1) = −54,000 / −0.996
    assert mm.liquidation_price(led, 0) == pytest.approx(54_000 / 0.996, rel=1e-14)  # 54,216.8674...
    mm, led = _open(_cfg(), -1, 1.0, 60_000.0)
    # short: (6,000 + 0 + 60,000) / (0.004 + 1) = 66,000 / 1.004
    assert mm.liquidation_price(led, 0) == pytest.approx(66_000 / 1.004, rel=1e-14)  # 65,737.0518...
    mm, led = _open(_cfg(lev=1.0), 1, 1.0, 60_000.0)
    assert mm.liquidation_price(led, 0) == 0.0  # 1× isolated long: (60,000 − 60,000)/… = 0 → never


def test_bracket_crossing_long_and_short():
    btc = [tuple(r) for r in BINANCE_BTCUSDT_BRACKETS]
    # long 1 @ 60,000 at 2×: WB 30,000. Entry notional 60,000 is tier 1 (0.5 %, cum 50) giving
    # (30,000 + 50 − 60,000)/(0.005 − 1) = 30,100.50; notional 30,100 is tier 0 → inconsistent.
    # Tier 0: (30,000 − 60,000)/(0.004 − 1) = 30,120.48; notional 30,120 < 50,000 → consistent.
    mm, led = _open(_cfg(table=btc, lev=2.0), 1, 1.0, 60_000.0)
    assert mm.liquidation_price(led, 0) == pytest.approx(30_000 / 0.996, rel=1e-14)
    # short 1 @ 40,000 at 2×: WB 20,000. Tier 0: 60,000/1.004 = 59,760.96 (notional ≥ 50,000: no);
    # tier 1: (20,000 + 50 + 40,000)/(0.005 + 1) = 60,050/1.005 = 59,751.24 (in [50k, 600k): yes)
    mm, led = _open(_cfg(table=btc, lev=2.0), -1, 1.0, 40_000.0)
    lp = mm.liquidation_price(led, 0)
    assert lp == pytest.approx(60_050 / 1.005, rel=1e-14)
    # at LP margin balance equals maintenance margin: 20,000 − (LP − 40,000) = LP·0.005 − 50
    assert 20_000 - (lp - 40_000) == pytest.approx(lp * 0.005 - 50, rel=1e-9)


def test_cross_with_another_position_by_hand():
    cfg = _cfg(mode="cross")
    mm = MarginModel(cfg, [BTC, ETH])
    led = Ledger([BTC, ETH], 10_000.0, leverage=mm.leverages())
    led.apply_fill(0, 0, 1, 1.0, 60_000.0, 0.0, False, A)
    led.apply_fill(1, 0, -1, 10.0, 3_000.0, 0.0, False, A)
    led.mark(0, 60_000.0)
    led.mark(1, 3_100.0)
    # other position (ETH short 10 @ 3,000 marked 3,100): MM = 31,000·0.005 = 155, UPNL = −1,000
    # LP = (10,000 − 155 − 1,000 + 0 − 60,000)/(0.004 − 1) = −51,155 / −0.996
    assert mm.liquidation_price(led, 0) == pytest.approx(51_155 / 0.996, rel=1e-14)  # 51,360.44
    # margin ratio = (60,000·0.004 + 155) / (10,000 + 0 − 1,000)
    assert mm.margin_ratio(led) == pytest.approx(395 / 9_000, rel=1e-14)


def test_forced_liquidation_on_crafted_bar_path():
    cfg = _cfg()  # isolated 10×, fee capped to the margin left (default)
    mm, led = _open(cfg, 1, 1.0, 60_000.0, fee=24.0)  # taker 0.04 % of 60,000
    lp = 54_000 / 0.996
    path = [(59_000, 61_000), (55_000, 58_000), (54_300, 55_500)]  # (low, high): none reaches LP
    for i, (lo, hi) in enumerate(path, start=1):
        assert mm.check_liquidation(led, 0, i, hi, lo, hi, bar=i) == (False, pytest.approx(float("nan"), nan_ok=True))
        assert led.position(0).qty == 1.0
    hit, price = mm.check_liquidation(led, 0, 4, 54_500.0, 54_000.0, 54_600.0, bar=4)
    assert hit and price == pytest.approx(lp, rel=1e-14)
    assert led.position(0).qty == 0.0
    # realized = LP − 60,000 = −5,783.13; fee = min(1.25 %·LP = 677.71, margin left 6,000 − 5,783.13 = 216.87)
    # wallet = 10,000 − 24 − 5,783.13 − 216.87 = 3,976: the trader loses exactly the isolated margin + entry fee
    assert led.wallet == pytest.approx(3_976.0, rel=1e-12)
    f = led.fills_frame().row(1, named=True)
    assert (f["reason"], f["order_id"], f["is_maker"], f["side"]) == (int(Reason.LIQUIDATION), -1, False, -1)
    assert f["fee"] == pytest.approx(lp * 0.004, rel=1e-12)
    t = led.trades_frame().row(0, named=True)
    assert t["exit_reason_name"] == "LIQUIDATION" and t["bars_held"] == 4
    assert t["net_pnl"] == pytest.approx(-6_024.0, rel=1e-12)


def test_liquidation_fee_uncapped_and_short_side():
    mm, led = _open(_cfg(cap_liquidation_fee_to_margin=False), 1, 1.0, 60_000.0)
    lp = 54_000 / 0.996
    assert mm.check_liquidation(led, 0, 1, 55_000.0, 54_216.0, 56_000.0)[0]
    assert led.wallet == pytest.approx(10_000 + (lp - 60_000) - 0.0125 * lp, rel=1e-12)  # 3,515.157
    mm, led = _open(_cfg(), -1, 1.0, 60_000.0)
    lp = 66_000 / 1.004
    assert not mm.check_liquidation(led, 0, 1, 61_000.0, 60_000.0, 65_737.0)[0]
    hit, price = mm.check_liquidation(led, 0, 2, 61_000.0, 60_000.0, 70_000.0)  # trades through LP
    assert hit and price == pytest.approx(lp, rel=1e-14)
    assert led.wallet == pytest.approx(10_000 - 6_000, rel=1e-12)


def test_gap_through_liquidation_fills_at_the_open():
    mm, led = _open(_cfg(), 1, 1.0, 60_000.0)  # LP 54,216.87
    hit, price = mm.check_liquidation(led, 0, 1, 50_000.0, 49_000.0, 51_000.0)
    # opened beyond LP: closed at the open, 50,000 (conservative, like a gapped stop); loss 10,000 exceeds
    # the 6,000 isolated margin, so the capped liquidation fee is 0
    assert hit and price == 50_000.0
    assert led.wallet == pytest.approx(0.0, abs=1e-9)
    assert led.fills_frame()["fee"].to_list() == [0.0, 0.0]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([1, -1]), st.floats(0.01, 500.0), st.floats(1_000.0, 200_000.0),
       st.sampled_from([1.0, 2.0, 3.0, 5.0, 10.0, 20.0]))
def test_isolated_lp_solves_margin_equals_maintenance(side, qty, price, lev):
    """At the returned LP, isolated margin + PnL = maintenance margin of the notional at LP (its own bracket)."""
    btc = [tuple(r) for r in BINANCE_BTCUSDT_BRACKETS]
    cfg = _cfg(table=btc, lev=lev)
    mm, led = _open(cfg, side, qty, price, wallet=1e12)
    lp = mm.liquidation_price(led, 0)
    if lp == 0.0:  # a long that cannot be liquidated: even at price 0 margin covers the loss
        assert side == 1 and qty * price / lev - qty * price >= -1e-6 * qty * price
        return
    balance = qty * price / lev + side * qty * (lp - price)
    assert balance == pytest.approx(mm.maintenance_margin(0, qty * lp), rel=1e-9, abs=1e-6)


def test_bad_configs_are_typed_errors():
    with pytest.raises(ConfigError, match=r"leverage\[BTCUSDT\] = 50"):
        MarginConfig(leverage={"BTCUSDT": 50}, max_leverage_cap=20)
    with pytest.raises(ConfigError, match="max_leverage 20"):
        MarginConfig(default_leverage=25, max_leverage_cap=50,
                     brackets={"BTCUSDT": _bracket_dicts(SIMPLE)}).leverage_for(
            Instrument(symbol="BTCUSDT", tick_size=0.1, step_size=0.001, max_leverage=20))
    with pytest.raises(ConfigError, match="no bracket table for ETHUSDT"):
        MarginConfig(brackets={"BTCUSDT": _bracket_dicts(SIMPLE)}).leverage_for(ETH)
    bad_cum = [(0, 50_000, 125, 0.004, 0), (50_000, 600_000, 100, 0.005, 60)]
    with pytest.raises(ConfigError, match=r"brackets.*bracket 1: cum 60.*expected 50"):
        MarginConfig(brackets={"BTCUSDT": _bracket_dicts(bad_cum)})
    gap = [(0, 50_000, 125, 0.004, 0), (60_000, 600_000, 100, 0.005, 110)]
    with pytest.raises(ConfigError, match="contiguous"):
        MarginConfig(default_brackets=_bracket_dicts(gap))
    too_high = [(0, 50_000, 125, 0.01, 0)]
    with pytest.raises(ConfigError, match="liquidated on entry"):
        MarginConfig(default_brackets=_bracket_dicts(too_high))
    with pytest.raises(ConfigError, match="liquidated on entry"):
        brackets_from_rows(too_high)
    assert len(brackets_from_rows(BINANCE_BTCUSDT_BRACKETS)) == 12
    falling = [(0, 50_000, 125, 0.005, 0), (50_000, 600_000, 100, 0.004, 0)]
    with pytest.raises(ConfigError, match="mmr 0.004 < previous"):
        MarginConfig(default_brackets=_bracket_dicts(falling))
    with pytest.raises(ConfigError, match="unknown key"):
        MarginConfig(liquidation_fee=0.01)
    mm, led = _open(_cfg(), 1, 1.0, 60_000.0)
    with pytest.raises(RejectedError, match="bar_low"):
        mm.check_liquidation(led, 0, 1, 1.0, float("nan"), 1.0)


def test_shipped_venue_yaml_loads_with_consistent_brackets():
    venue = load_venue_config(REPO_ROOT / "configs" / "venues" / "binance_usdm.yaml")
    assert venue.fees.maker_rate == 0.0002 and venue.fees.taker_rate == 0.0004
    table = venue.margin.brackets_for(BTC)
    assert [(b.notional_floor, b.notional_cap, b.max_leverage, b.mmr, b.cum) for b in table] == \
        [tuple(float(x) for x in r) for r in BINANCE_BTCUSDT_BRACKETS]
    assert venue.margin.liquidation_fee_rate == 0.0125
    assert venue.funding.interval == 8 * 3_600_000_000_000
