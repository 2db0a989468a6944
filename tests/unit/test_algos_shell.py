"""A minimal shell that carries out algo actions against a real `OrderJournal` (the protocol of
docs/algos.md), used by every algo test; plus tests of the shell contract itself (restore from the
journal, no duplicate client ids, crash between decision and journaling)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.enums import Market
from core.time import NS_PER_MIN
from execution.algos import (
    CancelChild,
    ExecutionAlgo,
    ParentFinished,
    ParentOrder,
    ParentStatus,
    ParentUpdated,
    PlaceChild,
    TwapAlgo,
    TwapParams,
    children_of,
    restore_algo,
)
from execution.orders import (
    Accepted,
    Canceled,
    CancelRequested,
    DuplicateClientOrderIdError,
    Fill,
    FillReceived,
    OrderJournal,
    OrderSide,
    OrderStatus,
    Rejected,
    Submitted,
    SymbolRules,
    validate_order,
)

D = Decimal
NS = "t0000001"


def rules(step: str = "0.001", min_qty: str = "0.001", tick: str = "0.1", **kw) -> SymbolRules:
    return SymbolRules(symbol="BTCUSDT", market=Market.USDM, tick_size=D(tick), step_size=D(step),
                       min_qty=D(min_qty), **kw)


def parent(params, qty: str = "10", side: OrderSide = OrderSide.BUY, pid: str = "p1", **kw) -> ParentOrder:
    return ParentOrder(parent_id=pid, namespace=NS, strategy_id="strat", symbol="BTCUSDT", side=side,
                       qty=D(qty), params=params, ts_created=0, **kw)


class Shell:
    """Journals PlaceChild intents, applies CancelRequested for CancelChild, keeps the persisted
    parent, forwards every journaled child event to the algo(s). With a shadow algo (a restored
    copy), every input goes to both and their actions must be identical."""

    def __init__(self, algo: ExecutionAlgo, *, auto_submit: bool = False):
        self.algo = algo
        self.shadow: ExecutionAlgo | None = None
        self.rules = algo.rules
        self.journal = OrderJournal.in_memory()
        self.parent = algo.parent
        self.log: list = []  # every action, in order
        self.finished: ParentFinished | None = None
        self.auto_submit = auto_submit
        self._trade = 0

    # --- driving -----------------------------------------------------------------------------
    def _call(self, name: str, *args, **kw) -> list:
        acts = getattr(self.algo, name)(*args, **kw)
        if self.shadow is not None:
            shadow_acts = getattr(self.shadow, name)(*args, **kw)
            assert shadow_acts == acts, f"restored algo diverged on {name}{args}: {shadow_acts} != {acts}"
        self._carry_out(acts)
        return acts

    def _carry_out(self, acts: list) -> None:
        for a in acts:
            assert self.finished is None, f"action after ParentFinished: {a}"
            self.log.append(a)
            if isinstance(a, PlaceChild):
                assert self.parent.status is ParentStatus.ACTIVE, "child placed while the parent is not active"
                # every child passes local validation unchanged (step, min/max, tick, post-only rules)
                assert validate_order(a.request, {self.rules.symbol: self.rules}, available=None) == a.request
                self.journal.record_intent(a.order)  # raises DuplicateClientOrderIdError on a reused id
                if self.auto_submit:
                    self.event(a.client_order_id, Submitted(a.ts))
            elif isinstance(a, CancelChild):
                self.event(a.client_order_id, CancelRequested(a.ts))
            elif isinstance(a, ParentUpdated):
                self.parent = a.parent
            elif isinstance(a, ParentFinished):
                self.parent = a.parent
                self.finished = a
            self.check_invariants()

    def timer(self, now: int) -> list:
        return self._call("on_timer", now)

    def market(self, ts: int, bid=None, ask=None, volume="0") -> list:
        return self._call("on_market", ts, None if bid is None else D(str(bid)),
                          None if ask is None else D(str(ask)), D(str(volume)))

    def cancel(self, now: int, reason: str = "canceled") -> list:
        return self._call("cancel", now, reason)

    def event(self, cid: str, ev) -> list:
        self.journal.apply(cid, ev)
        return self._call("on_child_event", cid, ev)

    # --- venue shorthands --------------------------------------------------------------------
    def submit(self, cid: str, ts: int) -> list:
        return self.event(cid, Submitted(ts))

    def accept(self, cid: str, ts: int) -> list:
        return self.event(cid, Accepted(ts, "v-" + cid))

    def fill(self, cid: str, qty, ts: int, price="100") -> list:
        self._trade += 1
        return self.event(cid, FillReceived(ts, Fill(f"T{self._trade}", D(str(qty)), D(str(price)), D(0), "USDT", ts)))

    def canceled(self, cid: str, ts: int) -> list:
        return self.event(cid, Canceled(ts))

    def rejected(self, cid: str, ts: int, reason: str = "venue said no") -> list:
        return self.event(cid, Rejected(ts, reason))

    # --- views -------------------------------------------------------------------------------
    def children(self):
        return children_of(self.parent, self.journal.orders())

    def places(self) -> list[PlaceChild]:
        return [a for a in self.log if isinstance(a, PlaceChild)]

    def cancels(self) -> list[CancelChild]:
        return [a for a in self.log if isinstance(a, CancelChild)]

    def open_cids(self) -> list[str]:
        return [s.client_order_id for s in self.children() if not s.is_terminal]

    def restore(self, **kw) -> ExecutionAlgo:
        """Replace the algo by one rebuilt from the journal and the persisted parent (a restart)."""
        self.algo = restore_algo(self.parent, self.rules, self.children(), **kw)
        return self.algo

    def check_invariants(self) -> None:
        kids = self.children()
        committed = sum((s.filled_qty + (s.remaining_qty if not s.is_terminal else 0) for s in kids), D(0))
        assert committed <= self.parent.qty, f"overcommitted: {committed} > {self.parent.qty}"
        cids = [s.client_order_id for s in kids]
        assert len(cids) == len(set(cids))


def twap(qty="10", slices=5, minutes=10, limit=None, **kw) -> TwapAlgo:
    return TwapAlgo(parent(TwapParams(0, minutes * NS_PER_MIN, slices, limit), qty=qty, **kw), rules())


# --- the shell contract ---------------------------------------------------------------------------
def test_restart_mid_twap_resumes_with_next_sequence_and_no_duplicates():
    sh = Shell(twap(), auto_submit=True)
    for m in range(5):  # slices 0, 1, 2 placed (0, 2, 4 min)
        sh.timer(m * NS_PER_MIN)
        for cid in sh.open_cids():
            sh.accept(cid, m * NS_PER_MIN + 1)
            sh.fill(cid, "2", m * NS_PER_MIN + 2)
    assert [p.client_order_id for p in sh.places()] == [f"{NS}.p1.0", f"{NS}.p1.1", f"{NS}.p1.2"]
    algo = sh.restore()
    assert algo.next_sequence == 3 and algo.filled_qty == D(6)
    assert sh.journal.next_sequence(NS, "p1") == algo.next_sequence
    assert sh.timer(5 * NS_PER_MIN) == []  # still slice 2: nothing new
    acts = sh.timer(6 * NS_PER_MIN)
    assert [(a.client_order_id, a.order.qty) for a in acts] == [(f"{NS}.p1.3", D(2))]


def test_restart_between_decision_and_journal_reissues_the_same_child():
    sh = Shell(twap(), auto_submit=True)
    sh.timer(0)
    lost = sh.algo.on_timer(2 * NS_PER_MIN)  # decided, but the process died before journaling it
    assert len(lost) == 1
    sh.restore()
    again = sh.timer(2 * NS_PER_MIN + 5)
    # same id (never journaled, so never sent); the decision time is the new one
    assert again[0].client_order_id == lost[0].client_order_id and again[0].order.qty == lost[0].order.qty


def test_restart_with_an_unjournaled_id_would_be_refused_by_the_journal():
    sh = Shell(twap(), auto_submit=True)
    sh.timer(0)
    stale = TwapAlgo(sh.parent, sh.rules)  # wrong: a fresh algo instead of restore → reuses sequence 0
    with pytest.raises(DuplicateClientOrderIdError):
        sh.journal.record_intent(stale.on_timer(0)[0].order)


def test_restore_of_a_canceling_parent_sends_no_new_child_and_finishes():
    sh = Shell(twap(limit="100"), auto_submit=True)
    sh.timer(0)
    sh.accept(f"{NS}.p1.0", 1)
    sh.cancel(10, "user")
    assert sh.parent.status is ParentStatus.CANCELING
    assert [c.client_order_id for c in sh.cancels()] == [f"{NS}.p1.0"]
    sh.restore()
    assert sh.timer(4 * NS_PER_MIN) == []  # cancel already pending: not re-sent, nothing new
    acts = sh.canceled(f"{NS}.p1.0", 4 * NS_PER_MIN + 1)
    assert isinstance(acts[-1], ParentFinished) and acts[-1].status is ParentStatus.CANCELED
    assert acts[-1].reason == "user" and acts[-1].unfilled_qty == D(10)


def test_restore_refuses_foreign_or_overcommitting_children():
    sh = Shell(twap(), auto_submit=True)
    sh.timer(0)
    other = parent(TwapParams(0, 10 * NS_PER_MIN, 5), pid="p2")
    with pytest.raises(Exception, match="not a child"):
        TwapAlgo.restore(other, sh.rules, sh.journal.orders())
    small = parent(TwapParams(0, 10 * NS_PER_MIN, 5), qty="1")
    with pytest.raises(Exception, match="above the parent quantity"):
        TwapAlgo.restore(small, sh.rules, sh.children())


def test_children_of_skips_foreign_orders():
    sh = Shell(twap(), auto_submit=True)
    sh.timer(0)
    assert [s.client_order_id for s in children_of(sh.parent, sh.journal.orders())] == [f"{NS}.p1.0"]
    assert children_of(parent(TwapParams(0, 10, 5), pid="zz"), sh.journal.orders()) == []
    assert sh.children()[0].status is OrderStatus.SUBMITTED


def test_finished_parent_ignores_inputs_and_rejects_unknown_children():
    sh = Shell(twap(qty="2", slices=1), auto_submit=True)
    sh.timer(0)
    sh.fill(f"{NS}.p1.0", "2", 1)
    assert sh.finished is not None and sh.finished.status is ParentStatus.FILLED
    assert sh.algo.on_timer(NS_PER_MIN) == [] and sh.algo.cancel(NS_PER_MIN) == []
    with pytest.raises(Exception, match="not one of its children"):
        sh.algo.on_child_event("x.y.1", Rejected(5, "?"))


def test_child_refused_by_local_validation_stops_the_parent_without_a_loop():
    from execution.algos import IcebergAlgo, IcebergParams
    from execution.orders import OrderRejected

    strict = rules(min_notional=D("100"))  # 0.3 × 100 = 30 < 100: every clip is refused
    algo = IcebergAlgo(parent(IcebergParams(D("0.3"), D("100")), qty="1"), strict)
    sh = Shell(algo)
    refused = sh.algo.on_timer(0)  # the shell validates BEFORE journaling the intent
    assert len(refused) == 1
    with pytest.raises(OrderRejected) as err:
        validate_order(refused[0].request, {"BTCUSDT": strict}, available=None)
    # protocol: journal the intent (NEW, never sent, id consumed), then cancel the parent
    sh.journal.record_intent(refused[0].order)
    acts = sh.cancel(1, f"child {refused[0].client_order_id} refused: {err.value.reason.value}")
    assert [type(a).__name__ for a in acts] == ["ParentUpdated", "CancelChild"]
    assert sh.finished is not None and sh.finished.status is ParentStatus.CANCELED
    assert "notional_below_min" in sh.finished.reason and len(sh.places()) == 0
