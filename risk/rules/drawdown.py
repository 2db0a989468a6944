"""Drawdown throttle: size x `size_multiplier` (0.25) while the drawdown from the rolling peak of
bar-close equity is large, with hysteresis.

- drawdown = 1 - equity / peak, where peak is the highest bar-close equity (this bar included) in
  the buckets [b - n + 1, b] of `peak_resolution` (1h; b = bucket of this bar, n = peak_window /
  peak_resolution = 168 for 7d). The look-back therefore covers between 167 and 168 hours: a causal,
  compact state (one max per hour in a ring) instead of every bar of the last 7 days.
- The throttle turns on when drawdown > `throttle_drawdown` (8%) and off when drawdown <
  `release_drawdown` (4%), evaluated at every bar close; in between it keeps its previous value.
  The spec's other release condition, "a new equity high", is contained in this one: a bar whose
  equity is a new high is its own peak (drawdown 0 < 4%). The rolling peak can also fall as an old
  high leaves the window, which can release the throttle without a new high; that is intended (the
  peak is a 7-day one).

Per bar the peak is max(max of the other in-window buckets, max of the current bucket); the first
part is recomputed from the ring only when a new bucket starts (O(n) once per hour, O(1) per bar).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from pydantic import Field, model_validator

from core.config import FrozenConfig
from core.enums import Reason
from risk.units import DurationStr, duration_ns

P_THROTTLE_DD = 0
P_RELEASE_DD = 1
P_MULTIPLIER = 2
P_BUCKET_NS = 3
P_N_BUCKETS = 4
N_PARAMS = 5

S_THROTTLED = 0
S_DRAWDOWN = 1
S_PEAK = 2
S_CUR_BUCKET = 3  # bucket number of the latest bar (-inf before the first)
S_CUR_MAX = 4  # highest equity in the current bucket
S_OLDER_MAX = 5  # highest equity of the other buckets in the window (-inf if none)
S_RING = 6  # ring: n bucket maxima, then their n bucket numbers
N_HEADER = 6

_NONE = int(Reason.NONE)
_INVALID = int(Reason.INVALID_INPUT)
_THROTTLE = int(Reason.DRAWDOWN_THROTTLE)
_RECOVERED = int(Reason.RECOVERED)


class DrawdownThrottleConfig(FrozenConfig):
    """Drawdown levels (fractions) that switch the throttle on and off, and the rolling peak window."""

    throttle_drawdown: float = Field(0.08, gt=0, lt=1)
    release_drawdown: float = Field(0.04, ge=0, lt=1)
    size_multiplier: float = Field(0.25, ge=0, le=1)
    peak_window: DurationStr = "7d"
    peak_resolution: DurationStr = "1h"

    @model_validator(mode="after")
    def _check(self) -> DrawdownThrottleConfig:
        if self.release_drawdown >= self.throttle_drawdown:
            raise ValueError(f"release_drawdown ({self.release_drawdown}) must be < throttle_drawdown "
                             f"({self.throttle_drawdown}) for the hysteresis")
        w, r = duration_ns(self.peak_window), duration_ns(self.peak_resolution)
        if w % r != 0 or not 1 <= w // r <= 100_000:
            raise ValueError(f"peak_window ({self.peak_window}) must be a multiple of peak_resolution "
                             f"({self.peak_resolution}), 1 to 100000 buckets")
        return self

    @property
    def n_buckets(self) -> int:
        return duration_ns(self.peak_window) // duration_ns(self.peak_resolution)

    def to_params(self) -> np.ndarray:
        p = np.empty(N_PARAMS, dtype=np.float64)
        p[P_THROTTLE_DD] = self.throttle_drawdown
        p[P_RELEASE_DD] = self.release_drawdown
        p[P_MULTIPLIER] = self.size_multiplier
        p[P_BUCKET_NS] = duration_ns(self.peak_resolution)
        p[P_N_BUCKETS] = self.n_buckets
        return p


def new_state(config: DrawdownThrottleConfig) -> np.ndarray:
    """Not throttled, no equity seen."""
    n = config.n_buckets
    s = np.zeros(N_HEADER + 2 * n, dtype=np.float64)
    s[S_PEAK] = np.nan
    s[S_CUR_BUCKET] = -np.inf
    s[S_CUR_MAX] = -np.inf
    s[S_OLDER_MAX] = -np.inf
    s[S_RING:S_RING + n] = -np.inf
    s[S_RING + n:] = -np.inf
    return s


@njit(cache=True)
def drawdown_on_bar_nb(params, state, ts, equity):
    """Bar close at `ts` (ns) with `equity`. Returns DRAWDOWN_THROTTLE when the throttle turns on,
    RECOVERED when it turns off, INVALID_INPUT for non-finite equity (nothing changed), else NONE."""
    if not math.isfinite(equity):
        return _INVALID
    n = int(params[P_N_BUCKETS])
    b = ts // np.int64(params[P_BUCKET_NS])
    if b > state[S_CUR_BUCKET]:
        lo = b - n + 1
        older = -np.inf
        for i in range(n):
            bucket = state[S_RING + n + i]
            if bucket >= lo and state[S_RING + i] > older:
                older = state[S_RING + i]
        state[S_OLDER_MAX] = older
        state[S_CUR_BUCKET] = b
        state[S_CUR_MAX] = equity
        slot = b % n
        state[S_RING + n + slot] = b
    else:
        # A bar stamped in an older bucket than the latest (out of order) counts in the latest one.
        slot = int(state[S_CUR_BUCKET]) % n
        state[S_CUR_MAX] = max(state[S_CUR_MAX], equity)
    state[S_RING + slot] = state[S_CUR_MAX]
    peak = max(state[S_OLDER_MAX], state[S_CUR_MAX])
    state[S_PEAK] = peak
    dd = 1.0 - equity / peak if peak > 0.0 else 0.0
    state[S_DRAWDOWN] = dd
    if state[S_THROTTLED] == 0.0:
        if dd > params[P_THROTTLE_DD]:
            state[S_THROTTLED] = 1.0
            return _THROTTLE
    elif dd < params[P_RELEASE_DD]:
        state[S_THROTTLED] = 0.0
        return _RECOVERED
    return _NONE


@njit(cache=True)
def drawdown_check_nb(params, state):
    """(size multiplier, reason): (size_multiplier, DRAWDOWN_THROTTLE) while throttled, else (1, NONE)."""
    if state[S_THROTTLED] == 1.0:
        return params[P_MULTIPLIER], _THROTTLE
    return 1.0, _NONE


class DrawdownThrottle:
    """Readable wrapper over the drawdown-throttle kernels."""

    def __init__(self, config: DrawdownThrottleConfig | None = None):
        self.config = config or DrawdownThrottleConfig()
        self.params = self.config.to_params()
        self.state = new_state(self.config)

    def on_bar(self, ts: int, equity: float) -> Reason:
        return Reason(drawdown_on_bar_nb(self.params, self.state, int(ts), float(equity)))

    def check(self) -> tuple[float, Reason]:
        mult, reason = drawdown_check_nb(self.params, self.state)
        return float(mult), Reason(reason)

    @property
    def throttled(self) -> bool:
        return bool(self.state[S_THROTTLED] == 1.0)

    @property
    def drawdown(self) -> float:
        return float(self.state[S_DRAWDOWN])

    @property
    def peak(self) -> float:
        return float(self.state[S_PEAK])
