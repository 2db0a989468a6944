"""Limit-at-touch: post-only at the touch, re-peg on timeout / touch move, market fallback with the
exact remainder."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.errors import DataError
from execution.algos import CancelChild, ParentStatus, PegAlgo, PegParams, PlaceChild
from execution.orders import Expired, OrderSide, OrderType, TimeInForce
from tests.unit.test_algos_shell import NS, Shell, parent, rules

D = Decimal
T = 1_000  # timeout (ns)


def cid(seq: int) -> str:
    return f"{NS}.p1.{seq}"


def peg(qty="1", side=OrderSide.BUY, repegs=2, move=True, fallback=True, **kw) -> PegAlgo:
    return PegAlgo(parent(PegParams(T, repegs, move, fallback), qty=qty, side=side, **kw), rules())


def summary(acts):
    out = []
    for a in acts:
        if isinstance(a, PlaceChild):
            out.append(("place", a.client_order_id, a.order.type, a.order.qty, a.order.price))
        elif isinstance(a, CancelChild):
            out.append(("cancel", a.client_order_id))
        else:
            out.append((type(a).__name__, a.parent.status))
    return out


def test_first_child_waits_for_a_quote_and_rests_post_only_at_the_bid():
    sh = Shell(peg(), auto_submit=True)
    assert sh.timer(0) == []
    acts = sh.market(5, "100.0", "100.1")
    assert summary(acts) == [("place", cid(0), OrderType.LIMIT, D(1), D("100.0"))]
    assert acts[0].order.time_in_force is TimeInForce.POST_ONLY
    assert sh.algo.next_wakeup_ns(6) == 5 + T


def test_sell_pegs_at_the_ask():
    sh = Shell(peg(side=OrderSide.SELL), auto_submit=True)
    acts = sh.market(5, "100.0", "100.1")
    assert summary(acts) == [("place", cid(0), OrderType.LIMIT, D(1), D("100.1"))]
    sh.accept(cid(0), 6)
    assert sh.market(7, "99.9", "100.2") == []  # ask moved up: we are now better than the touch
    assert summary(sh.market(8, "99.8", "100.0")) == [("cancel", cid(0))]  # ask moved below us


def test_timeouts_repeg_at_the_new_touch_then_market_fallback_for_the_exact_remainder():
    sh = Shell(peg(repegs=2, move=False), auto_submit=True)
    sh.market(0, "100.0", "100.1")
    sh.accept(cid(0), 1)
    sh.fill(cid(0), "0.3", 2)
    assert sh.timer(T - 1) == []
    assert summary(sh.timer(T)) == [("cancel", cid(0))]
    assert sh.timer(T + 1) == []  # cancel pending: not re-sent
    assert sh.canceled(cid(0), T + 2) == []  # re-peg waits for a fresh quote
    acts = sh.market(T + 3, "100.5", "100.6")
    assert summary(acts) == [("place", cid(1), OrderType.LIMIT, D("0.7"), D("100.5"))]
    sh.accept(cid(1), T + 4)
    sh.fill(cid(1), "0.25", T + 5)
    assert summary(sh.market(2 * T + 3, "100.6", "100.7")) == [("cancel", cid(1))]
    sh.canceled(cid(1), 2 * T + 4)
    acts = sh.market(2 * T + 5, "100.6", "100.7")
    assert summary(acts) == [("place", cid(2), OrderType.LIMIT, D("0.45"), D("100.6"))]
    sh.accept(cid(2), 2 * T + 6)
    sh.fill(cid(2), "0.003", 2 * T + 7)
    sh.timer(3 * T + 5)
    # third limit ended (1 + max_repegs = 3 used): market for exactly 1 − 0.3 − 0.25 − 0.003
    acts = sh.canceled(cid(2), 3 * T + 6)
    assert summary(acts) == [("place", cid(3), OrderType.MARKET, D("0.447"), None)]
    assert sh.algo.repegs_left == 0
    acts = sh.fill(cid(3), "0.447", 3 * T + 7)
    assert summary(acts) == [("ParentFinished", ParentStatus.FILLED)]


def test_touch_move_repegs_and_counts_as_an_attempt():
    sh = Shell(peg(repegs=1), auto_submit=True)
    sh.market(0, "100.0", "100.1")
    sh.accept(cid(0), 1)
    assert sh.market(2, "99.9", "100.0") == []  # bid fell: we are at/through the touch, keep
    assert summary(sh.market(3, "100.1", "100.2")) == [("cancel", cid(0))]
    sh.canceled(cid(0), 4)
    assert summary(sh.market(5, "100.2", "100.3")) == [("place", cid(1), OrderType.LIMIT, D(1), D("100.2"))]
    sh.accept(cid(1), 6)
    sh.market(7, "100.3", "100.4")
    acts = sh.canceled(cid(1), 8)
    assert summary(acts) == [("place", cid(2), OrderType.MARKET, D(1), None)]


def test_timeout_of_an_in_flight_child_cancels_once_it_is_accepted():
    sh = Shell(peg(), auto_submit=True)
    sh.market(0, "100.0", "100.1")
    assert sh.timer(2 * T) == []  # SUBMITTED: a cancel cannot be journaled yet
    assert sh.algo.next_wakeup_ns(2 * T) is None  # no busy timer: the venue's answer drives it
    assert summary(sh.accept(cid(0), 2 * T + 1)) == [("cancel", cid(0))]


def test_post_only_rejections_are_attempts_not_failures():
    sh = Shell(peg(repegs=1, max_rejects=0), auto_submit=True)
    sh.market(0, "100.0", "100.1")
    assert sh.rejected(cid(0), 1, "post only would cross") == []
    sh.market(2, "100.1", "100.2")
    acts = sh.event(cid(1), Expired(3))  # futures GTX: expired instead of rejected
    assert summary(acts) == [("place", cid(2), OrderType.MARKET, D(1), None)]
    acts = sh.rejected(cid(2), 4)  # a market child rejected: failure 1 > max_rejects 0
    assert summary(acts) == [("ParentFinished", ParentStatus.FAILED)]


def test_rejected_market_fallback_is_retried_with_a_new_id():
    sh = Shell(peg(repegs=0, max_rejects=2), auto_submit=True)
    sh.market(0, "100.0", "100.1")
    acts = sh.rejected(cid(0), 1)  # the only limit attempt is used: the fallback goes out at once
    assert summary(acts) == [("place", cid(1), OrderType.MARKET, D(1), None)]
    assert summary(sh.rejected(cid(1), 3)) == [("place", cid(2), OrderType.MARKET, D(1), None)]
    assert summary(sh.rejected(cid(2), 4)) == [("place", cid(3), OrderType.MARKET, D(1), None)]
    assert summary(sh.rejected(cid(3), 5)) == [("ParentFinished", ParentStatus.FAILED)]


def test_without_fallback_the_parent_expires():
    sh = Shell(peg(repegs=0, fallback=False), auto_submit=True)
    sh.market(0, "100.0", "100.1")
    sh.fill(cid(0), "0.4", 1)
    sh.timer(T)
    acts = sh.canceled(cid(0), T + 1)
    assert summary(acts) == [("ParentFinished", ParentStatus.EXPIRED)] and acts[0].unfilled_qty == D("0.6")


def test_parent_cancel_during_peg():
    sh = Shell(peg(), auto_submit=True)
    sh.market(0, "100.0", "100.1")
    sh.accept(cid(0), 1)
    acts = sh.cancel(2)
    assert summary(acts) == [("ParentUpdated", ParentStatus.CANCELING), ("cancel", cid(0))]
    assert sh.canceled(cid(0), 3)[-1].parent.status is ParentStatus.CANCELED
    assert sh.market(4, "100.0", "100.1") == []


def test_off_tick_touch_fails_loudly():
    sh = Shell(peg(), auto_submit=True)
    with pytest.raises(DataError, match="tick"):
        sh.market(0, "100.05", "100.1")
