"""The account's trading state machine: ACTIVE / REDUCING / HALTED / FLATTEN with validated
transitions and a change log.

The state is derived from its driving conditions by severity (the `TradingState` int values order
them: ACTIVE 0 < REDUCING 1 < HALTED 2 < FLATTEN 3):

    kill switch engaged              -> FLATTEN   (reason KILL_SWITCH)
    extreme regime flag set          -> FLATTEN   (reason FLATTEN_REGIME)
    daily loss limit hit today       -> HALTED    (reason DAILY_LOSS_LIMIT)
    margin ratio latched high        -> REDUCING  (reason REDUCE_MARGIN)
    otherwise                        -> ACTIVE

The margin latch switches on when margin_ratio > reduce_margin_ratio and off when margin_ratio <
resume_margin_ratio (hysteresis; a NaN ratio leaves it unchanged). margin_ratio is the caller's
measure of margin use (maintenance margin / margin balance, Binance's "margin ratio": 1.0 means
liquidation).

A transition is valid only as: an escalation (to > from) whose reason is one of the drivers of the
new state listed above, or a de-escalation (to < from) whose reason says what cleared: NEW_DAY when
leaving HALTED (the daily limit clears only at a new UTC day), RECOVERED when leaving REDUCING or
FLATTEN. Deriving the state from the conditions (instead of applying events one by one) means the
machine can never be stuck in a state whose cause has gone, nor leave one whose cause remains.
Changes of the driver inside one state (kill switch released while the regime is still extreme) are
not transitions and are not logged.

Log: int64 array (capacity, 4) with columns `L_TS`, `L_FROM`, `L_TO`, `L_REASON`, written as a ring;
`S_LOG_COUNT` counts every change ever made, so rows older than `capacity` changes are overwritten
(the live shell persists changes as they happen via `TradingStateMachine.changes_since`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit
from pydantic import Field, model_validator

from core.config import FrozenConfig
from core.enums import Reason, TradingState
from core.errors import RejectedError

P_REDUCE_MARGIN = 0
P_RESUME_MARGIN = 1
N_PARAMS = 2

S_STATE = 0
S_KILL = 1
S_EXTREME = 2
S_MARGIN_HIGH = 3
S_DAILY_HALT = 4
S_LOG_COUNT = 5
N_STATE = 6

L_TS = 0
L_FROM = 1
L_TO = 2
L_REASON = 3
N_LOG_COLUMNS = 4

ACTIVE = int(TradingState.ACTIVE)
REDUCING = int(TradingState.REDUCING)
HALTED = int(TradingState.HALTED)
FLATTEN = int(TradingState.FLATTEN)

_NONE = int(Reason.NONE)
_KILL = int(Reason.KILL_SWITCH)
_REGIME = int(Reason.FLATTEN_REGIME)
_DAILY = int(Reason.DAILY_LOSS_LIMIT)
_MARGIN = int(Reason.REDUCE_MARGIN)
_NEW_DAY = int(Reason.NEW_DAY)
_RECOVERED = int(Reason.RECOVERED)


class TradingStateConfig(FrozenConfig):
    """Margin-ratio hysteresis of the REDUCING state and the size of the change log."""

    reduce_margin_ratio: float = Field(0.5, gt=0, le=1)
    resume_margin_ratio: float = Field(0.3, ge=0, le=1)
    log_capacity: int = Field(4096, ge=1, le=10_000_000)

    @model_validator(mode="after")
    def _check(self) -> TradingStateConfig:
        if self.resume_margin_ratio >= self.reduce_margin_ratio:
            raise ValueError(f"resume_margin_ratio ({self.resume_margin_ratio}) must be < reduce_margin_ratio "
                             f"({self.reduce_margin_ratio}) for the hysteresis")
        return self

    def to_params(self) -> np.ndarray:
        p = np.empty(N_PARAMS, dtype=np.float64)
        p[P_REDUCE_MARGIN] = self.reduce_margin_ratio
        p[P_RESUME_MARGIN] = self.resume_margin_ratio
        return p


def new_state() -> np.ndarray:
    """ACTIVE, no condition set, empty log."""
    return np.zeros(N_STATE, dtype=np.int64)


def new_log(config: TradingStateConfig) -> np.ndarray:
    """Empty change log of `log_capacity` rows."""
    return np.zeros((config.log_capacity, N_LOG_COLUMNS), dtype=np.int64)


@njit(cache=True)
def is_valid_transition_nb(frm, to, reason):
    """True when (from, to, reason) is an allowed transition (see the module docstring)."""
    if frm < ACTIVE or frm > FLATTEN or to < ACTIVE or to > FLATTEN or frm == to:
        return False
    if to > frm:
        if to == FLATTEN:
            return reason == _KILL or reason == _REGIME
        if to == HALTED:
            return reason == _DAILY
        return reason == _MARGIN
    if frm == HALTED:
        return reason == _NEW_DAY
    return reason == _RECOVERED


@njit(cache=True)
def sm_transition_nb(state, log, ts, to, reason):
    """Apply and log one transition at `ts` if valid; returns whether it was applied."""
    frm = state[S_STATE]
    if not is_valid_transition_nb(frm, to, reason):
        return False
    row = state[S_LOG_COUNT] % log.shape[0]
    log[row, L_TS] = ts
    log[row, L_FROM] = frm
    log[row, L_TO] = to
    log[row, L_REASON] = reason
    state[S_LOG_COUNT] += 1
    state[S_STATE] = to
    return True


@njit(cache=True)
def sm_target_nb(state):
    """(state, reason) the current conditions call for."""
    if state[S_KILL] != 0:
        return FLATTEN, _KILL
    if state[S_EXTREME] != 0:
        return FLATTEN, _REGIME
    if state[S_DAILY_HALT] != 0:
        return HALTED, _DAILY
    if state[S_MARGIN_HIGH] != 0:
        return REDUCING, _MARGIN
    return ACTIVE, _NONE


@njit(cache=True)
def sm_evaluate_nb(state, log, ts):
    """Move to the state the conditions call for (logging the change); returns the state."""
    to, reason = sm_target_nb(state)
    frm = state[S_STATE]
    if to != frm:
        if to < frm:
            reason = _NEW_DAY if frm == HALTED else _RECOVERED
        sm_transition_nb(state, log, ts, to, reason)
    return state[S_STATE]


@njit(cache=True)
def sm_on_bar_nb(params, state, log, ts, margin_ratio, extreme, daily_halt):
    """Bar close at `ts`: margin_ratio (NaN = unknown, latch unchanged), extreme regime flag (bool),
    daily_halt (bool: the daily loss limit applies now). Returns the trading state."""
    margin_high = state[S_MARGIN_HIGH]
    if not math.isnan(margin_ratio):
        if margin_ratio > params[P_REDUCE_MARGIN]:
            margin_high = 1
        elif margin_ratio < params[P_RESUME_MARGIN]:
            margin_high = 0
    ext = 1 if extreme else 0
    halt = 1 if daily_halt else 0
    # Conditions unchanged (the common case): the state is already the one they call for.
    if margin_high == state[S_MARGIN_HIGH] and ext == state[S_EXTREME] and halt == state[S_DAILY_HALT]:
        return state[S_STATE]
    state[S_MARGIN_HIGH] = margin_high
    state[S_EXTREME] = ext
    state[S_DAILY_HALT] = halt
    return sm_evaluate_nb(state, log, ts)


@njit(cache=True)
def sm_set_daily_halt_nb(state, log, ts, halted):
    """Set the daily-loss condition at `ts` (e.g. when a trade close hits the limit). Returns the state."""
    state[S_DAILY_HALT] = 1 if halted else 0
    return sm_evaluate_nb(state, log, ts)


@njit(cache=True)
def sm_set_kill_switch_nb(state, log, ts, engaged):
    """Engage (FLATTEN at once) or release the operator's kill switch at `ts`. Returns the state."""
    state[S_KILL] = 1 if engaged else 0
    return sm_evaluate_nb(state, log, ts)


