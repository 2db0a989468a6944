"""`AlgoRunner`: the thin async shell that connects execution algos (docs/algos.md) to an
`OrderManager`, and `ParentStore`: the durable parent records next to the order journal.

    store = ParentStore.open_sqlite(journal_path)          # table algo_parents in the journal's file
    runner = AlgoRunner(om, store, clock=clock)            # om: OrderManager on the same file, SAME clock
    await runner.start_parent(parent)                      # parent record written BEFORE the first child
    await runner.on_market(symbol, bid, ask, volume)        # quotes / trades → every active parent of the symbol
    await runner.step()                                    # poll the venue for the open children, fire due timers
    await runner.cancel("twap1", "user")                    # cancel-on-parent-cancel
    # after a crash, on the same SQLite file with new objects:
    runner = await AlgoRunner.recover(om, store, clock=clock)   # om.start(), then restore_algo per unfinished parent

What the runner does with each action (docs/algos.md "Running algos"):

- `PlaceChild` → `om.submit(request, strategy=parent_id, strategy_id=parent.strategy_id)`. The
  manager's client-id factory resumes at `journal.next_sequence(namespace, parent_id)`, which is the
  algo's sequence, so the child goes out under the algo's deterministic id (checked before the call).
  A child refused by local validation is journaled as an intent anyway, then the parent is canceled.
- `CancelChild` → `om.cancel(cid)` (journals `CancelRequested`, venue cancel, venue view).
- `ParentUpdated` / `ParentFinished` → `ParentStore.put` (one fsynced SQLite transaction).
- After every manager call, every event the journal applied to a child of the parent and the algo
  has not seen is forwarded to `algo.on_child_event`, in journal order; the actions that returns are
  carried out at once (depth first, like a synchronous shell).
- If the journal holds children the algo did not place (the manager's own new attempt after a
  "not processed" / "not found" answer) or records a child differently (another clock), the algo is
  rebuilt with `restore_algo` from the journal and given `on_timer(now)`: the journal is the truth.

One runner per OrderManager (single writer); asyncio-safe (one lock serialises every input), not
thread-safe.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from core.errors import RetryableError
from execution.algos import (
    Action,
    CancelChild,
    ExecutionAlgo,
    ParentFinished,
    ParentOrder,
    ParentStatus,
    ParentUpdated,
    PlaceChild,
    children_of,
    make_algo,
    restore_algo,
)
from execution.order_manager import OrderManager, RecoveryReport
from execution.orders import (
    OrderRejected,
    OrderSnapshot,
    OrderStatus,
    ResolutionInconclusiveError,
    TerminalOrderError,
)
from execution.orders.client_ids import parse_client_order_id
from execution.orders.errors import OrderInconsistencyError, OrderValueError
from execution.venue import VenueRejectedError

log = logging.getLogger(__name__)

PARENT_SCHEMA = """
CREATE TABLE IF NOT EXISTS algo_parents (
    namespace TEXT NOT NULL,
    parent_id TEXT NOT NULL,
    status TEXT NOT NULL,
    ts_updated INTEGER NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (namespace, parent_id)
);
"""


# --- parent records --------------------------------------------------------------------------------
class ParentStore:
    """The persisted parents: one row per (namespace, parent_id) holding `ParentOrder.to_record()`
    as JSON, replaced on every status change. SQLite: its own connection to the journal's file
    (table `algo_parents`; the journal's tables are untouched), WAL, `synchronous=FULL`, one
    `BEGIN IMMEDIATE … COMMIT` per write, so a record is whole or absent after a crash.
    `in_memory()` keeps a dict (tests with an in-memory journal)."""

    def __init__(self, conn: sqlite3.Connection | None):
        self._conn = conn
        self._mem: dict[tuple[str, str], tuple[ParentOrder, int]] = {}

    @classmethod
    def open_sqlite(cls, path: str | Path) -> ParentStore:
        conn = sqlite3.connect(str(path), isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(PARENT_SCHEMA)
        except BaseException:
            conn.close()
            raise
        return cls(conn)

    @classmethod
    def in_memory(cls) -> ParentStore:
        return cls(None)

    def put(self, parent: ParentOrder, ts: int) -> None:
        """Insert or replace the parent's record (durable when this returns)."""
        if self._conn is None:
            self._mem[(parent.namespace, parent.parent_id)] = (parent, ts)
            return
        payload = json.dumps(parent.to_record(), sort_keys=True, separators=(",", ":"))
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("INSERT INTO algo_parents (namespace, parent_id, status, ts_updated, record) "
                         "VALUES (?, ?, ?, ?, ?) ON CONFLICT (namespace, parent_id) DO UPDATE SET "
                         "status = excluded.status, ts_updated = excluded.ts_updated, record = excluded.record",
                         (parent.namespace, parent.parent_id, parent.status.value, ts, payload))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def get(self, namespace: str, parent_id: str) -> ParentOrder | None:
        if self._conn is None:
            hit = self._mem.get((namespace, parent_id))
            return None if hit is None else hit[0]
        row = self._conn.execute("SELECT record FROM algo_parents WHERE namespace = ? AND parent_id = ?",
                                 (namespace, parent_id)).fetchone()
        return None if row is None else ParentOrder.from_record(json.loads(row[0]))

    def parents(self, namespace: str | None = None) -> list[ParentOrder]:
        """Every stored parent (of `namespace` when given), in creation order."""
        if self._conn is None:
            return [p for (ns, _), (p, _) in self._mem.items() if namespace in (None, ns)]
        rows = self._conn.execute("SELECT namespace, record FROM algo_parents ORDER BY rowid").fetchall()
        return [ParentOrder.from_record(json.loads(r)) for ns, r in rows if namespace in (None, ns)]

    def unfinished(self, namespace: str | None = None) -> list[ParentOrder]:
        """Parents not in a terminal status (ACTIVE, CANCELING): what `AlgoRunner.recover` resumes."""
        return [p for p in self.parents(namespace) if not p.status.is_terminal]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


# --- the runner ------------------------------------------------------------------------------------
@dataclass
class ParentRun:
    """One parent under the runner: its algo and what happened to it."""

    algo: ExecutionAlgo
    wake_ns: int | None = None  # next on_timer due (algo.next_wakeup_ns)
    finished: ParentFinished | None = None
    actions: list[Action] = field(default_factory=list)  # every action carried out, in order
    rebuilds: int = 0  # times the algo was rebuilt from the journal (see the module docstring)
    refused: list[str] = field(default_factory=list)  # children refused by local validation

    @property
    def parent(self) -> ParentOrder:
        return self.algo.parent


class AlgoRunner:
    """Runs execution algos through one `OrderManager` (see the module docstring).

    clock: UTC ns, the decision time of every input; give the OrderManager the SAME clock (its
      `ts_created` of a child must be the algo's decision time, which TWAP slices and peg timeouts
      read after a restart; a different clock still works, through a rebuild after each submit).
    reference_price: symbol → last/mark price for local validation of MARKET children (min
      notional); None: the mid of the last `on_market` touch of the symbol, if any.
    sleep: awaited by `run()` between steps.
    """

    def __init__(self, om: OrderManager, store: ParentStore, *, clock: Callable[[], int],
                 reference_price: Callable[[str], Decimal | None] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.om = om
        self.store = store
        self._clock = clock
        self._reference_price = reference_price
        self._sleep = sleep
        self._runs: dict[str, ParentRun] = {}
        self._touch: dict[str, tuple[Decimal, Decimal]] = {}
        self._lock = asyncio.Lock()
        self.errors: deque[str] = deque(maxlen=1000)  # venue / manager errors met (retried at the next step)
        self.recovery: RecoveryReport | None = None

    # --- views ---------------------------------------------------------------------------------
    def now(self) -> int:
        return int(self._clock())

    def run_of(self, parent_id: str) -> ParentRun:
        return self._runs[parent_id]

    def algo(self, parent_id: str) -> ExecutionAlgo:
        return self._runs[parent_id].algo

    def active(self) -> list[ParentRun]:
        return [r for r in self._runs.values() if r.finished is None]

    def children(self, parent_id: str) -> list[OrderSnapshot]:
        """The journal's children of the parent (the truth the algo is kept in step with)."""
        return children_of(self._runs[parent_id].parent, self.om.journal.orders())

    # --- inputs --------------------------------------------------------------------------------
    async def start_parent(self, parent: ParentOrder, **algo_kwargs: Any) -> ParentRun:
        """Persist the parent (before any child can exist), build its algo and give it a first
        `on_timer(now)`. Refuses a parent id already stored or already used by journaled orders."""
        if parent.namespace != self.om.namespace:
            raise OrderValueError(f"parent {parent.parent_id}: namespace {parent.namespace} is not the order "
                                  f"manager's {self.om.namespace} (child ids would differ)")
        if parent.status is not ParentStatus.ACTIVE:
            raise OrderValueError(f"parent {parent.parent_id}: a new parent must be ACTIVE, not {parent.status.value}")
        rules = self._rules(parent)
        async with self._lock:
            if parent.parent_id in self._runs or self.store.get(parent.namespace, parent.parent_id) is not None:
                raise OrderValueError(f"parent {parent.namespace}.{parent.parent_id} already exists")
            if self.om.journal.next_sequence(parent.namespace, parent.parent_id) != 0:
                raise OrderValueError(f"parent id {parent.parent_id}: the journal already holds orders under it")
            algo = make_algo(parent, rules, **algo_kwargs)
            self.store.put(parent, self.now())  # durable before the first child
            run = self._runs[parent.parent_id] = ParentRun(algo)
            await self._input(run, lambda a, now: a.on_timer(now))
            return run

    async def cancel(self, parent_id: str, reason: str = "canceled") -> ParentRun:
        """Cancel the parent: persisted CANCELING, cancels for every working child (in-flight ones
        get theirs when they show up working); it ends CANCELED when the last child ended."""
        async with self._lock:
            run = self._runs[parent_id]
            await self._input(run, lambda a, now: a.cancel(now, reason))
            return run

    async def on_market(self, symbol: str, best_bid: Decimal | None = None, best_ask: Decimal | None = None,
                        traded_volume: Decimal = Decimal(0)) -> None:
        """A quote / trade batch for `symbol`: to every active parent of the symbol."""
        if best_bid is not None and best_ask is not None:
            self._touch[symbol] = (Decimal(best_bid), Decimal(best_ask))
        async with self._lock:
            for run in self.active():
                if run.parent.symbol == symbol:
                    await self._input(run, lambda a, now: a.on_market(now, best_bid, best_ask, traded_volume))

    async def step(self) -> None:
        """One poll: ask the venue about every open child (in flight → resolve, working → sync,
        cancel pending → the cancel again, NEW → canceled locally), forward what the journal got,
        then fire `on_timer` for every parent whose wakeup is due."""
        async with self._lock:
            for run in self.active():
                await self._poll_children(run)
                await self._carry_out(run, self._sync(run))
                now = self.now()
                if run.finished is None and run.wake_ns is not None and now >= run.wake_ns:
                    await self._input(run, lambda a, t: a.on_timer(t))

    async def run(self, stop: asyncio.Event, *, poll_interval_s: float = 0.5) -> None:
        """`step()` every `poll_interval_s` until `stop` is set or no parent is active."""
        while not stop.is_set() and self.active():
            await self.step()
            await self._sleep(poll_interval_s)

    # --- recovery ------------------------------------------------------------------------------
    @classmethod
    async def recover(cls, om: OrderManager, store: ParentStore, *, clock: Callable[[], int],
                      start_manager: bool = True, resolve_timeout_s: float | None = None,
                      algo_kwargs: dict[str, dict[str, Any]] | None = None, **kw: Any) -> AlgoRunner:
        """After a restart (new objects on the same SQLite file): `om.start()` first (unsent NEW
        children canceled locally, in-flight ones resolved by client id, working ones synced), then
        every unfinished parent of the manager's namespace is rebuilt with `restore_algo(parent,
        rules, children_of(parent, journal.orders()))` and given `on_timer(now)` (it catches up a
        missed TWAP slice, re-sends cancels of a CANCELING parent, or finishes). Nothing is ever
        resent: a child the venue never got stays REJECTED (a failure in the algo's count) and the
        algo decides the next child under a new id. `algo_kwargs`: per parent id, extra restore
        arguments (e.g. `volume_since_last_child`)."""
        runner = cls(om, store, clock=clock, **kw)
        if start_manager:
            runner.recovery = await om.start(resolve_timeout_s=resolve_timeout_s)
        async with runner._lock:
            for parent in store.unfinished(om.namespace):
                kids = children_of(parent, om.journal.orders())
                extra = (algo_kwargs or {}).get(parent.parent_id, {})
                algo = restore_algo(parent, runner._rules(parent), kids, **extra)
                runner._runs[parent.parent_id] = ParentRun(algo)
                log.info("recovered parent %s (%s, %s): %d children, next sequence %d", parent.parent_id,
                         parent.algo, parent.status.value, len(kids), algo.next_sequence)
            for run in list(runner._runs.values()):
                await runner._input(run, lambda a, now: a.on_timer(now))
        return runner

    # --- internals -----------------------------------------------------------------------------
    def _rules(self, parent: ParentOrder):
        try:
            return self.om.rules[parent.symbol]
        except KeyError:
            raise OrderValueError(f"parent {parent.parent_id}: no rules for {parent.symbol}") from None

    async def _input(self, run: ParentRun, call: Callable[[ExecutionAlgo, int], list[Action]]) -> None:
        if run.finished is not None:
            return
        now = self.now()
        run.wake_ns = None  # every input evaluates the algo at `now`, as on_timer does
        await self._carry_out(run, call(run.algo, now))
        self._rewake(run)

    def _rewake(self, run: ParentRun) -> None:
        """The algo's next wakeup; a wakeup already due and not yet fired stays (an extra
        `on_timer` is harmless, a missed one is not)."""
        if run.finished is not None:
            run.wake_ns = None
            return
        nxt = run.algo.next_wakeup_ns(self.now())
        if run.wake_ns is None or (nxt is not None and nxt < run.wake_ns):
            run.wake_ns = nxt

    async def _carry_out(self, run: ParentRun, actions: list[Action]) -> None:
        """Carry out `actions` in order; the actions of the events each one causes go first (depth first)."""
        for action in actions:
            run.actions.append(action)
            if isinstance(action, (ParentUpdated, ParentFinished)):
                self.store.put(action.parent, self.now() if isinstance(action, ParentUpdated) else action.ts)
                if isinstance(action, ParentFinished):
                    run.finished = action
                    log.info("parent %s finished %s: filled %s, unfilled %s (%s)", action.parent.parent_id,
                             action.status.value, action.filled_qty, action.unfilled_qty, action.reason)
                continue
            if isinstance(action, PlaceChild):
                if not self._current(run, action):
                    continue  # decided by an algo since rebuilt from the journal: the rebuilt one decides anew
                more = await self._place(run, action)
            elif isinstance(action, CancelChild):
                more = await self._cancel_child(run, action)
            else:  # pragma: no cover - the Action union is closed
                raise TypeError(f"unknown action {action!r}")
            await self._carry_out(run, more)
        self._rewake(run)

    def _current(self, run: ParentRun, action: PlaceChild) -> bool:
        cid = action.client_order_id
        if cid in self.om.journal:
            return False
        return any(s.client_order_id == cid and s.order == action.order for s in run.algo.children())

    async def _place(self, run: ParentRun, action: PlaceChild) -> list[Action]:
        parent = run.parent
        cid = action.client_order_id
        journal = self.om.journal
        seq = parse_client_order_id(cid).sequence
        if cid in journal or journal.next_sequence(parent.namespace, parent.parent_id) != seq:
            raise OrderInconsistencyError(
                f"parent {parent.parent_id}: child {cid} is not the journal's next sequence "
                f"{journal.next_sequence(parent.namespace, parent.parent_id)} (the algo is out of step)")
        try:
            snap = await self.om.submit(action.request, strategy=parent.parent_id, strategy_id=parent.strategy_id,
                                        reference_price=self._ref_price(parent.symbol))
            if snap.client_order_id != cid and cid not in journal:  # pragma: no cover - guarded above
                raise OrderInconsistencyError(f"{cid}: the manager sent {snap.client_order_id} instead")
        except OrderRejected as err:
            # refused before the venue, nothing journaled: journal the intent (the id is consumed,
            # journal and algo stay in step), then stop the parent (the same sizing would be refused again)
            journal.record_intent(action.order)
            run.refused.append(cid)
            reason = getattr(getattr(err, "reason", None), "value", None) or str(err)
            log.warning("parent %s: child %s refused by validation: %s", parent.parent_id, cid, err)
            return self._sync(run) + run.algo.cancel(self.now(), f"child {cid} refused: {reason}")
        except VenueRejectedError as err:
            log.warning("parent %s: child %s rejected by the venue: %s", parent.parent_id, cid, err)
        except RetryableError as err:  # left SUBMITTED/UNKNOWN: step() resolves it
            self.errors.append(f"submit {cid}: {type(err).__name__}: {err}")
        return self._sync(run)

    async def _cancel_child(self, run: ParentRun, action: CancelChild) -> list[Action]:
        try:
            await self.om.cancel(action.client_order_id)
        except (ResolutionInconclusiveError, RetryableError) as err:
            self.errors.append(f"cancel {action.client_order_id}: {type(err).__name__}: {err}")
        return self._sync(run)

    async def _poll_children(self, run: ParentRun) -> None:
        om = self.om
        for snap in children_of(run.parent, om.journal.open_orders()):
            cid = snap.client_order_id
            try:
                if snap.status is OrderStatus.NEW:  # journaled, never sent (a refused child, or a crash)
                    await om.cancel(cid)
                elif snap.is_in_flight:
                    await om.resolve(cid, timeout_s=0)
                elif snap.status is OrderStatus.PENDING_CANCEL:
                    await om.cancel(cid)  # the venue cancel again, then its view
                else:
                    await om.sync_order(cid)
            except (RetryableError, TerminalOrderError, ResolutionInconclusiveError, VenueRejectedError) as err:
                self.errors.append(f"poll {cid}: {type(err).__name__}: {err}")

    def _sync(self, run: ParentRun) -> list[Action]:
        """Forward to the algo every journaled child event it has not seen; rebuild it from the
        journal when the journal holds children it did not place or records one differently."""
        if run.finished is not None:
            return []
        algo = run.algo
        journal_kids = children_of(run.parent, self.om.journal.orders())
        mine = {s.client_order_id: s for s in algo.children()}
        if any(k.client_order_id not in mine or mine[k.client_order_id].order != k.order for k in journal_kids):
            run.algo = restore_algo(algo.parent, algo.rules, journal_kids)
            run.rebuilds += 1
            log.info("parent %s: algo rebuilt from the journal (%d children)", run.parent.parent_id,
                     len(journal_kids))
            return run.algo.on_timer(self.now())
        out: list[Action] = []
        for k in journal_kids:
            seen = len(mine[k.client_order_id].history)
            for t in k.history[seen:]:
                out += algo.on_child_event(k.client_order_id, t.event)
        return out

    def _ref_price(self, symbol: str) -> Decimal | None:
        if self._reference_price is not None:
            return self._reference_price(symbol)
        touch = self._touch.get(symbol)
        return None if touch is None else (touch[0] + touch[1]) / 2


__all__ = ["PARENT_SCHEMA", "AlgoRunner", "ParentRun", "ParentStore"]
