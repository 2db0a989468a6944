"""Three-layer stops and a trailing take-profit for one position.

Layers (long shown; a short mirrors every comparison):

- L1, fixed ATR stop: entry - l1_atr * ATR(entry). Set once at entry, never moved or removed.
- L2, order-flow stop: exit at the bar close when ofi_ema5 < -l2_threshold for l2_bars consecutive
  bar closes since entry (a bar with NaN ofi_ema5 breaks the run).
- L3, time stop: exit at the close of the max_holding_bars-th bar after the entry bar.
- Trailing take-profit: activates once the best price since entry (highest high of the bars after
  the entry bar) >= entry + trail_start_atr * ATR(entry); it then sits trail_atr * ATR behind the
  best price, or trail_wide_atr * ATR while cumulative delta accelerates in the position's
  direction. The trail only ever moves in the position's favour (it is a ratchet: widening slows
  further tightening, it never moves the level back). ATR is the bar's ATR, or ATR(entry) when the
  bar's ATR is not finite and positive.
- "Cumulative delta accelerates" on a bar (long): cum_delta_slope > 0 and cum_delta_slope > the
  previous bar's cum_delta_slope (short: < 0 and < previous). On the first bar after entry there is
  no previous slope, so the trail is not widened there.

Ordering within a bar, which keeps the decision free of look-ahead inside the bar:

1. Intrabar: the bar's range is tested against the protective level known BEFORE the bar
   (`stop_level_nb`): long exits when low <= level. The Reason is TAKE_PROFIT_TRAIL when the active
   trail is strictly above L1 (the trail is the binding level), else STOP_L1. The returned price is
   the level; a fill model that knows the bar's open fills a gap through it at the open.
2. Bar close: L2, then L3; the returned price is the close.
3. Only when the position survives the bar: best price, bars held, trail activation, widening and
   the trail level are updated from this bar, for use from the next bar on.

An exit leaves the state as it was before the bar (so `stop_level_nb` still reports the level that
fired); the caller resets the state with `stops_on_entry_nb` for the next position.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from pydantic import Field, model_validator

from core.config import FrozenConfig
from core.enums import Reason

P_L1_ATR = 0
P_L2_THRESHOLD = 1
P_L2_BARS = 2
P_MAX_HOLDING_BARS = 3
P_TRAIL_START_ATR = 4
P_TRAIL_ATR = 5
P_TRAIL_WIDE_ATR = 6
N_PARAMS = 7

S_SIDE = 0  # +1 long, -1 short, 0 no position
S_ENTRY = 1
S_ATR_ENTRY = 2
S_L1 = 3
S_BEST = 4  # best price since entry (max high for a long, min low for a short); entry price at entry
S_TRAIL_ACTIVE = 5  # 1.0 once the trailing take-profit is armed
S_TRAIL = 6  # trail level (NaN until active)
S_BARS_HELD = 7  # bars closed since the entry bar
S_L2_COUNT = 8  # consecutive bar closes with adverse ofi_ema5
S_PREV_SLOPE = 9  # previous bar's cum_delta_slope (NaN before the first bar)
S_WIDE = 10  # 1.0 when the last trail update used the wide distance
N_STATE = 11

_NONE = int(Reason.NONE)
_INVALID = int(Reason.INVALID_INPUT)
_STOP_L1 = int(Reason.STOP_L1)
_STOP_L2 = int(Reason.STOP_L2)
_STOP_L3 = int(Reason.STOP_L3)
_TRAIL = int(Reason.TAKE_PROFIT_TRAIL)


class StopConfig(FrozenConfig):
    """Stop distances in multiples of ATR, the order-flow stop and the time stop (bars)."""

    l1_atr: float = Field(1.5, gt=0, le=20)
    l2_threshold: float = Field(0.25, gt=0, le=1)  # ofi_ema5 lies in [-1, 1]
    l2_bars: int = Field(3, ge=1, le=1000)
    max_holding_bars: int = Field(240, ge=1, le=10_000_000)
    trail_start_atr: float = Field(1.0, ge=0, le=50)
    trail_atr: float = Field(0.8, gt=0, le=20)
    trail_wide_atr: float = Field(1.2, gt=0, le=20)

    @model_validator(mode="after")
    def _check(self) -> StopConfig:
        if self.trail_wide_atr < self.trail_atr:
            raise ValueError(f"trail_wide_atr ({self.trail_wide_atr}) must be >= trail_atr ({self.trail_atr})")
        return self

    def to_params(self) -> np.ndarray:
        """Parameters packed at the `P_*` slots."""
        p = np.empty(N_PARAMS, dtype=np.float64)
        p[P_L1_ATR] = self.l1_atr
        p[P_L2_THRESHOLD] = self.l2_threshold
        p[P_L2_BARS] = self.l2_bars
        p[P_MAX_HOLDING_BARS] = self.max_holding_bars
        p[P_TRAIL_START_ATR] = self.trail_start_atr
        p[P_TRAIL_ATR] = self.trail_atr
        p[P_TRAIL_WIDE_ATR] = self.trail_wide_atr
        return p


def new_state() -> np.ndarray:
    """State of a flat position (no levels)."""
    s = np.zeros(N_STATE, dtype=np.float64)
    stops_reset_nb(s)
    return s


@njit(cache=True)
def stops_reset_nb(state):
    """Clear the state to 'no position' (call after an exit)."""
    state[:] = 0.0
    state[S_ENTRY] = np.nan
    state[S_ATR_ENTRY] = np.nan
    state[S_L1] = np.nan
    state[S_BEST] = np.nan
    state[S_TRAIL] = np.nan
    state[S_PREV_SLOPE] = np.nan


@njit(cache=True)
def stops_on_entry_nb(params, state, side, entry_price, atr):
    """Arm the stops for a new position (side +1/-1, entry fill price, ATR at entry, quote units).

    Returns NONE, or INVALID_INPUT (state reset to flat) for a side not +-1 or a non-finite or
    non-positive price or ATR. Read the L1 level with `stop_level_nb`.
    """
    stops_reset_nb(state)
    if (side != 1 and side != -1) or not (math.isfinite(entry_price) and entry_price > 0.0
                                          and math.isfinite(atr) and atr > 0.0):
        return _INVALID
    state[S_SIDE] = side
    state[S_ENTRY] = entry_price
    state[S_ATR_ENTRY] = atr
    state[S_L1] = entry_price - side * params[P_L1_ATR] * atr
    state[S_BEST] = entry_price
    return _NONE


@njit(cache=True)
def stop_level_nb(state):
    """Protective price the venue / fill model should hold now: long max(L1, trail) once the trail is
    active, else L1 (short: min). NaN when there is no position."""
    side = state[S_SIDE]
    if side == 0.0:
        return np.nan
    level = state[S_L1]
    if state[S_TRAIL_ACTIVE] == 1.0:
        if side > 0.0:
            level = max(level, state[S_TRAIL])
        else:
            level = min(level, state[S_TRAIL])
    return level


@njit(cache=True)
def stops_on_bar_nb(params, state, high, low, close, atr, ofi_ema5, cum_delta_slope):
    """Process one closed bar of an open position: (reason, price).

    reason: STOP_L1 / TAKE_PROFIT_TRAIL (intrabar touch of the level held before the bar; price =
    that level), STOP_L2 / STOP_L3 (at the close; price = close), NONE (no exit; price NaN; the
    best price and trail were updated), INVALID_INPUT (non-finite prices or high < low; nothing
    changed; price NaN). No position: (NONE, NaN).
    """
    side = state[S_SIDE]
    if side == 0.0:
        return _NONE, np.nan
    if not (math.isfinite(high) and math.isfinite(low) and math.isfinite(close) and low <= high):
        return _INVALID, np.nan

    level = stop_level_nb(state)
    touched = low <= level if side > 0.0 else high >= level
    if touched:
        trail_binds = state[S_TRAIL_ACTIVE] == 1.0 and (
            state[S_TRAIL] > state[S_L1] if side > 0.0 else state[S_TRAIL] < state[S_L1])
        return (_TRAIL if trail_binds else _STOP_L1), level

    adverse = ofi_ema5 < -params[P_L2_THRESHOLD] if side > 0.0 else ofi_ema5 > params[P_L2_THRESHOLD]
    l2_count = state[S_L2_COUNT] + 1.0 if adverse else 0.0
    if l2_count >= params[P_L2_BARS]:
        return _STOP_L2, close
    bars_held = state[S_BARS_HELD] + 1.0
    if bars_held >= params[P_MAX_HOLDING_BARS]:
        return _STOP_L3, close

    state[S_L2_COUNT] = l2_count
    state[S_BARS_HELD] = bars_held
    if side > 0.0:
        best = max(state[S_BEST], high)
    else:
        best = min(state[S_BEST], low)
    state[S_BEST] = best
    atr_entry = state[S_ATR_ENTRY]
    prev = state[S_PREV_SLOPE]
    if side > 0.0:
        wide = cum_delta_slope > 0.0 and cum_delta_slope > prev
    else:
        wide = cum_delta_slope < 0.0 and cum_delta_slope < prev
    state[S_PREV_SLOPE] = cum_delta_slope
    state[S_WIDE] = 1.0 if wide else 0.0
    if state[S_TRAIL_ACTIVE] != 1.0:
        if side * (best - state[S_ENTRY]) >= params[P_TRAIL_START_ATR] * atr_entry:
            state[S_TRAIL_ACTIVE] = 1.0
    if state[S_TRAIL_ACTIVE] == 1.0:
        a = atr if (math.isfinite(atr) and atr > 0.0) else atr_entry
        dist = (params[P_TRAIL_WIDE_ATR] if wide else params[P_TRAIL_ATR]) * a
        candidate = best - side * dist
        trail = state[S_TRAIL]
        if math.isnan(trail) or (candidate > trail if side > 0.0 else candidate < trail):
            state[S_TRAIL] = candidate
    return _NONE, np.nan


class PositionStops:
    """Readable wrapper over the stop kernels for one position (live code and tests)."""

    def __init__(self, config: StopConfig | None = None):
        self.config = config or StopConfig()
        self.params = self.config.to_params()
        self.state = new_state()

    def enter(self, side: int, entry_price: float, atr: float) -> Reason:
        """Arm the stops; NONE or INVALID_INPUT."""
        return Reason(stops_on_entry_nb(self.params, self.state, int(side), float(entry_price), float(atr)))

    def on_bar(self, high: float, low: float, close: float, atr: float, ofi_ema5: float,
               cum_delta_slope: float) -> tuple[Reason, float]:
        """(exit Reason or NONE, exit reference price or NaN); see `stops_on_bar_nb`."""
        reason, price = stops_on_bar_nb(self.params, self.state, float(high), float(low), float(close),
                                        float(atr), float(ofi_ema5), float(cum_delta_slope))
        return Reason(reason), float(price)

    def reset(self) -> None:
        """Back to 'no position'."""
        stops_reset_nb(self.state)

    @property
    def level(self) -> float:
        """Protective level to hold now (NaN when flat)."""
        return float(stop_level_nb(self.state))

    @property
    def l1(self) -> float:
        return float(self.state[S_L1])

    @property
    def trail(self) -> float:
        """Trail level (NaN until active)."""
        return float(self.state[S_TRAIL])

    @property
    def trail_active(self) -> bool:
        return bool(self.state[S_TRAIL_ACTIVE] == 1.0)

    @property
    def best_price(self) -> float:
        return float(self.state[S_BEST])

    @property
    def bars_held(self) -> int:
        return int(self.state[S_BARS_HELD])
