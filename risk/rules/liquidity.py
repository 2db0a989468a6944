"""Liquidity pause: no entries while trade_intensity < `min_ratio` (0.3) x its mean over the
previous `window` (100) bars (the current bar excluded, so a collapse is measured against the
time before it).

The decision is made at each bar close and holds until the next bar close. Until `window` earlier
valid values exist there is no reference and no pause. A bar whose trade_intensity is not finite or
negative pauses entries (liquidity unknown) and is not added to the window.

The window sum is kept incrementally and recomputed exactly from the ring every time the ring wraps
(every `window` values), which bounds floating-point drift without an O(window) cost per bar.

State (float64): `S_COUNT`, `S_POS`, `S_SUM`, `S_PAUSED`, `S_MEAN`, then the ring from `S_RING`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from pydantic import Field

from core.config import FrozenConfig
from core.enums import Reason

P_WINDOW = 0
P_MIN_RATIO = 1
P_ENABLED = 2
N_PARAMS = 3

S_COUNT = 0  # valid values pushed so far
S_POS = 1  # next ring slot
S_SUM = 2  # sum of the values in the ring
S_PAUSED = 3
S_MEAN = 4  # reference mean used at the last bar (NaN while warming up)
S_RING = 5
N_HEADER = 5

_NONE = int(Reason.NONE)
_PAUSE = int(Reason.LIQUIDITY_PAUSE)


class LiquidityPauseConfig(FrozenConfig):
    """Rolling window (bars) of the trade-intensity reference and the pause ratio."""

    # off only for data that has no trade intensity at all (bars made from klines): with the
    # rule on, an unknown intensity pauses entries, which is the safe reading of missing data live
    enabled: bool = True
    window: int = Field(100, ge=1, le=1_000_000)
    min_ratio: float = Field(0.3, gt=0, le=1)

    def to_params(self) -> np.ndarray:
        p = np.empty(N_PARAMS, dtype=np.float64)
        p[P_WINDOW] = self.window
        p[P_MIN_RATIO] = self.min_ratio
        p[P_ENABLED] = float(self.enabled)
        return p


def new_state(config: LiquidityPauseConfig) -> np.ndarray:
    """Empty window, not paused."""
    s = np.zeros(N_HEADER + config.window, dtype=np.float64)
    s[S_MEAN] = np.nan
    return s


@njit(cache=True)
def liquidity_on_bar_nb(params, state, trade_intensity):
    """Bar close with this bar's trade_intensity (trades per ms). Returns LIQUIDITY_PAUSE when
    entries are paused until the next bar close, else NONE."""
    window = int(params[P_WINDOW])
    if params[P_ENABLED] == 0.0:
        state[S_PAUSED] = 0.0
        return _NONE
    if not (math.isfinite(trade_intensity) and trade_intensity >= 0.0):
        state[S_PAUSED] = 1.0
        return _PAUSE
    if state[S_COUNT] >= window:
        mean = state[S_SUM] / window
        state[S_MEAN] = mean
        state[S_PAUSED] = 1.0 if trade_intensity < params[P_MIN_RATIO] * mean else 0.0
    else:
        state[S_MEAN] = np.nan
        state[S_PAUSED] = 0.0
    pos = int(state[S_POS])
    if state[S_COUNT] >= window:
        state[S_SUM] -= state[S_RING + pos]
    state[S_RING + pos] = trade_intensity
    state[S_SUM] += trade_intensity
    state[S_COUNT] += 1.0
    pos = (pos + 1) % window
    state[S_POS] = pos
    if pos == 0:
        total = 0.0
        for i in range(window):
            total += state[S_RING + i]
        state[S_SUM] = total
    return _PAUSE if state[S_PAUSED] == 1.0 else _NONE


@njit(cache=True)
def liquidity_paused_nb(state):
    """True while entries are paused (decided at the last bar close)."""
    return state[S_PAUSED] == 1.0


class LiquidityPause:
    """Readable wrapper over the liquidity-pause kernels."""

    def __init__(self, config: LiquidityPauseConfig | None = None):
        self.config = config or LiquidityPauseConfig()
        self.params = self.config.to_params()
        self.state = new_state(self.config)

    def on_bar(self, trade_intensity: float) -> Reason:
        return Reason(liquidity_on_bar_nb(self.params, self.state, float(trade_intensity)))

    @property
    def paused(self) -> bool:
        return bool(liquidity_paused_nb(self.state))

    @property
    def reference_mean(self) -> float:
        return float(self.state[S_MEAN])
