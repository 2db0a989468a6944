"""Trading state machine: transition table, drivers, hysteresis, log and replay property."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings, strategies as st

from core.enums import Reason, TradingState as TS
from core.errors import ConfigError, RejectedError
from risk.state import TradingStateConfig, TradingStateMachine, is_valid_transition_nb

ESCALATE = {TS.FLATTEN: {Reason.KILL_SWITCH, Reason.FLATTEN_REGIME}, TS.HALTED: {Reason.DAILY_LOSS_LIMIT},
            TS.REDUCING: {Reason.REDUCE_MARGIN}}
CLEAR = {TS.HALTED: Reason.NEW_DAY, TS.FLATTEN: Reason.RECOVERED, TS.REDUCING: Reason.RECOVERED}


def expected_valid(frm, to, reason):
    if frm == to:
        return False
    if to > frm:
        return reason in ESCALATE[to]
    return reason == CLEAR[frm]


def test_transition_table_is_exactly_as_documented():
    for frm, to, reason in itertools.product(TS, TS, Reason):
        assert is_valid_transition_nb(int(frm), int(to), int(reason)) == expected_valid(frm, to, reason), (frm, to, reason)
    assert not is_valid_transition_nb(-1, 0, int(Reason.RECOVERED))
    assert not is_valid_transition_nb(0, 4, int(Reason.KILL_SWITCH))


def test_drivers_priorities_and_margin_hysteresis():
    m = TradingStateMachine()
    assert m.on_bar(1, 0.49, False, False) == TS.ACTIVE
    assert m.on_bar(2, 0.5, False, False) == TS.ACTIVE  # not above 0.5
    assert m.on_bar(3, 0.51, False, False) == TS.REDUCING
    assert m.on_bar(4, 0.3, False, False) == TS.REDUCING  # not below 0.3
    assert m.on_bar(5, math.nan, False, False) == TS.REDUCING  # unknown: latch unchanged
    assert m.on_bar(6, 0.29, False, False) == TS.ACTIVE
    assert m.on_bar(7, 0.6, False, True) == TS.HALTED  # daily halt outranks margin
    assert m.on_bar(8, 0.6, True, True) == TS.FLATTEN
    assert m.set_kill_switch(9, True) == TS.FLATTEN  # driver change inside FLATTEN: no log row
    assert m.on_bar(10, 0.6, False, True) == TS.FLATTEN  # extreme cleared, kill switch still engaged
    assert m.set_kill_switch(11, False) == TS.HALTED
    assert m.on_bar(12, 0.6, False, False) == TS.REDUCING  # new day, margin still high
    assert m.on_bar(13, 0.1, False, False) == TS.ACTIVE
    assert [(c.ts, c.from_state, c.to_state, c.reason) for c in m.changes()] == [
        (3, TS.ACTIVE, TS.REDUCING, Reason.REDUCE_MARGIN),
        (6, TS.REDUCING, TS.ACTIVE, Reason.RECOVERED),
        (7, TS.ACTIVE, TS.HALTED, Reason.DAILY_LOSS_LIMIT),
        (8, TS.HALTED, TS.FLATTEN, Reason.FLATTEN_REGIME),
        (11, TS.FLATTEN, TS.HALTED, Reason.RECOVERED),
        (12, TS.HALTED, TS.REDUCING, Reason.NEW_DAY),
        (13, TS.REDUCING, TS.ACTIVE, Reason.RECOVERED),
    ]
    assert [c.seq for c in m.changes_since(5)] == [5, 6]


def test_kill_switch_flattens_at_once_and_log_ring_overflow():
    m = TradingStateMachine(TradingStateConfig(log_capacity=3))
    for i in range(3):
        m.set_kill_switch(10 * i, True)
        m.set_kill_switch(10 * i + 1, False)
    changes = m.changes()
    assert [c.seq for c in changes] == [3, 4, 5] and changes[-1].to_state == TS.ACTIVE
    assert changes[0] == (3, 11, TS.FLATTEN, TS.ACTIVE, Reason.RECOVERED)
    with pytest.raises(RejectedError, match="overwritten"):
        m.changes_since(2)


def test_bad_state_config():
    with pytest.raises(ConfigError, match="resume_margin_ratio"):
        TradingStateConfig(reduce_margin_ratio=0.3, resume_margin_ratio=0.4)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["bar", "kill", "daily"]), st.floats(0, 1) | st.just(math.nan),
                          st.booleans(), st.booleans()), max_size=60))
def test_log_replays_to_current_state_with_only_valid_transitions(ops):
    m = TradingStateMachine()
    for ts, (op, margin, a, b) in enumerate(ops):
        if op == "bar":
            m.on_bar(ts, margin, a, b)
        elif op == "kill":
            m.set_kill_switch(ts, a)
        else:
            m.set_daily_halt(ts, a)
    state = TS.ACTIVE
    last_ts = -1
    for c in m.changes():
        assert c.from_state == state and c.ts >= last_ts
        assert expected_valid(c.from_state, c.to_state, c.reason)
        state, last_ts = c.to_state, c.ts
    assert state == m.current
