"""Daily loss limit: after realized PnL since the UTC day start falls below
-daily_loss_pct * (equity at the day start), no new entries until the next UTC day.

The day start equity is the last equity reported (bar close or trade close) before the first event
of the new UTC day, i.e. the best causal estimate of the equity at 00:00 UTC. For the very first day
it is the first equity reported (for a trade close: that equity minus the trade's PnL). The limit is
latched for the rest of the day: later gains do not lift it. Timestamps are expected non-decreasing;
an older timestamp never rolls the day back.

State (float64; day numbers and money fit exactly enough): see the `S_*` slots.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from pydantic import Field

from core.config import FrozenConfig
from core.enums import Reason
from core.time import NS_PER_DAY

P_DAILY_LOSS_PCT = 0
N_PARAMS = 1

S_DAY = 0  # UTC day number of the current day (-1 before the first event)
S_DAY_START_EQUITY = 1
S_REALIZED = 2  # realized PnL since the day start
S_HIT = 3  # 1.0 once the limit was hit in the current day
S_LAST_EQUITY = 4  # last equity reported (NaN before the first)
N_STATE = 5

_NONE = int(Reason.NONE)
_INVALID = int(Reason.INVALID_INPUT)
_DAILY_LOSS_LIMIT = int(Reason.DAILY_LOSS_LIMIT)
_NEW_DAY = int(Reason.NEW_DAY)


class DailyLossConfig(FrozenConfig):
    """Maximum realized loss per UTC day as a fraction of the equity at the day start."""

    daily_loss_pct: float = Field(0.03, gt=0, le=1)

    def to_params(self) -> np.ndarray:
        p = np.empty(N_PARAMS, dtype=np.float64)
        p[P_DAILY_LOSS_PCT] = self.daily_loss_pct
        return p


def new_state() -> np.ndarray:
    """Before the first event: no day, no equity."""
    s = np.zeros(N_STATE, dtype=np.float64)
    s[S_DAY] = -1.0
    s[S_DAY_START_EQUITY] = np.nan
    s[S_LAST_EQUITY] = np.nan
    return s


@njit(cache=True)
def daily_roll_nb(state, ts, equity_before):
    """Start a new UTC day if `ts` lies in a later day than the current one. `equity_before` is the
    equity just before this event (used only when no earlier equity is known). Returns NEW_DAY when
    a day started, else NONE."""
    day = float(ts // NS_PER_DAY)
    if day <= state[S_DAY]:
        return _NONE
    state[S_DAY] = day
    last = state[S_LAST_EQUITY]
    state[S_DAY_START_EQUITY] = last if math.isfinite(last) else equity_before
    state[S_REALIZED] = 0.0
    state[S_HIT] = 0.0
    return _NEW_DAY


@njit(cache=True)
def daily_on_bar_nb(params, state, ts, equity):
    """Bar close at `ts` (ns) with account `equity`: rolls the day, records the equity.
    Returns NEW_DAY, NONE, or INVALID_INPUT (non-finite equity: the day still rolls, the equity is
    not recorded)."""
    reason = daily_roll_nb(state, ts, equity)
    if not math.isfinite(equity):
        return _INVALID
    state[S_LAST_EQUITY] = equity
    return reason


@njit(cache=True)
def daily_on_trade_closed_nb(params, state, ts, pnl, equity):
    """A trade closed at `ts` with realized net `pnl`; `equity` is the equity after it.
    Returns DAILY_LOSS_LIMIT when this trade hits the limit, INVALID_INPUT for non-finite inputs
    (nothing changed), else NONE."""
    if not (math.isfinite(pnl) and math.isfinite(equity)):
        return _INVALID
    daily_roll_nb(state, ts, equity - pnl)
    if not math.isfinite(state[S_DAY_START_EQUITY]):
        # The day began with an invalid equity report: a NaN reference would disable the limit.
        state[S_DAY_START_EQUITY] = equity - pnl
    state[S_LAST_EQUITY] = equity
    state[S_REALIZED] += pnl
    if state[S_HIT] == 0.0 and state[S_REALIZED] < -params[P_DAILY_LOSS_PCT] * state[S_DAY_START_EQUITY]:
        state[S_HIT] = 1.0
        return _DAILY_LOSS_LIMIT
    return _NONE


@njit(cache=True)
def daily_halted_nb(state, ts):
    """True while the limit hit earlier in the UTC day of `ts` still applies."""
    return state[S_HIT] == 1.0 and float(ts // NS_PER_DAY) <= state[S_DAY]


class DailyLossLimit:
    """Readable wrapper over the daily-loss kernels."""

    def __init__(self, config: DailyLossConfig | None = None):
        self.config = config or DailyLossConfig()
        self.params = self.config.to_params()
        self.state = new_state()

    def on_bar(self, ts: int, equity: float) -> Reason:
        return Reason(daily_on_bar_nb(self.params, self.state, int(ts), float(equity)))

    def on_trade_closed(self, ts: int, pnl: float, equity: float) -> Reason:
        return Reason(daily_on_trade_closed_nb(self.params, self.state, int(ts), float(pnl), float(equity)))

    def allows_entry(self, ts: int) -> bool:
        return not daily_halted_nb(self.state, int(ts))

    @property
    def realized_today(self) -> float:
        return float(self.state[S_REALIZED])

    @property
    def day_start_equity(self) -> float:
        return float(self.state[S_DAY_START_EQUITY])
