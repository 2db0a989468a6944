"""Account rules: crafted sequences with exact verdicts per step, references and property tests."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings, strategies as st

from core.enums import Reason
from core.errors import ConfigError
from core.time import NS_PER_DAY, NS_PER_HOUR, NS_PER_MIN
from risk.rules import (
    ConsecutiveLosses, DailyLossLimit, DrawdownThrottle, DrawdownThrottleConfig, EntryThrottle,
    EntryThrottleConfig, FeeHurdle, LiquidityPause, LiquidityPauseConfig,
)

D = 20_000 * NS_PER_DAY  # midnight UTC of some day


# ---------------------------------------------------------------- daily loss


def test_daily_loss_limit_latches_until_utc_midnight():
    r = DailyLossLimit()
    assert r.on_bar(D + NS_PER_HOUR, 10_000.0) == Reason.NEW_DAY
    assert r.day_start_equity == 10_000.0
    assert r.on_trade_closed(D + 2 * NS_PER_HOUR, -200.0, 9_800.0) == Reason.NONE
    assert r.on_trade_closed(D + 3 * NS_PER_HOUR, -100.0, 9_700.0) == Reason.NONE  # -300 is not < -300
    assert r.allows_entry(D + 3 * NS_PER_HOUR)
    assert r.on_trade_closed(D + 4 * NS_PER_HOUR, -0.01, 9_699.99) == Reason.DAILY_LOSS_LIMIT
    assert not r.allows_entry(D + 4 * NS_PER_HOUR)
    assert r.on_trade_closed(D + 5 * NS_PER_HOUR, 1_000.0, 10_699.99) == Reason.NONE  # gains do not lift it
    assert not r.allows_entry(D + NS_PER_DAY - 1)
    assert r.on_bar(D + NS_PER_DAY - 1, 10_650.0) == Reason.NONE
    assert r.allows_entry(D + NS_PER_DAY)
    assert r.on_bar(D + NS_PER_DAY, 10_640.0) == Reason.NEW_DAY
    assert r.day_start_equity == 10_650.0 and r.realized_today == 0.0  # last equity before midnight


def test_daily_first_event_trade_uses_equity_before_it_and_bad_input():
    r = DailyLossLimit()
    assert r.on_trade_closed(D + 1, -250.0, 9_750.0) == Reason.NONE
    assert r.day_start_equity == 10_000.0
    assert r.on_trade_closed(D + 2, -60.0, 9_690.0) == Reason.DAILY_LOSS_LIMIT
    assert r.on_trade_closed(D + 3, math.nan, 9_000.0) == Reason.INVALID_INPUT
    assert r.realized_today == pytest.approx(-310.0)
    # an invalid equity on the first bar must not disable the limit
    r = DailyLossLimit()
    assert r.on_bar(D, math.nan) == Reason.INVALID_INPUT
    assert r.on_trade_closed(D + 1, -400.0, 9_600.0) == Reason.DAILY_LOSS_LIMIT


events = st.lists(st.tuples(st.integers(0, 6 * NS_PER_HOUR), st.booleans(), st.floats(-300, 200)),
                  min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(events)
def test_daily_loss_never_allows_entry_after_hit_in_same_day(evs):
    r = DailyLossLimit()
    ts, equity, hit_day = D, 10_000.0, None
    for gap, is_trade, pnl in evs:
        ts += gap
        if is_trade:
            equity += pnl
            if r.on_trade_closed(ts, pnl, equity) == Reason.DAILY_LOSS_LIMIT:
                hit_day = ts // NS_PER_DAY
        else:
            r.on_bar(ts, equity)
        if hit_day is not None and ts // NS_PER_DAY == hit_day:
            assert not r.allows_entry(ts)
        if hit_day is not None and ts // NS_PER_DAY > hit_day:
            assert r.allows_entry(ts)  # no hit yet in this later day


# ---------------------------------------------------------------- consecutive losses


def test_consecutive_losses_half_pause_and_reset():
    r = ConsecutiveLosses()
    t = D
    for i in range(4):
        r.on_trade_closed(t + i, -1.0)
    assert r.check(t + 4) == (True, 1.0, Reason.NONE)
    r.on_trade_closed(t + 4, -1.0)
    assert r.check(t + 5) == (True, 0.5, Reason.CONSECUTIVE_LOSSES_HALF)
    r.on_trade_closed(t + 5, 0.0)  # break-even: run unchanged
    assert r.count == 5
    r.on_trade_closed(t + 6, 2.0)  # a win resets
    assert r.count == 0 and r.check(t + 7) == (True, 1.0, Reason.NONE)
    for i in range(7):
        assert r.on_trade_closed(t + 10 + i, -1.0) == Reason.NONE
    t8 = t + NS_PER_HOUR
    assert r.on_trade_closed(t8, -1.0) == Reason.CONSECUTIVE_LOSSES_PAUSE
    assert r.check(t8) == (False, 0.0, Reason.CONSECUTIVE_LOSSES_PAUSE)
    assert r.check(t8 + 4 * NS_PER_HOUR - 1) == (False, 0.0, Reason.CONSECUTIVE_LOSSES_PAUSE)
    assert r.check(t8 + 4 * NS_PER_HOUR) == (True, 0.5, Reason.CONSECUTIVE_LOSSES_HALF)  # run still 8
    t9 = t8 + 5 * NS_PER_HOUR
    assert r.on_trade_closed(t9, -1.0) == Reason.CONSECUTIVE_LOSSES_PAUSE  # 9th loss: pause again
    assert r.check(t9 + 4 * NS_PER_HOUR - 1)[0] is False and r.check(t9 + 4 * NS_PER_HOUR)[0] is True
    r.on_trade_closed(t9 + 4 * NS_PER_HOUR + 1, 1.0)
    assert r.count == 0 and r.check(t9 + 4 * NS_PER_HOUR + 2) == (True, 1.0, Reason.NONE)
    assert r.on_trade_closed(t9, math.nan) == Reason.INVALID_INPUT


# ---------------------------------------------------------------- drawdown throttle


def test_drawdown_hysteresis():
    r = DrawdownThrottle()
    h = lambda i: D + i * NS_PER_HOUR + 30 * NS_PER_MIN  # noqa: E731
    assert r.on_bar(h(0), 100.0) == Reason.NONE and r.check() == (1.0, Reason.NONE)
    assert r.on_bar(h(1), 92.0) == Reason.NONE and not r.throttled  # exactly 8%: not > 8%
    assert r.on_bar(h(2), 91.9) == Reason.DRAWDOWN_THROTTLE
    assert r.check() == (0.25, Reason.DRAWDOWN_THROTTLE)
    assert r.on_bar(h(3), 95.0) == Reason.NONE and r.throttled  # 5%: still on
    assert r.on_bar(h(4), 96.0) == Reason.NONE and r.throttled  # exactly 4%: not < 4%
    assert r.on_bar(h(5), 96.5) == Reason.RECOVERED and r.check() == (1.0, Reason.NONE)
    assert r.on_bar(h(6), 93.0) == Reason.NONE and not r.throttled  # 7%: below the on-level
    assert r.on_bar(h(7), 101.0) == Reason.NONE and r.peak == 101.0 and r.drawdown == 0.0


def test_drawdown_peak_leaves_the_7_day_window_at_hour_168():
    r = DrawdownThrottle()
    r.on_bar(D + 10, 100.0)  # hour bucket 0
    assert r.on_bar(D + NS_PER_HOUR, 90.0) == Reason.DRAWDOWN_THROTTLE
    for i in range(2, 168):
        assert r.on_bar(D + i * NS_PER_HOUR + 59 * NS_PER_MIN, 90.0) == Reason.NONE
    assert r.peak == 100.0 and r.throttled  # hour 167: bucket 0 is still in [0, 167]
    assert r.on_bar(D + 168 * NS_PER_HOUR, 90.0) == Reason.RECOVERED
    assert r.peak == 90.0


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3 * NS_PER_HOUR), st.floats(50, 150)), min_size=1, max_size=80))
def test_drawdown_matches_brute_force_reference(steps):
    cfg = DrawdownThrottleConfig(peak_window="5h", peak_resolution="1h")
    r = DrawdownThrottle(cfg)
    ts, seen, throttled = D, [], False
    for gap, eq in steps:
        ts += gap
        r.on_bar(ts, eq)
        seen.append((ts // NS_PER_HOUR, eq))
        b = ts // NS_PER_HOUR
        peak = max(e for bb, e in seen if bb >= b - 4)
        dd = 1 - eq / peak
        throttled = dd > 0.08 if not throttled else not dd < 0.04
        assert r.peak == peak and r.drawdown == pytest.approx(dd, abs=1e-15) and r.throttled == throttled


def test_drawdown_config_errors():
    with pytest.raises(ConfigError, match="release_drawdown"):
        DrawdownThrottleConfig(release_drawdown=0.1)
    with pytest.raises(ConfigError, match="peak_window"):
        DrawdownThrottleConfig(peak_window="90m")
    with pytest.raises(ConfigError, match="peak_resolution"):
        DrawdownThrottleConfig(peak_resolution="1 fortnight")


# ---------------------------------------------------------------- liquidity pause


def test_liquidity_pause_against_previous_window_mean():
    r = LiquidityPause(LiquidityPauseConfig(window=4))
    for _ in range(4):
        assert r.on_bar(10.0) == Reason.NONE  # warming up: no reference yet
    assert r.on_bar(2.9) == Reason.LIQUIDITY_PAUSE and r.reference_mean == 10.0  # 2.9 < 3.0
    assert r.paused
    assert r.on_bar(2.5) == Reason.NONE  # mean (10+10+10+2.9)/4 = 8.225 -> 2.4675 <= 2.5
    assert r.reference_mean == pytest.approx(8.225)
    assert r.on_bar(math.nan) == Reason.LIQUIDITY_PAUSE and r.paused
    assert r.on_bar(3.0) == Reason.NONE and r.reference_mean == pytest.approx((10 + 10 + 2.9 + 2.5) / 4)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.floats(0, 100), st.just(math.nan), st.just(0.0)), min_size=1, max_size=120),
       st.integers(1, 12))
def test_liquidity_matches_reference(values, window):
    r = LiquidityPause(LiquidityPauseConfig(window=window))
    past = []
    for v in values:
        got = r.on_bar(v)
        if math.isnan(v):
            expected = True
        else:
            expected = len(past) >= window and v < 0.3 * (sum(past[-window:]) / window)
            past.append(v)
        assert (got == Reason.LIQUIDITY_PAUSE) == expected == r.paused


# ---------------------------------------------------------------- entry throttle


def test_entry_interval_and_24h_budget():
    r = EntryThrottle(EntryThrottleConfig(max_entries=3))
    assert r.check(D) == Reason.NONE
    r.record(D)
    assert r.check(D + 5 * NS_PER_MIN - 1) == Reason.ENTRY_INTERVAL
    assert r.check(D + 5 * NS_PER_MIN) == Reason.NONE
    r.record(D + NS_PER_HOUR)
    r.record(D + 2 * NS_PER_HOUR)
    assert r.check(D + 3 * NS_PER_HOUR) == Reason.MAX_ENTRIES_24H
    assert r.check(D + NS_PER_DAY - 1) == Reason.MAX_ENTRIES_24H
    assert r.check(D + NS_PER_DAY) == Reason.NONE  # the first entry stops counting at exactly +24h
    r.record(D + NS_PER_DAY)
    assert r.check(D + NS_PER_DAY + NS_PER_HOUR - 1) == Reason.MAX_ENTRIES_24H  # entries at 1h, 2h, 24h
    assert r.check(D + NS_PER_DAY + NS_PER_HOUR) == Reason.NONE  # the 1h entry stops counting


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(1, 4 * NS_PER_HOUR), min_size=1, max_size=150), st.integers(1, 6))
def test_entries_in_any_24h_window_never_exceed_max(gaps, max_entries):
    r = EntryThrottle(EntryThrottleConfig(max_entries=max_entries))
    ts, made = D, []
    for g in gaps:
        ts += g
        if r.check(ts) == Reason.NONE:
            r.record(ts)
            made.append(ts)
    for i, t in enumerate(made):
        assert sum(1 for u in made if t <= u < t + NS_PER_DAY) <= max_entries
        if i:
            assert t - made[i - 1] >= 5 * NS_PER_MIN


# ---------------------------------------------------------------- fee hurdle


def test_fee_hurdle_boundary_and_invalid():
    f = FeeHurdle()
    # fees: 3 * 2 * 0.0005 * 100 * qty = 0.3 qty; expected 1 * atr * qty
    assert f.check(100.0, 0.3, 2.0, 0.0005) == Reason.NONE
    assert f.check(100.0, 0.2999, 2.0, 0.0005) == Reason.FEE_HURDLE
    assert f.check(100.0, 0.3, 0.0, 0.0005) == Reason.INVALID_INPUT
    assert f.check(100.0, math.nan, 1.0, 0.0005) == Reason.INVALID_INPUT
