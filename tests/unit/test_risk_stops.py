"""Stops: crafted paths where each layer fires exactly at the expected bar; ordering; never loosening."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from core.enums import Reason
from core.errors import ConfigError
from risk.stops import PositionStops, StopConfig


def run(stops, bars):
    """Feed bars (high, low, close, atr, ofi_ema5, slope) until an exit: (index, reason, price) or None."""
    for i, bar in enumerate(bars):
        reason, price = stops.on_bar(*bar)
        if reason != Reason.NONE:
            return i, reason, price
    return None


def flat(n, ofi=0.0, slope=0.0, atr=2.0):
    return [(100.5, 99.5, 100.0, atr, ofi, slope)] * n


def test_entry_sets_l1_and_invalid_entry_is_flat():
    s = PositionStops()
    assert s.enter(1, 100.0, 2.0) == Reason.NONE and s.level == 97.0 and s.l1 == 97.0
    assert s.enter(-1, 100.0, 2.0) == Reason.NONE and s.level == 103.0
    for args in [(0, 100.0, 2.0), (1, 100.0, 0.0), (1, math.nan, 2.0), (-1, 100.0, math.inf)]:
        assert s.enter(*args) == Reason.INVALID_INPUT and math.isnan(s.level)
        assert s.on_bar(101, 99, 100, 2, 0, 0) == (Reason.NONE, pytest.approx(math.nan, nan_ok=True))


def test_l1_long_fires_at_the_touching_bar_only():
    s = PositionStops()
    s.enter(1, 100.0, 2.0)
    bars = [(101, 99, 100, 2, 0, 0), (100.5, 98, 99, 2, 0, 0), (99.5, 97.01, 98, 2, 0, 0),
            (98.5, 97.0, 97.2, 2, 0, 0), (98, 90, 91, 2, 0, 0)]
    assert run(s, bars) == (3, Reason.STOP_L1, 97.0)


def test_l1_short_mirrored():
    s = PositionStops()
    s.enter(-1, 100.0, 2.0)
    bars = [(101, 99, 100, 2, 0, 0), (102.99, 100, 102, 2, 0, 0), (103.5, 101, 103.2, 2, 0, 0)]
    assert run(s, bars) == (2, Reason.STOP_L1, 103.0)


def test_l2_needs_three_consecutive_adverse_closes():
    s = PositionStops()
    s.enter(1, 100.0, 2.0)
    ofi = [-0.3, -0.3, 0.0, -0.3, -0.3, -0.25, -0.3, -0.3, -0.3, -0.3]
    bars = [(100.5, 99.5, 100.0 + i * 0.01, 2.0, o, 0.0) for i, o in enumerate(ofi)]
    assert run(s, bars) == (8, Reason.STOP_L2, 100.08)


def test_l2_short_mirrored_and_nan_breaks_the_run():
    s = PositionStops()
    s.enter(-1, 100.0, 2.0)
    ofi = [0.3, 0.3, math.nan, 0.3, 0.26, -0.9, 0.3, 0.3, 0.3]
    bars = [(100.5, 99.5, 100.0, 2.0, o, 0.0) for o in ofi]
    assert run(s, bars) == (8, Reason.STOP_L2, 100.0)


def test_l3_exits_at_the_close_of_bar_max_holding():
    s = PositionStops(StopConfig(max_holding_bars=5))
    s.enter(1, 100.0, 2.0)
    bars = [(100.5, 99.5, 100.0 + i, 2.0, 0.0, 0.0) for i in range(10)]
    assert run(s, bars) == (4, Reason.STOP_L3, 104.0)
    s = PositionStops()  # default 240
    s.enter(-1, 100.0, 2.0)
    assert run(s, flat(300)) == (239, Reason.STOP_L3, 100.0)


def test_trailing_take_profit_long():
    s = PositionStops()
    s.enter(1, 100.0, 2.0)
    t2 = 103.0 - 0.8 * 2.0
    bars = [
        (101.0, 99.5, 100.5, 2.0, 0.0, 0.0),   # best 101 < 102: not armed
        (102.5, 100.5, 102.0, 2.0, 0.0, 0.0),  # best 102.5 >= 102: armed after the bar, trail 100.9
        (103.0, 101.0, 102.5, 2.0, 0.0, 0.0),  # low 101.0 > 100.9; trail -> 101.4
        (103.0, t2, 102.0, 2.0, 0.0, 0.0),     # low touches 101.4
    ]
    assert run(s, bars[:3]) is None
    assert s.trail_active and s.trail == t2 and s.level == t2 and s.best_price == 103.0
    reason, price = s.on_bar(*bars[3])
    assert (reason, price) == (Reason.TAKE_PROFIT_TRAIL, t2)


def test_trail_arming_bar_cannot_trigger_itself():
    # The arming bar's low is far below where the trail will sit: no exit in that bar (no look-ahead).
    s = PositionStops()
    s.enter(1, 100.0, 2.0)
    assert run(s, [(103.0, 98.0, 102.0, 2.0, 0.0, 0.0)]) is None
    assert s.trail_active and s.trail == 103.0 - 1.6
    assert run(s, [(103.0, 101.5, 102.0, 2.0, 0, 0), (102.0, 101.39, 101.5, 2.0, 0, 0)]) == (
        1, Reason.TAKE_PROFIT_TRAIL, 103.0 - 1.6)


def test_trail_widens_while_cum_delta_accelerates_and_never_moves_back():
    s = PositionStops()
    s.enter(1, 100.0, 2.0)
    run(s, [(101.0, 99.5, 100.5, 2.0, 0.0, 0.5)])            # first bar: no previous slope, not armed
    run(s, [(102.5, 100.5, 102.0, 2.0, 0.0, 1.0)])           # 1.0 > 0.5 > 0: wide
    assert s.state[10] == 1.0 and s.trail == 102.5 - 1.2 * 2.0
    run(s, [(103.0, 101.0, 102.5, 2.0, 0.0, 2.0)])           # wide again
    assert s.trail == 103.0 - 2.4
    run(s, [(103.5, 102.0, 103.0, 2.0, 0.0, 1.5)])           # decelerating: normal width
    assert s.trail == 103.5 - 1.6
    run(s, [(103.5, 102.5, 103.0, 2.0, 0.0, 3.0)])           # wide candidate 101.1 < 101.9: kept
    assert s.trail == 103.5 - 1.6
    run(s, [(103.6, 102.5, 103.0, 2.0, 0.0, -1.0)])          # negative slope: not wide for a long
    assert s.trail == 103.6 - 1.6
    assert run(s, [(103.0, 102.0, 102.5, 2.0, 0.0, 0.0)]) == (0, Reason.TAKE_PROFIT_TRAIL, 103.6 - 1.6)


def test_trailing_take_profit_short_with_widening():
    s = PositionStops()
    s.enter(-1, 100.0, 2.0)
    run(s, [(100.5, 99.0, 99.5, 2.0, 0.0, -0.5)])
    run(s, [(99.5, 97.5, 98.0, 2.0, 0.0, -1.0)])             # armed (97.5 <= 98), wide: 97.5 + 2.4
    assert s.trail == 97.5 + 2.4 and s.level == 97.5 + 2.4
    run(s, [(99.0, 97.0, 97.5, 2.0, 0.0, -0.5)])             # not accelerating: 97 + 1.6
    assert s.trail == 97.0 + 1.6
    assert run(s, [(98.6, 97.8, 98.5, 2.0, 0.0, 0.0)]) == (0, Reason.TAKE_PROFIT_TRAIL, 97.0 + 1.6)


def test_touch_reports_stop_l1_when_l1_is_the_binding_level():
    s = PositionStops()
    s.enter(1, 100.0, 2.0)
    run(s, [(102.5, 100.0, 102.0, 10.0, 0.0, 0.0)])  # armed with a huge bar ATR: trail 94.5 < L1 97
    assert s.trail_active and s.trail == 102.5 - 8.0 and s.level == 97.0
    assert run(s, [(101.0, 96.0, 96.5, 10.0, 0.0, 0.0)]) == (0, Reason.STOP_L1, 97.0)


def test_intrabar_stop_has_priority_over_bar_close_exits():
    s = PositionStops(StopConfig(max_holding_bars=1, l2_bars=1))
    s.enter(1, 100.0, 2.0)
    assert run(s, [(100.0, 96.0, 99.0, 2.0, -0.9, 0.0)]) == (0, Reason.STOP_L1, 97.0)
    s.enter(1, 100.0, 2.0)
    assert run(s, [(100.0, 99.0, 99.0, 2.0, -0.9, 0.0)]) == (0, Reason.STOP_L2, 99.0)  # L2 before L3


def test_invalid_bar_changes_nothing():
    s = PositionStops()
    s.enter(1, 100.0, 2.0)
    before = s.state.copy()
    assert s.on_bar(math.nan, 99, 100, 2, 0, 0)[0] == Reason.INVALID_INPUT
    assert s.on_bar(99, 101, 100, 2, 0, 0)[0] == Reason.INVALID_INPUT
    np.testing.assert_array_equal(s.state, before)


def test_bad_stop_config():
    with pytest.raises(ConfigError, match="trail_wide_atr"):
        StopConfig(trail_wide_atr=0.5)
    with pytest.raises(ConfigError, match="l2_bars"):
        StopConfig(l2_bars=0)


bar_moves = st.lists(st.tuples(st.floats(-3, 3), st.floats(0, 3), st.floats(0, 3), st.floats(0.1, 6),
                               st.floats(-1, 1), st.floats(-50, 50)), min_size=1, max_size=80)


@settings(max_examples=300, deadline=None)
@given(side=st.sampled_from([1, -1]), atr0=st.floats(0.2, 5), moves=bar_moves)
def test_stops_never_loosen(side, atr0, moves):
    s = PositionStops(StopConfig(max_holding_bars=1000, l2_bars=1000))
    s.enter(side, 100.0, atr0)
    l1 = s.l1
    level, trail, best = s.level, s.trail, s.best_price
    mid = 100.0
    for drift, up, down, atr, ofi, slope in moves:
        mid = max(mid + drift, 5.0)
        reason, _ = s.on_bar(mid + up, mid - down, mid, atr, ofi, slope)
        assert s.l1 == l1
        if reason != Reason.NONE:
            assert reason in (Reason.STOP_L1, Reason.TAKE_PROFIT_TRAIL)
            assert (mid - down <= level) if side > 0 else (mid + up >= level)
            break
        assert (side * (s.level - level)) >= 0.0
        if not math.isnan(trail):
            assert side * (s.trail - trail) >= 0.0
        assert side * (s.best_price - best) >= 0.0
        level, trail, best = s.level, s.trail, s.best_price
