"""`AlgoRunner` end to end: execution algos → OrderManager → CcxtVenue (the REAL async ccxt client) →
the emulator with a manual clock, the runner's clock injected (a manual ns clock shared with the
manager). Checks read the emulator's own books, fills and request log.

- a TWAP of N slices runs to completion: child times and sizes as the schedule says, fills = the tape;
- RESTART DRILL: the runner dies in the middle of the TWAP (the task is killed while a child's ack
  was lost, or between slices while fills happen); new objects on the same SQLite file recover and
  the TWAP completes: every child id exists exactly once at the venue, none was sent twice, total
  filled = parent qty, journal / ledger / venue agree;
- a parent cancel cancels every open child at the venue; an iceberg and a peg parent complete.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from decimal import Decimal

import pytest

from core.time import NS_PER_S
from emulator import FaultRule
from emulator.testing import expected_market_fills
from execution.algo_runner import AlgoRunner, ParentStore
from execution.algos import (
    IcebergParams,
    ParentOrder,
    ParentStatus,
    PegParams,
    PlaceChild,
    TwapAlgo,
    TwapParams,
)
from execution.order_manager import OrderManager, never_reached_venue
from execution.orders import OrderSide, OrderStatus, OrderType, TimeInForce
from tests.support.order_manager import (
    BTC,
    ETH,
    FAST,
    NAMESPACE,
    Harness,
    assert_agreement,
    rules_of,
    run,
    spot_baseline,
    start_emulator,
    venue_fills,
    venue_orders,
)

pytestmark = [pytest.mark.network_local, pytest.mark.timeout(60)]
D = Decimal
T0 = 1_700_000_000 * NS_PER_S
MIN = 60 * NS_PER_S
TICK = D("0.1")


class ManualClock:
    """UTC ns that move only when the test says so (runner and manager share it)."""

    def __init__(self, t: int):
        self.t = t

    def __call__(self) -> int:
        return self.t

    def advance(self, ns: int) -> None:
        self.t += ns


class Stack:
    """Emulator harness + OrderManager (manual clock) + ParentStore + AlgoRunner on one SQLite file.
    `start()` / `recover()` build new objects on the same file (a restart)."""

    def __init__(self, emu, market: str, tmp_path):
        self.emu, self.market = emu, market
        self.h = Harness(emu, market, tmp_path / "journal.db")
        self.clock = ManualClock(T0)
        self.store: ParentStore | None = None
        self.runner: AlgoRunner | None = None

    def _open(self) -> OrderManager:
        h = self.h
        h.venue = h.make_venue()
        base = {BTC: "BTC", ETH: "ETH"} if self.market == "spot" else None
        h.om = OrderManager.open(h.journal_path, h.venue, rules_of(self.emu), namespace=NAMESPACE, config=FAST,
                                 clock=self.clock, base_assets=base)
        self.store = ParentStore.open_sqlite(h.journal_path)
        return h.om

    def start(self) -> AlgoRunner:
        self.runner = AlgoRunner(self._open(), self.store, clock=self.clock, reference_price=self.h.last)
        return self.runner

    async def recover(self) -> AlgoRunner:
        om = self._open()
        self.runner = await AlgoRunner.recover(om, self.store, clock=self.clock, reference_price=self.h.last)
        return self.runner

    async def kill(self) -> None:
        """The process dies: runner, manager and parent store are dropped, no method of theirs runs
        again. Only what the OS does at death is done: the journal's file lock is released (the
        lock is per open file, so a second journal in this process could not open otherwise) and
        the sockets close."""
        self.h.om.journal.close()
        await self.h.venue.close()
        self.runner = self.store = self.h.om = self.h.venue = None

    async def close(self) -> None:
        await self.h.close()
        if self.store is not None:
            self.store.close()

    async def tick(self, dt_s: float = 10, trades: int = 3, touch: bool = False) -> None:
        """The market moves `trades` trades, the clock `dt_s`; (a quote,) then one runner step."""
        if trades:
            self.emu.advance_trades(BTC, trades)
        self.clock.advance(int(dt_s * NS_PER_S))
        if touch:
            last = self.h.last()
            await self.runner.on_market(BTC, last - TICK, last + TICK, D(0))
        await self.runner.step()


def parent(pid: str, params, qty: str, side: OrderSide = OrderSide.BUY, **kw) -> ParentOrder:
    return ParentOrder(parent_id=pid, namespace=NAMESPACE, strategy_id="algo-test", symbol=BTC, side=side,
                       qty=D(qty), params=params, ts_created=T0, **kw)


def child_ids(st: Stack, pid: str) -> list[str]:
    return [s.client_order_id for s in st.runner.children(pid)]


def assert_each_child_once_at_venue(st: Stack, pid: str, n: int) -> None:
    cids = [f"{NAMESPACE}.{pid}.{k}" for k in range(n)]
    assert child_ids(st, pid) == cids
    at_venue = Counter(o.client_id for o in venue_orders(st.emu))
    posted = Counter(r.params["newClientOrderId"] for r in st.emu.records("order") if r.method == "POST")
    for cid in cids:
        assert at_venue[cid] == 1, (cid, at_venue)
        assert posted[cid] == 1, (cid, posted)  # sent exactly once: never re-sent


def assert_journal_matches_venue(st: Stack, pid: str) -> None:
    by_cid = {o.client_id: o for o in venue_orders(st.emu)}
    oid_to_cid = {o.order_id: o.client_id for o in by_cid.values()}
    trades = Counter(oid_to_cid[f.order_id] for f in venue_fills(st.emu))
    for s in st.runner.children(pid):
        o = by_cid[s.client_order_id]
        assert s.filled_qty == D(f"{o.executed:.8f}") and len(s.fills) == trades[s.client_order_id]
        assert s.status.value == o.status or (s.status is OrderStatus.CANCELED and o.status == "CANCELED")


def test_twap_runs_to_completion_on_schedule_with_tape_fills(tmp_path):
    emu = start_emulator("usdm")
    st = Stack(emu, "usdm", tmp_path)

    async def body():
        runner = st.start()
        try:
            slices = 5
            p = parent("twap1", TwapParams(T0, 5 * MIN, slices), "0.050")
            schedule = TwapAlgo(p, runner.om.rules[BTC]).schedule()
            await runner.start_parent(p)
            expected: dict[str, list] = {}
            exp = expected_market_fills(emu, BTC, +1, 0.010)  # what a 0.010 market buy placed now gets
            expected[f"{NAMESPACE}.twap1.0"] = exp
            while runner.run_of("twap1").finished is None and st.clock() < T0 + 6 * MIN:
                before = len(child_ids(st, "twap1"))
                emu.advance_trades(BTC, 3)
                exp = expected_market_fills(emu, BTC, +1, 0.010)
                st.clock.advance(15 * NS_PER_S)
                await runner.step()
                for cid in child_ids(st, "twap1")[before:]:
                    expected[cid] = exp
            fin = runner.run_of("twap1").finished
            assert fin is not None and fin.status is ParentStatus.FILLED and fin.filled_qty == D("0.050")
            kids = runner.children("twap1")
            assert [(s.order.ts_created, s.order.qty) for s in kids] == [
                (ts, D("0.010")) for ts, _ in schedule]
            assert [ts for ts, _ in schedule] == [T0 + k * MIN for k in range(slices)]
            for s in kids:
                assert s.status is OrderStatus.FILLED and s.order.type is OrderType.MARKET
                got = [(f.price, f.qty) for f in s.fills]
                assert got == [(D(f"{px:.8f}"), D(f"{q:.8f}")) for px, q in expected[s.client_order_id]]
            assert sum(s.filled_qty for s in kids) == D("0.050")
            assert st.store.get(NAMESPACE, "twap1").status is ParentStatus.FILLED
            assert runner.run_of("twap1").rebuilds == 0
            assert [s.order for s in kids] == [s.order for s in runner.algo("twap1").children()]
            assert_each_child_once_at_venue(st, "twap1", slices)
            assert_journal_matches_venue(st, "twap1")
            assert_agreement(st.h, spot_baseline("usdm"), intended=slices)
        finally:
            await st.close()

    try:
        run(body(), 30)
    finally:
        emu.stop()


async def _kill_while_child_ack_is_lost(st: Stack, cid: str) -> None:
    """At the next slice the child's POST is processed but its answer lost, and every query about it
    fails: the runner task is killed while the child is UNKNOWN in the journal."""
    emu = st.emu
    emu.add_fault(FaultRule(kind="lost_ack", endpoint="order", method="POST"))
    emu.add_fault(FaultRule(kind="server_error", endpoint="order", method="GET", times=10_000))
    slice2 = T0 + 2 * MIN
    task = asyncio.create_task(st.tick(dt_s=(slice2 - st.clock()) / NS_PER_S, trades=0))
    for _ in range(500):
        await asyncio.sleep(0.01)
        if cid in st.h.om.journal and st.h.om.get(cid).status is OrderStatus.UNKNOWN:
            break
    else:
        raise AssertionError(f"{cid} never became UNKNOWN")
    assert not task.done()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert [r.fault for r in emu.records("order") if r.method == "POST"][-1] == "lost_ack"
    assert cid in {o.client_id for o in venue_orders(emu)}  # the venue has it, we do not know
    await st.kill()
    emu.clear_faults()


@pytest.mark.parametrize("market,kill", [("usdm", "lost_ack"), ("spot", "lost_ack"), ("usdm", "between_slices")])
def test_restart_in_the_middle_of_a_twap_resumes_without_duplicates(market, kill, tmp_path):
    emu = start_emulator(market)
    st = Stack(emu, market, tmp_path)
    pid, slices, qty = "twapR", 5, D("0.050")

    async def body():
        runner = st.start()
        try:
            await runner.start_parent(parent(pid, TwapParams(T0, 5 * MIN, slices), str(qty)))
            while len(child_ids(st, pid)) < 2:  # slices 0 and 1 placed
                await st.tick(dt_s=15)
            if kill == "lost_ack":
                while st.clock() < T0 + MIN + 30 * NS_PER_S:  # slice 1's child fills
                    await st.tick(dt_s=15)
                assert [s.status for s in runner.children(pid)] == [OrderStatus.FILLED] * 2
            else:
                assert runner.children(pid)[1].status is OrderStatus.ACCEPTED  # working, not filled yet
            assert child_ids(st, pid) == [f"{NAMESPACE}.{pid}.0", f"{NAMESPACE}.{pid}.1"]
            assert st.store.get(NAMESPACE, pid).status is ParentStatus.ACTIVE  # persisted before the children
            cid2 = f"{NAMESPACE}.{pid}.2"
            if kill == "lost_ack":
                await _kill_while_child_ack_is_lost(st, cid2)
            else:  # slice 1's market child is working (no trade yet), the process dies before slice 2
                await st.kill()
            emu.advance_trades(BTC, 4)  # the market trades while we are down: open children fill
            # down for 20 s (still slice 2), or from slice 1 into slice 3 (slice 2 missed)
            st.clock.advance(20 * NS_PER_S if kill == "lost_ack" else 150 * NS_PER_S)

            runner = await st.recover()
            rep = runner.recovery
            if kill == "lost_ack":
                assert rep.resolved == {cid2: OrderStatus.FILLED}, rep
            else:
                assert rep.synced == {f"{NAMESPACE}.{pid}.1": OrderStatus.FILLED}, rep
            algo = runner.algo(pid)
            if kill == "lost_ack":
                assert algo.next_sequence == 3
            else:  # recover() gave the restored algo on_timer(now): slice 3 catches up the missed slice 2
                assert algo.next_sequence == 3 and runner.children(pid)[2].order.qty == D("0.020")
                assert runner.children(pid)[2].order.ts_created == T0 + MIN + 150 * NS_PER_S
            for _ in range(40):
                if runner.run_of(pid).finished is not None:
                    break
                await st.tick(dt_s=15)
            fin = runner.run_of(pid).finished
            assert fin is not None and fin.status is ParentStatus.FILLED, (fin, runner.errors)
            assert fin.filled_qty == qty and fin.unfilled_qty == 0
            kids = runner.children(pid)
            assert sum(s.filled_qty for s in kids) == qty
            assert all(s.status is OrderStatus.FILLED for s in kids)
            sizes = [D("0.010")] * 5 if kill == "lost_ack" else [D("0.010"), D("0.010"), D("0.020"), D("0.010")]
            assert [s.order.qty for s in kids] == sizes  # as scheduled (a missed slice caught up), none doubled
            assert st.store.get(NAMESPACE, pid).status is ParentStatus.FILLED
            assert_each_child_once_at_venue(st, pid, len(sizes))
            assert_journal_matches_venue(st, pid)
            assert_agreement(st.h, spot_baseline(market), intended=len(sizes))
        finally:
            await st.close()

    try:
        run(body(), 40)
    finally:
        emu.stop()


def test_managers_new_attempt_after_a_429_is_absorbed_by_the_algo(tmp_path):
    """The manager sends a new order under a NEW id when an attempt provably never reached the venue
    (429): the journal then holds a child the algo did not place; the runner rebuilds the algo from
    the journal, so the next slice gets the next free sequence and nothing is overfilled."""
    emu = start_emulator("usdm")
    st = Stack(emu, "usdm", tmp_path)

    async def body():
        runner = st.start()
        try:
            pid = "twap429"
            await runner.start_parent(parent(pid, TwapParams(T0, 3 * MIN, 3), "0.030"))
            await st.tick(dt_s=15)
            emu.add_fault(FaultRule(kind="rate_limit", endpoint="order", method="POST", retry_after_s=1))
            for _ in range(20):
                if runner.run_of(pid).finished is not None:
                    break
                await st.tick(dt_s=15)
            fin = runner.run_of(pid).finished
            assert fin is not None and fin.status is ParentStatus.FILLED and fin.filled_qty == D("0.030")
            kids = runner.children(pid)
            assert [s.client_order_id for s in kids] == [f"{NAMESPACE}.{pid}.{k}" for k in range(4)]
            assert never_reached_venue(kids[1]) and kids[1].client_order_id not in {
                o.client_id for o in venue_orders(emu)}
            assert [s.status for s in kids] == [OrderStatus.FILLED, OrderStatus.REJECTED] + [OrderStatus.FILLED] * 2
            assert runner.run_of(pid).rebuilds == 1
            posted = Counter(r.params["newClientOrderId"] for r in emu.records("order") if r.method == "POST")
            assert all(n == 1 for n in posted.values())
            assert_agreement(st.h, intended=3)
        finally:
            await st.close()

    try:
        run(body(), 30)
    finally:
        emu.stop()


def test_parent_cancel_cancels_every_open_child_at_the_venue(tmp_path):
    emu = start_emulator("usdm")
    st = Stack(emu, "usdm", tmp_path)

    async def body():
        runner = st.start()
        try:
            far = (st.h.last() * D("0.9")).quantize(TICK)  # never reached by the tape window we play
            pid = "twapC"
            await runner.start_parent(parent(pid, TwapParams(T0, 4 * MIN, 4, limit_price=far), "0.040"))
            while len(child_ids(st, pid)) < 2:
                await st.tick(dt_s=20)
            kids = runner.children(pid)
            assert [s.status for s in kids] == [OrderStatus.ACCEPTED] * 2
            assert all(o.status == "NEW" for o in venue_orders(emu))
            await runner.cancel(pid, "user")
            fin = runner.run_of(pid).finished
            assert fin is not None and fin.status is ParentStatus.CANCELED and fin.reason == "user"
            assert fin.filled_qty == 0 and fin.unfilled_qty == D("0.040")
            assert st.store.get(NAMESPACE, pid).status is ParentStatus.CANCELED
            assert [o.status for o in venue_orders(emu)] == ["CANCELED", "CANCELED"]
            assert all(s.status is OrderStatus.CANCELED for s in runner.children(pid))
            for _ in range(10):  # later slices place nothing
                await st.tick(dt_s=20)
            assert len(child_ids(st, pid)) == 2 and len(venue_orders(emu)) == 2
            deletes = [r for r in emu.records("order") if r.method == "DELETE"]
            assert sorted(r.params["origClientOrderId"] for r in deletes) == child_ids(st, pid)
            assert_journal_matches_venue(st, pid)
            assert_agreement(st.h, intended=2)
        finally:
            await st.close()

    try:
        run(body(), 30)
    finally:
        emu.stop()


def test_iceberg_parent_completes_one_clip_at_a_time(tmp_path):
    emu = start_emulator("usdm")
    st = Stack(emu, "usdm", tmp_path)

    async def body():
        runner = st.start()
        try:
            pid, qty = "ice1", D("0.020")
            await runner.start_parent(parent(pid, IcebergParams(D("0.004"), clip_jitter=D("0.5"), seed=3), str(qty),
                                             side=OrderSide.SELL))
            for _ in range(40):
                if runner.run_of(pid).finished is not None:
                    break
                await st.tick(dt_s=5, trades=2)
            fin = runner.run_of(pid).finished
            assert fin is not None and fin.status is ParentStatus.FILLED and fin.filled_qty == qty
            kids = runner.children(pid)
            assert len(kids) >= 3 and sum(s.filled_qty for s in kids) == qty
            algo = runner.algo(pid)
            for k, s in enumerate(kids[:-1]):
                assert s.order.qty == algo.clip_for(k)  # the seeded clip of its sequence (last: the rest)
                # one at a time: the next clip was decided only once this one was filled
                assert kids[k + 1].order.ts_created >= s.ts_last
            assert len({s.order.qty for s in kids}) > 1  # jitter
            assert_each_child_once_at_venue(st, pid, len(kids))
            assert_journal_matches_venue(st, pid)
            assert_agreement(st.h, intended=len(kids))
        finally:
            await st.close()

    try:
        run(body(), 30)
    finally:
        emu.stop()


def test_peg_parent_repegs_then_falls_back_to_market_and_completes(tmp_path):
    emu = start_emulator("usdm")
    st = Stack(emu, "usdm", tmp_path)

    async def body():
        runner = st.start()
        try:
            pid, qty = "peg1", D("0.010")
            await runner.start_parent(parent(pid, PegParams(timeout_ns=10 * NS_PER_S, max_repegs=2), str(qty)))
            assert child_ids(st, pid) == []  # a limit child needs a quote
            bid = st.h.last() - TICK
            for _ in range(30):  # quotes, no trade: every limit child times out, is canceled, re-pegged
                if any(s.order.type is OrderType.MARKET for s in runner.children(pid)):
                    break
                await st.tick(dt_s=5, trades=0, touch=True)
            kids = runner.children(pid)
            assert [s.order.type for s in kids] == [OrderType.LIMIT] * 3 + [OrderType.MARKET]
            for s in kids[:3]:
                assert s.order.time_in_force is TimeInForce.POST_ONLY and s.order.price == bid  # at the touch
                assert s.status is OrderStatus.CANCELED and s.filled_qty == 0
            for _ in range(10):  # the market child fills on the next trades
                if runner.run_of(pid).finished is not None:
                    break
                await st.tick(dt_s=5, trades=1, touch=True)
            fin = runner.run_of(pid).finished
            assert fin is not None and fin.status is ParentStatus.FILLED and fin.filled_qty == qty, (fin, runner.errors)
            kids = runner.children(pid)
            assert len(kids) == 4 and kids[3].status is OrderStatus.FILLED and kids[3].filled_qty == qty
            at_venue = {o.client_id: o.status for o in venue_orders(emu)}
            assert [at_venue[s.client_order_id] for s in kids] == ["CANCELED"] * 3 + ["FILLED"]
            places = [a for a in runner.run_of(pid).actions if isinstance(a, PlaceChild)]
            assert [a.client_order_id for a in places] == child_ids(st, pid)
            assert_each_child_once_at_venue(st, pid, len(kids))
            assert_journal_matches_venue(st, pid)
            assert_agreement(st.h, intended=len(kids))
        finally:
            await st.close()

    try:
        run(body(), 30)
    finally:
        emu.stop()


def test_child_refused_by_local_validation_cancels_the_parent_without_a_venue_call(tmp_path):
    emu = start_emulator("usdm")
    st = Stack(emu, "usdm", tmp_path)

    async def body():
        runner = st.start()
        try:
            # 0.001 × 100.0 = 0.1 USDT < the 5 USDT min notional: validation refuses every clip
            await runner.start_parent(parent("ice2", IcebergParams(D("0.001"), limit_price=D("100.0")), "0.003"))
            fin = runner.run_of("ice2").finished
            assert fin is not None and fin.status is ParentStatus.CANCELED
            assert fin.reason.startswith(f"child {NAMESPACE}.ice2.0 refused: notional_below_min"), fin.reason
            [snap] = runner.children("ice2")  # the id is consumed: journaled, never sent, canceled locally
            assert snap.status is OrderStatus.CANCELED and snap.venue_order_id is None
            assert not [r for r in emu.records("order") if r.method == "POST"] and not venue_orders(emu)
            assert st.store.get(NAMESPACE, "ice2").status is ParentStatus.CANCELED
            await st.tick()
            assert len(runner.children("ice2")) == 1
        finally:
            await st.close()

    try:
        run(body(), 20)
    finally:
        emu.stop()


def test_parent_store_round_trip_and_refusals(tmp_path):
    store = ParentStore.open_sqlite(tmp_path / "j.db")
    try:
        p = parent("p1", IcebergParams(D("0.004"), limit_price=D("100.5"), clip_jitter=D("0.1"), seed=9), "0.020")
        store.put(p, 1)
        assert store.get(NAMESPACE, "p1") == p
        from dataclasses import replace
        done = replace(p, status=ParentStatus.FILLED, reason="filled")
        store.put(done, 2)
        assert store.get(NAMESPACE, "p1") == done and store.unfinished() == []
        q = parent("p2", TwapParams(T0, MIN, 3, D("99.9")), "0.030")
        store.put(q, 3)
        assert store.parents() == [done, q] and store.unfinished(NAMESPACE) == [q]
        assert store.unfinished("other000") == []
    finally:
        store.close()
