"""Property tests over random interleavings of timers, quotes, venue events on children, parent
cancels and restarts, for every algo:

- the parent is never overcommitted (Σ filled + open unfilled ≤ parent qty) — checked after every action;
- no two children share a client id (the real journal refuses a duplicate intent);
- no child after the parent was canceled or finished, no action at all after `ParentFinished`;
- the algo's view of its children equals the journal's;
- restored from the journal at any point, the algo then returns exactly the actions of the
  uninterrupted one (lockstep: every later input goes to both);
- liveness: cancel the parent, let the venue settle every child → the parent finishes.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from execution.algos import (
    IcebergAlgo,
    IcebergParams,
    ParentStatus,
    ParticipationAlgo,
    ParticipationParams,
    PegAlgo,
    PegParams,
    TwapAlgo,
    TwapParams,
    restore_algo,
)
from execution.orders import (
    Accepted,
    Canceled,
    CancelRejected,
    Expired,
    Fill,
    FillReceived,
    OrderSide,
    OrderStatus,
    Rejected,
    Submitted,
    TimedOut,
)
from tests.unit.test_algos_shell import Shell, parent, rules

D = Decimal
STEP = D("0.001")


def make(kind: str, side: OrderSide, variant: int):
    r = rules(min_qty="0.050")
    limit = D("100") if variant % 2 else None
    if kind == "twap":
        return TwapAlgo(parent(TwapParams(0, 40, 4, limit), qty="1", side=side, max_rejects=2), r)
    if kind == "iceberg":
        p = IcebergParams(D("0.3"), limit, D("0.3") if variant % 3 else D(0), seed=variant, end_ns=200 if variant % 4 == 0 else None)
        return IcebergAlgo(parent(p, qty="1", side=side, max_rejects=2), r)
    if kind == "participation":
        p = ParticipationParams(D("0.3"), D("0.4") if variant % 2 else None, limit)
        return ParticipationAlgo(parent(p, qty="1", side=side, max_rejects=2), r)
    p = PegParams(10, variant % 3, bool(variant % 2), variant % 5 != 0)
    return PegAlgo(parent(p, qty="1", side=side, max_rejects=2), r)


class Driver:
    def __init__(self, algo):
        self.sh = Shell(algo)
        self.t = 0
        self.bid = D("100.0")
        self.trade = 0
        self.last_fill: dict[str, FillReceived] = {}

    def restore_shadow(self) -> None:
        kw = {}
        if isinstance(self.sh.algo, ParticipationAlgo):
            kw["volume_since_last_child"] = self.sh.algo.volume_since_last_child
        self.sh.shadow = restore_algo(self.sh.parent, self.sh.rules, self.sh.children(), **kw)

    def fill_event(self, snap, frac: int) -> FillReceived:
        rem = snap.remaining_qty
        qty = rem if frac == 0 else (rem * frac / 5 // STEP) * STEP
        if qty <= 0:
            qty = rem
        self.trade += 1
        price = snap.order.price or self.bid
        ev = FillReceived(self.t, Fill(f"T{self.trade}", qty, price, D(0), "USDT", self.t))
        self.last_fill[snap.client_order_id] = ev
        return ev

    def child_event(self, snap, choice: int, frac: int):
        s = snap.status
        if s is OrderStatus.NEW:
            return Submitted(self.t)
        if s is OrderStatus.SUBMITTED or s is OrderStatus.UNKNOWN:
            opts = [lambda: Accepted(self.t, "v"), lambda: self.fill_event(snap, frac), lambda: Accepted(self.t, "v"),
                    lambda: Rejected(self.t, "no"), lambda: Canceled(self.t), lambda: Expired(self.t)]
            if s is OrderStatus.SUBMITTED:
                opts.append(lambda: TimedOut(self.t))
        elif s is OrderStatus.PENDING_CANCEL:
            opts = [lambda: self.fill_event(snap, frac), lambda: Canceled(self.t),
                    lambda: CancelRejected(self.t, "unknown order")]
        else:  # ACCEPTED, PARTIALLY_FILLED
            opts = [lambda: self.fill_event(snap, frac), lambda: self.fill_event(snap, 0),
                    lambda: self.fill_event(snap, frac), lambda: Canceled(self.t), lambda: Expired(self.t),
                    lambda: Accepted(self.t, "v")]
            if snap.client_order_id in self.last_fill:
                opts.append(lambda: self.last_fill[snap.client_order_id])  # a duplicate report
        return opts[choice % len(opts)]()

    def step(self, op: tuple[int, int, int]) -> None:
        x, a, b = op
        # weights: timer 5, quote 5, child event 7, restart 2, parent cancel 1 (of 20)
        kind = 0 if x < 5 else 1 if x < 10 else 2 if x < 17 else 4 if x < 19 else 3
        sh = self.sh
        if kind == 0:
            self.t += a
            sh.timer(self.t)
        elif kind == 1:
            self.t += a % 4
            self.bid += D(b - 3) * D("0.1")
            if self.bid <= 0:
                self.bid = D("100.0")
            sh.market(self.t, self.bid, self.bid + D("0.1"), D(a) / 4)
        elif kind == 2:
            open_ = [s for s in sh.children() if not s.is_terminal]
            if open_:
                snap = open_[a % len(open_)]
                self.t += b % 3
                sh.event(snap.client_order_id, self.child_event(snap, b, a % 6))
        elif kind == 3:
            self.t += 1
            canceled = sh.parent.status is not ParentStatus.ACTIVE
            acts = sh.cancel(self.t, "user")
            assert not canceled or acts == []
        else:
            self.restore_shadow()
        self.check()

    def check(self) -> None:
        sh = self.sh
        algo = sh.algo
        assert algo.committed_qty <= algo.parent.qty
        assert algo.children() == sh.children()
        assert algo.parent == sh.parent
        if sh.parent.status is not ParentStatus.ACTIVE:
            seen = False
            for act in sh.log:
                if getattr(act, "parent", None) is not None and act.parent.status is not ParentStatus.ACTIVE:
                    seen = True
                assert not (seen and type(act).__name__ == "PlaceChild"), "child placed after cancel/finish"

    def settle(self) -> None:
        """Cancel the parent and let the venue answer every child: the parent must finish."""
        sh = self.sh
        self.t += 1
        sh.cancel(self.t)
        for _ in range(50):
            open_ = [s for s in sh.children() if not s.is_terminal]
            if not open_:
                break
            snap = open_[0]
            self.t += 1
            if snap.status in (OrderStatus.SUBMITTED, OrderStatus.UNKNOWN):
                sh.event(snap.client_order_id, Accepted(self.t, "v"))
            elif snap.status is OrderStatus.PENDING_CANCEL:
                sh.event(snap.client_order_id, Canceled(self.t))
            else:
                raise AssertionError(f"{snap.client_order_id} is {snap.status} after the parent cancel")
            self.check()
        assert sh.finished is not None and sh.parent.status.is_terminal
        assert sh.finished.filled_qty + sh.finished.unfilled_qty == sh.parent.qty


ops = st.lists(st.tuples(st.integers(0, 19), st.integers(0, 15), st.integers(0, 6)), max_size=80)


@pytest.mark.parametrize("kind", ["twap", "iceberg", "participation", "peg"])
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops, variant=st.integers(0, 11), sell=st.booleans())
def test_random_interleavings_keep_every_invariant(kind, ops, variant, sell):
    drv = Driver(make(kind, OrderSide.SELL if sell else OrderSide.BUY, variant))
    drv.restore_shadow()  # a restart before anything happened
    for op in ops:
        drv.step(op)
    drv.settle()
