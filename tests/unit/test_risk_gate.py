"""The composed gate and RiskEngine: order of checks, multipliers, sizing composition, config."""

from __future__ import annotations

import math

import numpy as np
import pytest

import risk.gate as gate
import risk.sizing as sizing
from core.enums import Reason, TradingState as TS
from core.errors import ConfigError
from core.time import NS_PER_DAY, NS_PER_HOUR, NS_PER_MIN
from risk import RiskConfig, RiskEngine, Sizer, load_risk_config
from risk.kelly import SIGNAL_A, SIGNAL_B
from risk.state import new_state as new_sm_state
from tests.conftest import REPO_ROOT

D = 20_000 * NS_PER_DAY
FEE = 0.0005


def engine(**overrides):
    return RiskEngine(RiskConfig(**overrides))


def test_shipped_yaml_is_the_defaults_and_errors_name_keys(tmp_path):
    assert load_risk_config(REPO_ROOT / "configs" / "risk.yaml") == RiskConfig()
    p = tmp_path / "r.yaml"
    p.write_text("sizing:\n  max_loss_at_stop_pct: 0.05\nentry_throttle:\n  windw: 24h\n")
    with pytest.raises(ConfigError) as e:
        load_risk_config(p)
    msg = str(e.value)
    assert "sizing.max_loss_at_stop_pct" in msg and "entry_throttle.windw" in msg and "unknown key" in msg
    with pytest.raises(ConfigError, match="stop_atr_multiple"):
        RiskConfig(stops={"l1_atr": 2.0})
    with pytest.raises(ConfigError, match="consecutive_losses.pause"):
        RiskConfig(consecutive_losses={"pause": "4 hours"})
    assert RiskConfig().to_params().shape == (gate.N_PARAMS,)


def test_order_of_refusals():
    e = engine(liquidity={"window": 2})
    t = D + NS_PER_HOUR
    for i in range(3):
        assert e.on_bar(t + i * NS_PER_MIN, 10_000.0, 10.0) == TS.ACTIVE
    t = t + 3 * NS_PER_MIN
    assert e.pre_entry_check(t, 100.0, 2.0, FEE) == (True, 1.0, Reason.NONE)
    assert e.pre_entry_check(t, 100.0, 0.29, FEE) == (False, 0.0, Reason.FEE_HURDLE)
    e.on_entry(t)
    assert e.pre_entry_check(t + 1, 100.0, 0.29, FEE).reason == Reason.ENTRY_INTERVAL  # before the fee hurdle
    e.on_bar(t + 2, 10_000.0, 1.0)  # 1 < 0.3 * 10
    assert e.pre_entry_check(t + 3, 100.0, 2.0, FEE).reason == Reason.LIQUIDITY_PAUSE
    for i in range(8):
        e.on_trade_closed(t + 4 + i, -10.0, -0.01, SIGNAL_A, 10_000.0 - 10 * (i + 1))
    assert e.pre_entry_check(t + 20, 100.0, 2.0, FEE).reason == Reason.CONSECUTIVE_LOSSES_PAUSE
    assert e.on_trade_closed(t + 21, -300.0, -0.03, SIGNAL_B, 9_620.0) == Reason.DAILY_LOSS_LIMIT
    assert e.state == TS.HALTED
    assert e.pre_entry_check(t + 22, 100.0, 2.0, FEE).reason == Reason.STATE_NOT_ACTIVE
    a = e.arrays  # the daily limit is checked before the pause even with an ACTIVE state array
    allowed, mult, reason = gate.pre_entry_check_nb(a.params, a.daily, a.losses, a.drawdown, a.liquidity, a.entries,
                                                    new_sm_state(), t + 22, 100.0, 2.0, FEE)
    assert (allowed, mult, reason) == (False, 0.0, int(Reason.DAILY_LOSS_LIMIT))
    # next UTC day: ACTIVE again (NEW_DAY), pause long over, run of 9 losses -> half size
    assert e.on_bar(D + NS_PER_DAY, 9_620.0, 10.0) == TS.ACTIVE
    assert e.pre_entry_check(D + NS_PER_DAY, 100.0, 2.0, FEE) == (True, 0.5, Reason.CONSECUTIVE_LOSSES_HALF)
    assert [(c.to_state, c.reason) for c in e.state_changes()] == [(TS.HALTED, Reason.DAILY_LOSS_LIMIT),
                                                                  (TS.ACTIVE, Reason.NEW_DAY)]


def test_multipliers_compose_and_size_entry_matches_sizer():
    e = engine()
    t = D
    e.on_bar(t, 10_000.0, 1.0)
    for i in range(5):
        e.on_trade_closed(t + i, -1.0, -0.001, SIGNAL_A, 10_000.0 - (i + 1))
    e.on_bar(t + NS_PER_HOUR, 9_000.0, 1.0)  # 10% below the peak: throttle
    v = e.pre_entry_check(t + NS_PER_HOUR, 1_000.0, 100.0, FEE)
    assert v == (True, 0.125, Reason.DRAWDOWN_THROTTLE)
    qty, reason = e.size_entry(t + NS_PER_HOUR, SIGNAL_A, 1, 9_000.0, 1_000.0, 100.0, strength=1.2, taker_fee=FEE)
    # 9000 * 0.01 / 150 * 1.2 * 0.125 = 0.09; notional 90 < 450 cap
    assert qty == pytest.approx(0.09, rel=1e-14) and reason == Reason.DRAWDOWN_THROTTLE
    ref, ref_reason = Sizer().size(1, 9_000.0, 1_000.0, 100.0, strength=1.2, size_multiplier=0.125, taker_fee=FEE)
    assert qty == ref and ref_reason == Reason.NONE
    qty, reason = e.size_entry(t + NS_PER_HOUR, SIGNAL_A, 1, 9_000.0, 100.0, 2.0, regime_factor=3.0, taker_fee=FEE)
    assert reason == Reason.POSITION_CAP and qty == pytest.approx(4.5, rel=1e-14)


