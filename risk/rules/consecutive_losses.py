"""Consecutive losses: after `half_after` (5) consecutive losing closed trades entries are sized
x `half_multiplier` (0.5); every losing trade that brings the run to >= `pause_after` (8) starts a
pause of `pause` (4h) from that trade's close: entries are refused for ts in [t_loss, t_loss + 4h)
and allowed again at exactly t_loss + 4h.

A loss is a trade with net PnL < 0, a win one with PnL > 0; a win resets the run to 0; a
break-even trade (PnL == 0) leaves it unchanged. The pause does not reset the run: after the pause
the run is still >= pause_after, so entries resume at half size until a win, and one more loss
pauses again for 4h from that loss (a losing streak that continues after a cool-down is treated as
still being one).

State (int64 because it holds a timestamp): `S_COUNT`, `S_PAUSE_UNTIL` (ns; `NO_PAUSE` when none).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from pydantic import Field, model_validator

from core.config import FrozenConfig
from core.enums import Reason
from risk.units import DurationStr, duration_ns

P_HALF_AFTER = 0
P_PAUSE_AFTER = 1
P_PAUSE_NS = 2
P_HALF_MULTIPLIER = 3
N_PARAMS = 4

S_COUNT = 0
S_PAUSE_UNTIL = 1
N_STATE = 2

NO_PAUSE = np.iinfo(np.int64).min

_NONE = int(Reason.NONE)
_INVALID = int(Reason.INVALID_INPUT)
_HALF = int(Reason.CONSECUTIVE_LOSSES_HALF)
_PAUSE = int(Reason.CONSECUTIVE_LOSSES_PAUSE)


class ConsecutiveLossesConfig(FrozenConfig):
    """Run lengths of losing trades that halve the size and that pause entries, and the pause."""

    half_after: int = Field(5, ge=1, le=1000)
    half_multiplier: float = Field(0.5, ge=0, le=1)
    pause_after: int = Field(8, ge=1, le=1000)
    pause: DurationStr = "4h"

    @model_validator(mode="after")
    def _check(self) -> ConsecutiveLossesConfig:
        if self.half_after > self.pause_after:
            raise ValueError(f"half_after ({self.half_after}) must be <= pause_after ({self.pause_after})")
        return self

    def to_params(self) -> np.ndarray:
        p = np.empty(N_PARAMS, dtype=np.float64)
        p[P_HALF_AFTER] = self.half_after
        p[P_PAUSE_AFTER] = self.pause_after
        p[P_PAUSE_NS] = duration_ns(self.pause)
        p[P_HALF_MULTIPLIER] = self.half_multiplier
        return p


def new_state() -> np.ndarray:
    """No losses, no pause."""
    s = np.zeros(N_STATE, dtype=np.int64)
    s[S_PAUSE_UNTIL] = NO_PAUSE
    return s


@njit(cache=True)
def losses_on_trade_closed_nb(params, state, ts, pnl):
    """A trade closed at `ts` (ns) with net `pnl`. Returns CONSECUTIVE_LOSSES_PAUSE when this loss
    starts a pause, INVALID_INPUT for a non-finite pnl (nothing changed), else NONE."""
    if not math.isfinite(pnl):
        return _INVALID
    if pnl > 0.0:
        state[S_COUNT] = 0
    elif pnl < 0.0:
        state[S_COUNT] += 1
        if state[S_COUNT] >= params[P_PAUSE_AFTER]:
            state[S_PAUSE_UNTIL] = ts + np.int64(params[P_PAUSE_NS])
            return _PAUSE
    return _NONE


@njit(cache=True)
def losses_check_nb(params, state, ts):
    """(allowed, size multiplier, reason) for an entry at `ts`: paused -> (False, 0,
    CONSECUTIVE_LOSSES_PAUSE); run >= half_after -> (True, half_multiplier, CONSECUTIVE_LOSSES_HALF);
    else (True, 1, NONE)."""
    if ts < state[S_PAUSE_UNTIL]:
        return False, 0.0, _PAUSE
    if state[S_COUNT] >= params[P_HALF_AFTER]:
        return True, params[P_HALF_MULTIPLIER], _HALF
    return True, 1.0, _NONE


class ConsecutiveLosses:
    """Readable wrapper over the consecutive-loss kernels."""

    def __init__(self, config: ConsecutiveLossesConfig | None = None):
        self.config = config or ConsecutiveLossesConfig()
        self.params = self.config.to_params()
        self.state = new_state()

    def on_trade_closed(self, ts: int, pnl: float) -> Reason:
        return Reason(losses_on_trade_closed_nb(self.params, self.state, int(ts), float(pnl)))

    def check(self, ts: int) -> tuple[bool, float, Reason]:
        allowed, mult, reason = losses_check_nb(self.params, self.state, int(ts))
        return bool(allowed), float(mult), Reason(reason)

    @property
    def count(self) -> int:
        return int(self.state[S_COUNT])
