"""Capped fractional (half-) Kelly sizing factor per signal, from its recent closed trades.

Per signal id (`SIGNAL_A` = 0, `SIGNAL_B` = 1, `SIGNAL_CUSTOM` = 2) a ring buffer keeps the returns
of the last `window` closed trades (return = net PnL / entry notional; any consistent unit works
because only the win rate and the win/loss ratio enter). Over that window:

    W  = wins / trades            (win: return > 0; a 0 return is a trade but neither win nor loss)
    R  = mean(win) / |mean(loss)|
    f* = W - (1 - W) / R          (f* = W when there are no losses; f* <= 0 when there are no wins)
    factor = clip(kelly_fraction * f*, 0, cap)

Until a signal has `min_trades` closed trades in total the factor is `prior_factor` (default 1.0:
size from the ATR risk budget alone, because 19 trades say too little about an edge to scale on).
f* <= 0 gives factor 0 with `Reason.KELLY_NON_POSITIVE`: the recent record shows no edge.

State: 2-D float64, one row per signal: `K_COUNT` (closed trades ever recorded), `K_POS` (next ring
slot), then `window` returns from `K_RING`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from pydantic import Field, model_validator

from core.config import FrozenConfig
from core.enums import Reason

SIGNAL_A = 0
SIGNAL_B = 1
SIGNAL_CUSTOM = 2
N_SIGNALS = 3

P_WINDOW = 0
P_MIN_TRADES = 1
P_KELLY_FRACTION = 2
P_CAP = 3
P_PRIOR_FACTOR = 4
P_PROBE_FACTOR = 5
N_PARAMS = 6

K_COUNT = 0
K_POS = 1
K_RING = 2

_NONE = int(Reason.NONE)
_INVALID = int(Reason.INVALID_INPUT)
_NON_POSITIVE = int(Reason.KELLY_NON_POSITIVE)


class KellyConfig(FrozenConfig):
    """Half-Kelly: window of closed trades per signal, warm-up, fraction, cap and warm-up factor."""

    window: int = Field(50, ge=2, le=10_000)
    min_trades: int = Field(20, ge=1)
    kelly_fraction: float = Field(0.5, gt=0, le=1)
    cap: float = Field(1.0, gt=0, le=2)
    prior_factor: float = Field(1.0, ge=0, le=2)
    # Size used while f* <= 0. 0 (the default) stops the signal, but then no new trade can ever
    # update its statistics and the lockout is permanent; a small probe keeps it sampling.
    probe_factor: float = Field(0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _check(self) -> KellyConfig:
        if self.min_trades > self.window:
            raise ValueError(f"min_trades ({self.min_trades}) must be <= window ({self.window})")
        return self

    def to_params(self) -> np.ndarray:
        """Parameters packed at the `P_*` slots."""
        p = np.empty(N_PARAMS, dtype=np.float64)
        p[P_WINDOW] = self.window
        p[P_MIN_TRADES] = self.min_trades
        p[P_KELLY_FRACTION] = self.kelly_fraction
        p[P_CAP] = self.cap
        p[P_PRIOR_FACTOR] = self.prior_factor
        p[P_PROBE_FACTOR] = self.probe_factor
        return p


def new_state(config: KellyConfig) -> np.ndarray:
    """Initial state: `N_SIGNALS` rows of `K_RING + window` zeros (no trades recorded)."""
    return np.zeros((N_SIGNALS, K_RING + config.window), dtype=np.float64)


@njit(cache=True)
def kelly_record_nb(params, state, signal_id, ret):
    """Record a closed trade's return for `signal_id`. Returns NONE, or INVALID_INPUT (nothing stored)
    for an unknown signal id or a non-finite return."""
    if signal_id < 0 or signal_id >= state.shape[0] or not math.isfinite(ret):
        return _INVALID
    window = int(params[P_WINDOW])
    pos = int(state[signal_id, K_POS])
    state[signal_id, K_RING + pos] = ret
    state[signal_id, K_POS] = (pos + 1) % window
    state[signal_id, K_COUNT] += 1.0
    return _NONE


@njit(cache=True)
def kelly_fstar_nb(params, state, signal_id):
    """Full-Kelly fraction f* over the trades in the window (NaN for an unknown id or no trades)."""
    if signal_id < 0 or signal_id >= state.shape[0]:
        return np.nan
    n = int(min(state[signal_id, K_COUNT], params[P_WINDOW]))
    if n == 0:
        return np.nan
    wins = 0
    losses = 0
    sum_win = 0.0
    sum_loss = 0.0
    for i in range(n):
        r = state[signal_id, K_RING + i]
        if r > 0.0:
            wins += 1
            sum_win += r
        elif r < 0.0:
            losses += 1
            sum_loss += r
    w = wins / n
    if wins == 0:
        return -1.0 + w  # no edge observed: f* = -(1 - W)/R is negative for any R > 0
    if losses == 0:
        return w
    payoff = (sum_win / wins) / (-sum_loss / losses)
    return w - (1.0 - w) / payoff


@njit(cache=True)
def kelly_factor_nb(params, state, signal_id):
    """(factor, reason) for sizing an entry of `signal_id`.

    factor = prior_factor until min_trades closed trades; then clip(kelly_fraction * f*, 0, cap),
    with reason KELLY_NON_POSITIVE when f* <= 0 (factor = probe_factor, 0 by default).
    Unknown id: (0.0, INVALID_INPUT).
    """
    if signal_id < 0 or signal_id >= state.shape[0]:
        return 0.0, _INVALID
    if state[signal_id, K_COUNT] < params[P_MIN_TRADES]:
        return params[P_PRIOR_FACTOR], _NONE
    f = kelly_fstar_nb(params, state, signal_id)
    if not (f > 0.0):
        return params[P_PROBE_FACTOR], _NON_POSITIVE
    return min(params[P_KELLY_FRACTION] * f, params[P_CAP]), _NONE


class HalfKelly:
    """Readable wrapper over the Kelly kernels (live code and tests)."""

    def __init__(self, config: KellyConfig | None = None):
        self.config = config or KellyConfig()
        self.params = self.config.to_params()
        self.state = new_state(self.config)

    def record(self, signal_id: int, ret: float) -> Reason:
        """Record a closed trade's return (net PnL / entry notional)."""
        return Reason(kelly_record_nb(self.params, self.state, int(signal_id), float(ret)))

    def fstar(self, signal_id: int) -> float:
        """Full-Kelly fraction over the window (NaN before the first trade)."""
        return float(kelly_fstar_nb(self.params, self.state, int(signal_id)))

    def factor(self, signal_id: int) -> tuple[float, Reason]:
        """(sizing factor, Reason) for the next entry of this signal."""
        f, reason = kelly_factor_nb(self.params, self.state, int(signal_id))
        return float(f), Reason(reason)

    def trades(self, signal_id: int) -> int:
        """Closed trades recorded for this signal (all time)."""
        return int(self.state[signal_id, K_COUNT])