class StateChange(NamedTuple):
    """One logged trading-state change."""

    seq: int  # 0-based sequence number of the change
    ts: int
    from_state: TradingState
    to_state: TradingState
    reason: Reason


def log_changes(state: np.ndarray, log: np.ndarray, since: int = 0) -> list[StateChange]:
    """Changes with sequence number >= `since` from a state/log pair; raises `RejectedError` when some
    of them were already overwritten in the ring."""
    count = int(state[S_LOG_COUNT])
    capacity = log.shape[0]
    first_kept = max(0, count - capacity)
    if since < first_kept:
        raise RejectedError(f"state changes {since}..{first_kept - 1} were overwritten "
                            f"(log capacity {capacity}); read them more often or raise log_capacity")
    out = []
    for seq in range(max(since, 0), count):
        row = log[seq % capacity]
        out.append(StateChange(seq, int(row[L_TS]), TradingState(int(row[L_FROM])),
                               TradingState(int(row[L_TO])), Reason(int(row[L_REASON]))))
    return out


class TradingStateMachine:
    """Readable wrapper over the state-machine kernels."""

    def __init__(self, config: TradingStateConfig | None = None):
        self.config = config or TradingStateConfig()
        self.params = self.config.to_params()
        self.state = new_state()
        self.log = new_log(self.config)

    @property
    def current(self) -> TradingState:
        return TradingState(int(self.state[S_STATE]))

    def on_bar(self, ts: int, margin_ratio: float, extreme: bool, daily_halt: bool) -> TradingState:
        return TradingState(sm_on_bar_nb(self.params, self.state, self.log, int(ts), float(margin_ratio),
                                         bool(extreme), bool(daily_halt)))

    def set_daily_halt(self, ts: int, halted: bool) -> TradingState:
        return TradingState(sm_set_daily_halt_nb(self.state, self.log, int(ts), bool(halted)))

    def set_kill_switch(self, ts: int, engaged: bool) -> TradingState:
        return TradingState(sm_set_kill_switch_nb(self.state, self.log, int(ts), bool(engaged)))

    def changes(self) -> list[StateChange]:
        """Every change still in the log, oldest first."""
        count = int(self.state[S_LOG_COUNT])
        return log_changes(self.state, self.log, max(0, count - self.log.shape[0]))

    def changes_since(self, seq: int) -> list[StateChange]:
        """Changes with sequence number >= seq (for a shell that persists them incrementally)."""
        return log_changes(self.state, self.log, seq)
