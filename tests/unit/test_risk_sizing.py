"""Sizing: each cap binding by hand, invalid inputs, property tests; Kelly by hand and vs a reference."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings, strategies as st

from core.enums import Reason
from core.errors import ConfigError
from risk.kelly import HalfKelly, KellyConfig, SIGNAL_A, SIGNAL_B, SIGNAL_CUSTOM
from risk.sizing import Sizer, SizingConfig

EQ = 10_000.0


def test_no_cap_binds():
    # base = 10000 * 0.01 / (20 * 1.5) = 3.3333; notional 333 < 500 position cap
    qty, reason = Sizer().size(1, EQ, 100.0, 20.0)
    assert qty == pytest.approx(10_000 * 0.01 / 30.0, rel=1e-15) and reason == Reason.NONE


def test_position_cap_binds():
    # base 33.33 > 0.05 * 10000 / 100 = 5
    qty, reason = Sizer().size(1, EQ, 100.0, 2.0)
    assert qty == pytest.approx(5.0, rel=1e-15) and reason == Reason.POSITION_CAP


def test_same_direction_cap_binds():
    # base 3.333; same-direction room (1000 - 800) / 100 = 2
    qty, reason = Sizer().size(-1, EQ, 100.0, 20.0, same_dir_notional=800.0, total_abs_notional=800.0)
    assert qty == pytest.approx(2.0, rel=1e-15) and reason == Reason.SAME_DIRECTION_CAP


def test_capital_in_use_cap_binds():
    # base 3.333; capital room (5000 - 4900) / 100 = 1
    qty, reason = Sizer().size(1, EQ, 100.0, 20.0, same_dir_notional=0.0, total_abs_notional=4900.0)
    assert qty == pytest.approx(1.0, rel=1e-12) and reason == Reason.CAPITAL_IN_USE_CAP


WIDE = SizingConfig(max_position_pct=1.0, max_same_direction_pct=1.0, max_capital_in_use=1.0)


@pytest.mark.parametrize("side, stop_price", [(1, 97.0), (-1, 103.0)])
def test_loss_at_stop_cap_binds_with_exact_round_trip_fees(side, stop_price):
    # base = 33.333 * regime 2 * strength 1.5 = 100 = position cap (tie: not binding);
    # loss per unit = 3 + 0.0005 * (100 + stop price); cap = 0.02 * 10000 / that
    qty, reason = Sizer(WIDE).size(side, EQ, 100.0, 2.0, regime_factor=2.0, strength=1.5, taker_fee=0.0005)
    assert reason == Reason.LOSS_AT_STOP_CAP
    assert qty == pytest.approx(200.0 / (3.0 + 0.0005 * (100.0 + stop_price)), rel=1e-14)


def test_later_binding_cap_replaces_earlier_one():
    # position cap 5, then same-direction room (1000 - 700)/100 = 3
    qty, reason = Sizer().size(1, EQ, 100.0, 2.0, same_dir_notional=700.0, total_abs_notional=700.0)
    assert qty == pytest.approx(3.0, rel=1e-12) and reason == Reason.SAME_DIRECTION_CAP


def test_exposure_beyond_cap_gives_zero():
    qty, reason = Sizer().size(1, EQ, 100.0, 20.0, same_dir_notional=1200.0, total_abs_notional=1200.0)
    assert qty == 0.0 and reason == Reason.SAME_DIRECTION_CAP


@pytest.mark.parametrize("strength, kelly, expected", [(0.1, 1.0, 0.5), (3.0, 0.5, 1.5 * 0.5), (1.2, 1.0, 1.2)])
def test_strength_is_clipped_and_factors_multiply(strength, kelly, expected):
    qty, reason = Sizer().size(1, EQ, 100.0, 20.0, strength=strength, kelly_factor=kelly, size_multiplier=0.5)
    assert qty == pytest.approx(100.0 / 30.0 * expected * 0.5, rel=1e-14) and reason == Reason.NONE


@pytest.mark.parametrize("kw", [
    dict(side=0), dict(side=2), dict(atr=0.0), dict(atr=-1.0), dict(atr=math.nan), dict(price=0.0),
    dict(price=math.nan), dict(equity=0.0), dict(equity=-5.0), dict(equity=math.inf), dict(regime_factor=-1.0),
    dict(strength=math.nan), dict(kelly_factor=math.nan), dict(size_multiplier=-0.1),
    dict(same_dir_notional=-1.0), dict(total_abs_notional=math.nan), dict(taker_fee=-0.001),
])
def test_invalid_inputs_give_zero_never_nan(kw):
    args = dict(side=1, equity=EQ, price=100.0, atr=2.0)
    args.update(kw)
    qty, reason = Sizer().size(args.pop("side"), args.pop("equity"), args.pop("price"), args.pop("atr"), **args)
    assert qty == 0.0 and reason == Reason.INVALID_INPUT


@pytest.mark.parametrize("kw, key", [
    (dict(max_loss_at_stop_pct=0.035), "max_loss_at_stop_pct"), (dict(max_loss_at_stop_pct=0.005), "max_loss_at_stop_pct"),
    (dict(risk_per_trade=0), "risk_per_trade"), (dict(min_strength=2.0), "min_strength"), (dict(foo=1), "foo"),
])
def test_bad_sizing_config_names_key(kw, key):
    with pytest.raises(ConfigError, match=key):
        SizingConfig(**kw)


pos = st.floats(1e-3, 1e6)
factor = st.floats(0.0, 3.0)


@settings(max_examples=300, deadline=None)
@given(side=st.sampled_from([1, -1]), equity=st.floats(1.0, 1e8), price=pos, atr=pos, regime=factor,
       strength=st.floats(-5.0, 5.0), kelly=factor, mult=factor, same=st.floats(0.0, 1e8), extra=st.floats(0.0, 1e8),
       fee=st.floats(0.0, 0.01))
def test_size_never_exceeds_any_cap(side, equity, price, atr, regime, strength, kelly, mult, same, extra, fee):
    cfg = SizingConfig()
    total = same + extra
    qty, reason = Sizer(cfg).size(side, equity, price, atr, regime_factor=regime, strength=strength,
                                  kelly_factor=kelly, size_multiplier=mult, same_dir_notional=same,
                                  total_abs_notional=total, taker_fee=fee)
    assert math.isfinite(qty) and qty >= 0.0
    tol = 1e-9 * equity
    notional = qty * price
    assert notional <= cfg.max_position_pct * equity + tol
    if qty > 0:
        assert same + notional <= cfg.max_same_direction_pct * equity + tol
        assert total + notional <= cfg.max_capital_in_use * equity + tol
    d = cfg.stop_atr_multiple * atr
    loss = qty * d + fee * qty * (price + price - side * d)
    assert loss <= cfg.max_loss_at_stop_pct * equity + tol


@settings(max_examples=300, deadline=None)
@given(side=st.sampled_from([1, -1]), price=pos, atr1=pos, atr2=pos, strength=st.floats(0.0, 2.0),
       regime=factor, fee=st.floats(0.0, 0.01), same=st.floats(0.0, 2e3))
def test_size_is_monotone_non_increasing_in_atr(side, price, atr1, atr2, strength, regime, fee, same):
    lo, hi = sorted((atr1, atr2))
    s = Sizer()
    kw = dict(regime_factor=regime, strength=strength, taker_fee=fee, same_dir_notional=same, total_abs_notional=same)
    q_lo, _ = s.size(side, EQ, price, lo, **kw)
    q_hi, _ = s.size(side, EQ, price, hi, **kw)
    assert q_hi <= q_lo * (1 + 1e-12)


# ---------------------------------------------------------------- Kelly


def _record(k, sig, returns):
    for r in returns:
        assert k.record(sig, r) == Reason.NONE


def test_kelly_prior_until_min_trades_then_half_kelly_by_hand():
    k = HalfKelly()
    rets = [0.02] * 12 + [-0.01] * 8  # W = 0.6, R = 2, f* = 0.6 - 0.4/2 = 0.4
    _record(k, SIGNAL_A, rets[:19])
    assert k.factor(SIGNAL_A) == (1.0, Reason.NONE)
    _record(k, SIGNAL_A, rets[19:])
    assert k.fstar(SIGNAL_A) == pytest.approx(0.4, rel=1e-14)
    f, r = k.factor(SIGNAL_A)
    assert f == pytest.approx(0.2, rel=1e-14) and r == Reason.NONE
    assert k.factor(SIGNAL_B) == (1.0, Reason.NONE)  # signals are independent


def test_kelly_non_positive_and_zero_returns_and_cap():
    k = HalfKelly()
    _record(k, SIGNAL_B, [0.01] * 6 + [-0.01] * 14)  # W = 0.3, R = 1 -> f* = -0.4
    assert k.factor(SIGNAL_B) == (0.0, Reason.KELLY_NON_POSITIVE)
    _record(k, SIGNAL_CUSTOM, [0.02] * 10 + [-0.01] * 5 + [0.0] * 5)  # W = 0.5, R = 2 -> 0.25
    assert k.factor(SIGNAL_CUSTOM)[0] == pytest.approx(0.125, rel=1e-14)
    capped = HalfKelly(KellyConfig(kelly_fraction=1.0, cap=0.3))
    _record(capped, SIGNAL_A, [0.02] * 12 + [-0.01] * 8)
    assert capped.factor(SIGNAL_A) == (0.3, Reason.NONE)


def test_kelly_window_keeps_only_recent_trades_and_rejects_bad_input():
    k = HalfKelly()
    _record(k, SIGNAL_A, [-0.01] * 50 + [0.01] * 50)  # only the last 50 (all wins): f* = W = 1
    assert k.fstar(SIGNAL_A) == 1.0 and k.factor(SIGNAL_A) == (0.5, Reason.NONE)
    assert k.record(3, 0.1) == Reason.INVALID_INPUT and k.record(-1, 0.1) == Reason.INVALID_INPUT
    assert k.record(SIGNAL_A, math.nan) == Reason.INVALID_INPUT and k.trades(SIGNAL_A) == 100
    assert k.factor(5) == (0.0, Reason.INVALID_INPUT)
    with pytest.raises(ConfigError, match="min_trades"):
        KellyConfig(min_trades=60)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([-0.03, -0.01, 0.0, 0.005, 0.02, 0.05]), min_size=20, max_size=120))
def test_kelly_matches_plain_python_reference(rets):
    k = HalfKelly()
    _record(k, SIGNAL_B, rets)
    window = rets[-50:]
    wins = [r for r in window if r > 0]
    losses = [r for r in window if r < 0]
    w = len(wins) / len(window)
    if not wins:
        expected = 0.0
    elif not losses:
        expected = min(0.5 * w, 1.0)
    else:
        fstar = w - (1 - w) / ((sum(wins) / len(wins)) / (-sum(losses) / len(losses)))
        expected = min(0.5 * fstar, 1.0) if fstar > 0 else 0.0
    f, r = k.factor(SIGNAL_B)
    assert f == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert (r == Reason.KELLY_NON_POSITIVE) == (expected == 0.0)