def test_kelly_non_positive_blocks_the_signal_only():
    e = engine()
    e.on_bar(D, 1e6, 1.0)
    for i in range(20):
        e.on_trade_closed(D + i, 1.0 if i % 5 == 0 else -1.0, 0.001 if i % 5 == 0 else -0.001, SIGNAL_B, 1e6)
    assert e.kelly_factor(SIGNAL_B) == (0.0, Reason.KELLY_NON_POSITIVE)
    t = D + NS_PER_DAY
    e.on_bar(t, 1e6, 1.0)
    assert e.size_entry(t, SIGNAL_B, -1, 1e6, 100.0, 20.0, taker_fee=FEE) == (0.0, Reason.KELLY_NON_POSITIVE)
    qty, reason = e.size_entry(t, SIGNAL_A, -1, 1e6, 100.0, 20.0, taker_fee=FEE)
    assert qty == pytest.approx(1e6 * 0.01 / 30.0, rel=1e-14) and reason == Reason.NONE
    assert e.size_entry(t, 7, -1, 1e6, 100.0, 20.0) == (0.0, Reason.INVALID_INPUT)


def test_invalid_trade_close_changes_nothing_and_flatten_paths():
    e = engine()
    e.on_bar(D, 10_000.0, 1.0)
    before = [x.copy() for x in e.arrays]
    for args in [(math.nan, 0.0, 0, 1.0), (1.0, math.inf, 0, 1.0), (1.0, 0.0, 3, 1.0), (1.0, 0.0, 0, math.nan)]:
        assert e.on_trade_closed(D + 1, *args) == Reason.INVALID_INPUT
    for x, y in zip(before, e.arrays):
        np.testing.assert_array_equal(x, y)
    assert e.on_bar(D + 2, 10_000.0, 1.0, margin_ratio=0.0, extreme=True) == TS.FLATTEN
    assert e.pre_entry_check(D + 2, 100.0, 2.0, FEE).reason == Reason.STATE_NOT_ACTIVE
    assert e.on_bar(D + 3, 10_000.0, 1.0) == TS.ACTIVE
    assert e.set_kill_switch(D + 4, True) == TS.FLATTEN
    assert e.on_bar(D + 5, 10_000.0, 1.0) == TS.FLATTEN
    assert e.set_kill_switch(D + 6, False) == TS.ACTIVE
    assert [c.reason for c in e.state_changes()] == [Reason.FLATTEN_REGIME, Reason.RECOVERED,
                                                     Reason.KILL_SWITCH, Reason.RECOVERED]


def test_wrappers_call_the_kernels(monkeypatch):
    calls = []

    def fake_check(*args):
        calls.append("gate")
        return False, 0.0, int(Reason.FEE_HURDLE)

    def fake_size(*args):
        calls.append("sizing")
        return 1.25, int(Reason.NONE)

    monkeypatch.setattr(gate, "pre_entry_check_nb", fake_check)
    monkeypatch.setattr(sizing, "position_size_nb", fake_size)
    assert RiskEngine().pre_entry_check(D, 1.0, 1.0, 0.0) == (False, 0.0, Reason.FEE_HURDLE)
    assert Sizer().size(1, 1.0, 1.0, 1.0) == (1.25, Reason.NONE)
    assert calls == ["gate", "sizing"]


def test_kelly_probe_factor_keeps_a_losing_signal_sampling():
    from risk.kelly import HalfKelly, KellyConfig

    k = HalfKelly(KellyConfig(min_trades=2, window=4, probe_factor=0.25))
    k.record(0, -0.01)
    k.record(0, -0.02)  # f* = 0 - 1/R < 0
    assert k.factor(0) == (0.25, Reason.KELLY_NON_POSITIVE)
    e = engine(kelly={"min_trades": 2, "window": 4, "probe_factor": 0.25}, liquidity={"enabled": False})
    e0 = engine(kelly={"min_trades": 2, "window": 4}, liquidity={"enabled": False})
    t = D + NS_PER_HOUR
    for eng in (e, e0):
        eng.on_bar(t, 10_000.0, 1.0)
        eng.on_trade_closed(t, -1.0, -0.01, 0, 10_000.0)
        eng.on_trade_closed(t, -2.0, -0.02, 0, 10_000.0)
        eng.on_bar(t + NS_PER_HOUR, 10_000.0, 1.0)
    full = engine(liquidity={"enabled": False})
    full.on_bar(t + NS_PER_HOUR, 10_000.0, 1.0)
    q_full, _ = full.size_entry(t + NS_PER_HOUR, 0, 1, 10_000.0, 100.0, 50.0, regime_factor=1.0, strength=1.0,
                                taker_fee=FEE)
    q_probe, why = e.size_entry(t + NS_PER_HOUR, 0, 1, 10_000.0, 100.0, 50.0, regime_factor=1.0, strength=1.0,
                                taker_fee=FEE)
    assert why == Reason.KELLY_NON_POSITIVE and q_probe > 0
    q0, why0 = e0.size_entry(t + NS_PER_HOUR, 0, 1, 10_000.0, 100.0, 50.0, regime_factor=1.0, strength=1.0,
                             taker_fee=FEE)
    assert (q0, why0) == (0.0, Reason.KELLY_NON_POSITIVE)
    # no cap binds at these numbers: the probe sizes at exactly 0.25 of the full (prior-factor 1) size
    assert q_probe == pytest.approx(0.25 * q_full, rel=1e-12)
