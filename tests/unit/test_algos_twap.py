"""TWAP: exact schedules by hand, carry-over of late fills and ended children, dust, rejections,
parent cancel, end of schedule."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.time import NS_PER_MIN, NS_PER_S
from execution.algos import (
    CancelChild,
    ParentFinished,
    ParentStatus,
    PlaceChild,
    TwapAlgo,
    TwapParams,
)
from execution.orders import (
    CancelRejected,
    Expired,
    OrderType,
    OrderValueError,
    TimeInForce,
)
from tests.unit.test_algos_shell import NS, Shell, parent, rules, twap

D = Decimal
M = NS_PER_MIN


def cid(seq: int) -> str:
    return f"{NS}.p1.{seq}"


def test_10_btc_over_10_minutes_in_5_slices_exact_schedule():
    algo = twap()
    assert algo.schedule() == [(0, D(2)), (2 * M, D(4)), (4 * M, D(6)), (6 * M, D(8)), (8 * M, D(10))]
    sh = Shell(algo, auto_submit=True)
    placed = []
    for sec in range(0, 10 * 60 + 1, 30):  # a timer every 30 s
        for a in sh.timer(sec * NS_PER_S):
            if isinstance(a, PlaceChild):
                placed.append((a.ts, a.client_order_id, a.order.qty, a.order.type))
                sh.accept(a.client_order_id, a.ts + 1)
                sh.fill(a.client_order_id, a.order.qty, a.ts + 2)
    assert placed == [(k * 2 * M, cid(k), D(2), OrderType.MARKET) for k in range(5)]
    assert sh.finished.status is ParentStatus.FILLED and sh.finished.ts == 8 * M + 2
    assert sh.finished.filled_qty == D(10) and sh.finished.unfilled_qty == 0


def test_next_wakeup_follows_the_slices():
    algo = twap()
    assert algo.next_wakeup_ns(-5) == 0
    assert algo.next_wakeup_ns(0) == 2 * M and algo.next_wakeup_ns(3 * M) == 4 * M
    assert algo.next_wakeup_ns(9 * M) == 10 * M and algo.next_wakeup_ns(10 * M) is None


def test_uneven_split_rounds_down_and_the_last_slice_takes_the_rest():
    sh = Shell(twap(qty="1", slices=3, minutes=3), auto_submit=True)
    for m in range(3):
        sh.timer(m * M)
    assert [p.order.qty for p in sh.places()] == [D("0.333"), D("0.333"), D("0.334")]
    assert sh.places()[1].ts == M and sh.places()[2].ts == 2 * M


def test_slice_boundaries_are_ceil_of_k_duration_over_slices():
    algo = TwapAlgo(parent(TwapParams(100, 10, 3), qty="3"), rules())
    assert [t for t, _ in algo.schedule()] == [100, 104, 107]
    assert [algo.slice_at(t) for t in (99, 100, 103, 104, 106, 107, 109, 110)] == [None, 0, 0, 1, 1, 2, 2, None]


def test_late_fills_and_ended_children_carry_over_to_the_next_slice():
    sh = Shell(twap(limit="100"), auto_submit=True)
    sh.timer(0)
    assert sh.places()[0].order.type is OrderType.LIMIT and sh.places()[0].order.time_in_force is TimeInForce.GTC
    sh.accept(cid(0), 1)
    acts = sh.timer(2 * M)  # child 0 still open and unfilled: only the increment goes out
    assert [(a.client_order_id, a.order.qty) for a in acts] == [(cid(1), D(2))]
    sh.accept(cid(1), 2 * M + 1)
    sh.fill(cid(0), "0.5", 3 * M)
    sh.event(cid(0), Expired(3 * M + 1))  # the venue ended it: 1.5 unfilled is free again
    acts = sh.timer(4 * M)  # target 6 − (0.5 filled + 2 open) = 3.5
    assert [(a.client_order_id, a.order.qty) for a in acts] == [(cid(2), D("3.5"))]
    sh.accept(cid(2), 4 * M + 1)
    sh.fill(cid(1), "2", 5 * M)  # late fill of slice 1: changes nothing committed
    acts = sh.timer(6 * M)  # target 8 − (0.5 + 2 + 3.5) = 2
    assert [(a.client_order_id, a.order.qty) for a in acts] == [(cid(3), D(2))]
    sh.accept(cid(3), 6 * M + 1)
    acts = sh.timer(8 * M)
    assert [(a.client_order_id, a.order.qty) for a in acts] == [(cid(4), D(2))]
    sh.accept(cid(4), 8 * M + 1)
    sh.fill(cid(2), "3.5", 9 * M)
    # end of schedule: the working children are canceled, then the parent expires
    acts = sh.timer(10 * M)
    assert [(a.client_order_id, a.reason.startswith("TWAP schedule ended")) for a in acts] == [
        (cid(3), True), (cid(4), True)]
    assert sh.parent.status is ParentStatus.ACTIVE
    sh.canceled(cid(3), 10 * M + 1)
    acts = sh.canceled(cid(4), 10 * M + 2)
    assert isinstance(acts[-1], ParentFinished) and acts[-1].status is ParentStatus.EXPIRED
    assert acts[-1].filled_qty == D(6) and acts[-1].unfilled_qty == D(4)


def test_slice_below_min_is_skipped_and_caught_up_with_dust_merged():
    algo = TwapAlgo(parent(TwapParams(0, 3 * M, 3), qty="0.009"), rules(min_qty="0.004"))
    sh = Shell(algo, auto_submit=True)
    assert sh.timer(0) == []  # target 0.003 < min 0.004: nothing yet
    acts = sh.timer(M)  # target 0.006; the rest 0.003 could never be a child → merged: 0.009
    assert [a.order.qty for a in acts] == [D("0.009")]
    assert sh.timer(2 * M) == []  # all committed


def test_missed_slices_are_caught_up_by_one_child():
    sh = Shell(twap(), auto_submit=True)
    sh.timer(0)
    sh.fill(cid(0), "2", 1)
    acts = sh.timer(7 * M)  # no input during slices 1 and 2: slice 3's target is 8
    assert [(a.client_order_id, a.order.qty) for a in acts] == [(cid(1), D(6))]


def test_rejected_child_is_retried_next_slice_with_a_new_id_then_the_parent_fails():
    sh = Shell(twap(max_rejects=1), auto_submit=True)
    sh.timer(0)
    assert sh.rejected(cid(0), 5) == []
    assert sh.timer(M) == []  # same slice: no retry
    acts = sh.timer(2 * M)  # the rejected 2 joins slice 1's child
    assert [(a.client_order_id, a.order.qty) for a in acts] == [(cid(1), D(4))]
    sh.fill(cid(1), "1", 2 * M + 1)
    acts = sh.event(cid(1), Expired(2 * M + 2))  # ended by the venue short of its qty: 2nd failure > 1
    assert len(acts) == 1 and acts[0].status is ParentStatus.FAILED
    assert "2 child orders failed" in acts[0].reason and acts[0].filled_qty == D(1)
    assert sh.timer(4 * M) == []


def test_parent_cancel_cancels_every_open_child_and_places_nothing_after():
    sh = Shell(twap(limit="100"))
    sh.timer(0)
    sh.submit(cid(0), 1)
    sh.accept(cid(0), 2)
    sh.timer(2 * M)
    sh.submit(cid(1), 2 * M + 1)  # in flight: its cancel waits for the venue's answer
    sh.timer(4 * M)  # child 2 journaled, never submitted
    acts = sh.cancel(4 * M + 5, "strategy exit")
    assert acts[0].parent.status is ParentStatus.CANCELING
    assert [(type(a), getattr(a, "client_order_id", None)) for a in acts[1:]] == [
        (CancelChild, cid(0)), (CancelChild, cid(2))]
    assert sh.timer(6 * M) == [] and sh.timer(8 * M) == []
    acts = sh.accept(cid(1), 6 * M + 1)  # now working: cancel it
    assert [(type(a), a.client_order_id) for a in acts] == [(CancelChild, cid(1))]
    sh.canceled(cid(0), 6 * M + 2)
    acts = sh.canceled(cid(1), 6 * M + 3)
    assert acts[-1].status is ParentStatus.CANCELED and acts[-1].reason == "strategy exit"
    assert len(sh.places()) == 3
    assert sh.cancel(7 * M) == []


def test_cancel_rejected_child_gets_a_new_cancel_and_a_fill_during_cancel_counts():
    sh = Shell(twap(qty="4", slices=2, limit="100"), auto_submit=True)
    sh.timer(0)
    sh.accept(cid(0), 1)
    sh.cancel(2)
    acts = sh.event(cid(0), CancelRejected(3, "busy"))
    assert [(type(a), a.client_order_id) for a in acts] == [(CancelChild, cid(0))]
    sh.fill(cid(0), "1", 4)
    acts = sh.canceled(cid(0), 5)
    assert acts[-1].filled_qty == D(1) and acts[-1].status is ParentStatus.CANCELED


def test_parent_must_sit_on_the_lot_grid_and_clear_the_minimum():
    with pytest.raises(OrderValueError, match="not a multiple"):
        twap(qty="1.0005")
    with pytest.raises(OrderValueError, match="below the minimum"):
        TwapAlgo(parent(TwapParams(0, M, 1), qty="0.001"), rules(min_qty="0.002"))
    with pytest.raises(OrderValueError, match="below the minimum"):
        TwapAlgo(parent(TwapParams(0, M, 1), qty="0.001", min_child_qty=D("0.005")), rules())


def test_market_lot_size_rules_apply_to_market_children():
    r = rules(market_step_size=D("0.01"), market_max_qty=D("1.5"))
    sh = Shell(TwapAlgo(parent(TwapParams(0, 2 * M, 2), qty="4"), r), auto_submit=True)
    acts = sh.timer(0)  # target 2 capped at the market max 1.5
    assert [a.order.qty for a in acts] == [D("1.50")]
    sh.fill(cid(0), "1.5", 1)
    acts = sh.timer(M)  # target 4 − 1.5 = 2.5 → capped 1.5
    assert [a.order.qty for a in acts] == [D("1.50")]
