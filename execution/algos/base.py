"""Shared machinery of the execution algorithms: the actions they return, child bookkeeping,
sizing on the lot grid, parent cancel / failure / dust / deadline handling and restore.

An algo is a pure state machine. Inputs: `on_timer(now_ns)`, `on_market(ts, best_bid, best_ask,
traded_volume)`, `on_child_event(client_order_id, event)` (every event the journal applied to a
child, `Submitted` and `CancelRequested` included) and `cancel(now_ns, reason)`. Each returns a list
of actions for the shell, to be carried out in order:

- `PlaceChild`: journal `action.order` (`record_intent`), then submit it.
- `CancelChild`: journal `CancelRequested` (NEW → CANCELED locally; working → PENDING_CANCEL), then
  send the cancel. Emitted only for children in NEW, ACCEPTED or PARTIALLY_FILLED; an in-flight
  child (SUBMITTED/UNKNOWN) gets its cancel once an event says it is working.
- `ParentUpdated` / `ParentFinished`: persist the parent (its status changed).

Every child's state is an `OrderStateMachine` fed the same events as the journal, so
`restore(parent, rules, child_snapshots)` rebuilds exactly the state an uninterrupted run has, and
the next child gets the next sequence (see docs/algos.md).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Any, ClassVar, Self, TypeVar

from core.errors import DataError
from execution.algos.parent import ParentOrder, ParentStatus
from execution.orders.client_ids import parse_client_order_id
from execution.orders.errors import (
    InvalidClientOrderIdError,
    OrderInconsistencyError,
    OrderValueError,
    OverfillError,
    UnknownOrderError,
)
from execution.orders.events import CancelRejected, EventKind, OrderEvent
from execution.orders.model import (
    Order,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
    to_decimal,
)
from execution.orders.state_machine import OrderSnapshot, OrderStateMachine
from execution.orders.validation import SymbolRules

_CTX = Context(prec=60, rounding=ROUND_HALF_EVEN)
_CANCELLABLE = frozenset({OrderStatus.NEW, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED})
_ZERO = Decimal(0)
A = TypeVar("A", bound="ExecutionAlgo")


# --- actions -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PlaceChild:
    """Journal `order` as it is (its `ts_created` is the decision time), then submit it."""

    request: OrderRequest
    client_order_id: str
    order: Order

    @property
    def ts(self) -> int:
        return self.order.ts_created


@dataclass(frozen=True, slots=True)
class CancelChild:
    client_order_id: str
    ts: int
    reason: str


@dataclass(frozen=True, slots=True)
class ParentUpdated:
    """The parent's status changed (ACTIVE → CANCELING): persist it before the actions after it."""

    parent: ParentOrder


@dataclass(frozen=True, slots=True)
class ParentFinished:
    """The parent reached a terminal status; nothing else will ever come from this algo."""

    parent: ParentOrder
    filled_qty: Decimal
    unfilled_qty: Decimal
    ts: int

    @property
    def status(self) -> ParentStatus:
        return self.parent.status

    @property
    def reason(self) -> str:
        return self.parent.reason


Action = PlaceChild | CancelChild | ParentUpdated | ParentFinished


# --- lots ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Lot:
    """Quantity grid of one child order type: step, minimum (venue min ∨ parent.min_child_qty), maximum."""

    step: Decimal
    min_qty: Decimal
    max_qty: Decimal | None

    def floor(self, qty: Decimal) -> Decimal:
        """Largest multiple of the step ≤ qty (0 for qty ≤ 0)."""
        if qty <= 0:
            return _ZERO
        with localcontext(_CTX):
            return (qty / self.step).to_integral_value(rounding=ROUND_DOWN) * self.step

    def on_grid(self, qty: Decimal) -> bool:
        with localcontext(_CTX):
            return qty % self.step == 0


def lot_for(rules: SymbolRules, order_type: OrderType, min_child_qty: Decimal = _ZERO) -> Lot:
    """MARKET children use MARKET_LOT_SIZE where the rules have it, others LOT_SIZE."""
    if order_type is OrderType.MARKET:
        step = rules.market_step_size or rules.step_size
        lo = rules.market_min_qty if rules.market_min_qty is not None else rules.min_qty
        hi = rules.market_max_qty if rules.market_max_qty is not None else rules.max_qty
    else:
        step, lo, hi = rules.step_size, rules.min_qty, rules.max_qty
    return Lot(step, max(lo, min_child_qty, step), hi)


def children_of(parent: ParentOrder, snapshots: Iterable[OrderSnapshot]) -> list[OrderSnapshot]:
    """The journaled orders that are children of `parent` (client id namespace.parent_id.seq),
    e.g. `children_of(parent, journal.orders())`."""
    out = []
    for snap in snapshots:
        try:
            cid = parse_client_order_id(snap.client_order_id)
        except InvalidClientOrderIdError:
            continue  # not one of our ids (an order placed by hand)
        if cid.namespace == parent.namespace and cid.strategy == parent.parent_id:
            out.append(snap)
    return out


# --- the base algo -------------------------------------------------------------------------------
class ExecutionAlgo(ABC):
    """Base of every algo. Subclasses define `params_type`, `_child_type()`, `_decide(now, touch)`
    and optionally `_stop_condition(now)`, `_is_failure(machine)`, `next_wakeup_ns(now)`."""

    params_type: ClassVar[type]

    def __init__(self, parent: ParentOrder, rules: SymbolRules):
        if not isinstance(parent, ParentOrder):
            raise OrderValueError(f"expected a ParentOrder, got {type(parent).__name__}")
        if not isinstance(parent.params, self.params_type):
            raise OrderValueError(f"{type(self).__name__} needs {self.params_type.__name__}, "
                                  f"parent {parent.parent_id} has {type(parent.params).__name__}")
        if not isinstance(rules, SymbolRules) or rules.symbol != parent.symbol:
            raise OrderValueError(f"rules for {getattr(rules, 'symbol', rules)!r} do not match parent symbol {parent.symbol}")
        self._parent = parent
        self._rules = rules
        self._children: dict[str, OrderStateMachine] = {}  # in sequence order
        self._next_seq = 0
        self._cancel_sent: set[str] = set()
        for otype in self._child_types():
            lot = self.lot(otype)
            if not lot.on_grid(parent.qty):
                raise OrderValueError(f"parent {parent.parent_id}: qty={parent.qty} is not a multiple of the "
                                      f"{otype.value} step {lot.step}")
        lot = self.lot(self._child_type())
        if parent.qty < lot.min_qty and not parent.status.is_terminal:
            raise OrderValueError(f"parent {parent.parent_id}: qty={parent.qty} is below the minimum child "
                                  f"quantity {lot.min_qty}")
        self._children: dict[str, OrderStateMachine] = {}  # in sequence order
        self._next_seq = 0
        self._cancel_sent: set[str] = set()

    @classmethod
    def restore(cls, parent: ParentOrder, rules: SymbolRules, children: Iterable[OrderSnapshot],
                **kwargs: Any) -> Self:
        """Rebuild the algo after a restart from the persisted parent and EVERY journaled child
        (`children_of(parent, journal.orders())`). Each child's events are replayed on a fresh state
        machine; the next child gets sequence max+1. Raises `OrderValueError` for a snapshot that is
        not a child of this parent, `OrderInconsistencyError` if the children overcommit the parent."""
        algo = cls(parent, rules, **kwargs)
        by_seq: dict[int, OrderSnapshot] = {}
        for snap in children:
            cid = parse_client_order_id(snap.client_order_id)
            o = snap.order
            if (cid.namespace, cid.strategy) != (parent.namespace, parent.parent_id):
                raise OrderValueError(f"order {snap.client_order_id} is not a child of parent "
                                      f"{parent.namespace}.{parent.parent_id}")
            if (o.symbol, o.side, o.strategy_id, o.reduce_only) != (parent.symbol, parent.side, parent.strategy_id,
                                                                    parent.reduce_only):
                raise OrderValueError(f"child {snap.client_order_id} does not match parent {parent.parent_id} "
                                      "(symbol, side, strategy id or reduce-only differ)")
            if cid.sequence in by_seq:
                raise OrderValueError(f"child {snap.client_order_id} given twice")
            by_seq[cid.sequence] = snap
        for seq in sorted(by_seq):
            snap = by_seq[seq]
            machine = OrderStateMachine.replay(snap.order, [t.event for t in snap.history])
            if machine.snapshot() != snap:
                raise OrderValueError(f"child {snap.client_order_id}: snapshot does not match its own history")
            algo._children[snap.client_order_id] = machine
            if machine.status is OrderStatus.PENDING_CANCEL:
                algo._cancel_sent.add(snap.client_order_id)
        algo._next_seq = max(by_seq) + 1 if by_seq else 0
        if algo.committed_qty > parent.qty:
            raise OrderInconsistencyError(
                f"parent {parent.parent_id}: children commit {algo.committed_qty} (filled {algo.filled_qty} + "
                f"open {algo.open_qty}) above the parent quantity {parent.qty}")
        return algo

    # --- views ---------------------------------------------------------------------------------
    @property
    def parent(self) -> ParentOrder:
        return self._parent

    @property
    def rules(self) -> SymbolRules:
        return self._rules

    @property
    def is_finished(self) -> bool:
        return self._parent.status.is_terminal

    @property
    def next_sequence(self) -> int:
        """Sequence of the next child this algo will place."""
        return self._next_seq

    def children(self) -> list[OrderSnapshot]:
        return [m.snapshot() for m in self._children.values()]

    def open_children(self) -> list[OrderSnapshot]:
        return [m.snapshot() for m in self._open()]

    @property
    def filled_qty(self) -> Decimal:
        return sum((m.filled_qty for m in self._children.values()), _ZERO)

    @property
    def open_qty(self) -> Decimal:
        """Unfilled quantity of the children not yet terminal (in flight, working, cancel pending)."""
        return sum((m.remaining_qty for m in self._open()), _ZERO)

    @property
    def committed_qty(self) -> Decimal:
        """filled + open: never above the parent quantity."""
        return self.filled_qty + self.open_qty

    @property
    def remaining_qty(self) -> Decimal:
        return self._parent.qty - self.filled_qty

    @property
    def failures(self) -> int:
        return sum(1 for m in self._children.values() if self._is_failure(m))

    def lot(self, order_type: OrderType) -> Lot:
        return lot_for(self._rules, order_type, self._parent.min_child_qty)

    def next_wakeup_ns(self, now_ns: int) -> int | None:
        """When the shell should call `on_timer` next (None: no timer needed; events drive it)."""
        return None

    # --- inputs --------------------------------------------------------------------------------
    def on_timer(self, now_ns: int) -> list[Action]:
        _check_ns(now_ns)
        return self._evaluate(now_ns, None)

    def on_market(self, ts: int, best_bid: Decimal | None = None, best_ask: Decimal | None = None,
                  traded_volume: Decimal = _ZERO) -> list[Action]:
        """A market-data update: the touch (both or neither) and the volume traded in the market
        since the previous update (base units, ours included)."""
        _check_ns(ts)
        try:
            bid = to_decimal(best_bid, "best_bid", positive=True, allow_none=True)
            ask = to_decimal(best_ask, "best_ask", positive=True, allow_none=True)
            vol = to_decimal(traded_volume, "traded_volume")
        except OrderValueError as err:
            raise DataError(f"{self._parent.symbol}: {err}") from None
        if (bid is None) != (ask is None):
            raise DataError(f"{self._parent.symbol}: best_bid={bid} best_ask={ask}: give both or neither")
        if bid is not None and bid >= ask:
            raise DataError(f"{self._parent.symbol}: crossed or locked book best_bid={bid} ≥ best_ask={ask}")
        if vol < 0:
            raise DataError(f"{self._parent.symbol}: traded_volume={vol} is negative")
        if self.is_finished:
            return []
        self._on_volume(vol)
        return self._evaluate(ts, None if bid is None else (bid, ask))

    def on_child_event(self, client_order_id: str, event: OrderEvent) -> list[Action]:
        """An event the journal applied to a child. Refused events raise (as in the journal)."""
        machine = self._children.get(client_order_id)
        if machine is None:
            raise UnknownOrderError(f"parent {self._parent.parent_id}: {client_order_id} is not one of its children")
        if not machine.apply(event):
            return []  # a duplicate fill: nothing changed
        if isinstance(event, CancelRejected):
            self._cancel_sent.discard(client_order_id)  # working again: a later decision may cancel it anew
        return self._evaluate(event.ts, None)

    def cancel(self, now_ns: int, reason: str = "canceled") -> list[Action]:
        """Cancel the parent: cancels for every open child, no new child ever. Idempotent.
        Also the shell's answer to a child that local validation refused (reason says why)."""
        _check_ns(now_ns)
        if self.is_finished or self._parent.status is ParentStatus.CANCELING:
            return []
        self._parent = replace(self._parent, status=ParentStatus.CANCELING, reason=reason)
        return [ParentUpdated(self._parent), *self._evaluate(now_ns, None)]

    # --- the decision --------------------------------------------------------------------------
    def _evaluate(self, now: int, touch: tuple[Decimal, Decimal] | None) -> list[Action]:
        p = self._parent
        if p.status.is_terminal:
            return []
        if self.filled_qty == p.qty:
            return self._finish(now, ParentStatus.FILLED, "filled")
        stop: tuple[ParentStatus, str] | None = None
        if p.status is ParentStatus.CANCELING:
            stop = (ParentStatus.CANCELED, p.reason)
        elif self.failures > p.max_rejects:
            stop = (ParentStatus.FAILED, (f"{self.failures} child orders failed (rejected or ended by the venue), "
                                          f"more than max_rejects={p.max_rejects}"))
        else:
            stop = self._stop_condition(now)
        if stop is None and not self._open():
            lot = self.lot(self._child_type())
            if lot.floor(self.remaining_qty) < lot.min_qty:
                stop = (ParentStatus.DUST, (f"remainder {self.remaining_qty} below the minimum child quantity "
                                            f"{lot.min_qty} (step {lot.step}): dropped"))
        if stop is not None:
            actions: list[Action] = self._cancel_open(now, stop[1])
            if not self._open():
                actions += self._finish(now, *stop)
            return actions
        return self._decide(now, touch)

    def _cancel_open(self, now: int, reason: str) -> list[Action]:
        out: list[Action] = []
        for cid, m in self._children.items():
            if m.status in _CANCELLABLE and cid not in self._cancel_sent:
                self._cancel_sent.add(cid)
                out.append(CancelChild(cid, now, reason))
        return out

    def _cancel_child(self, machine: OrderStateMachine, now: int, reason: str) -> list[Action]:
        cid = machine.client_order_id
        if machine.status not in _CANCELLABLE or cid in self._cancel_sent:
            return []
        self._cancel_sent.add(cid)
        return [CancelChild(cid, now, reason)]

    def _finish(self, now: int, status: ParentStatus, reason: str) -> list[Action]:
        self._parent = replace(self._parent, status=status, reason=reason)
        filled = self.filled_qty
        return [ParentFinished(self._parent, filled, self._parent.qty - filled, now)]

    def _size(self, desired: Decimal, order_type: OrderType) -> Decimal:
        """The child quantity for `desired`: at most what is not yet committed, rounded down to the
        step, capped at the max; 0 if below the minimum. A rest that could never make a child of its
        own (below the minimum) is merged into this child (when the max allows)."""
        lot = self.lot(order_type)
        left = self._parent.qty - self.committed_qty
        q = lot.floor(min(desired, left))
        if lot.max_qty is not None and q > lot.max_qty:
            q = lot.floor(lot.max_qty)
        if q < lot.min_qty:
            return _ZERO
        rest = left - q
        if rest > 0 and lot.floor(rest) < lot.min_qty:
            merged = lot.floor(left)
            if lot.max_qty is None or merged <= lot.max_qty:
                q = merged
        return q

    def _place(self, now: int, order_type: OrderType, qty: Decimal, price: Decimal | None = None,
               tif: TimeInForce | None = None) -> PlaceChild:
        p = self._parent
        if qty <= 0 or self.committed_qty + qty > p.qty:
            raise OverfillError(f"parent {p.parent_id}: child qty {qty} with {self.committed_qty} committed "
                                f"would exceed the parent quantity {p.qty}")
        if order_type.has_limit_price and tif is None:
            tif = TimeInForce.GTC
        request = OrderRequest(symbol=p.symbol, side=p.side, type=order_type, qty=qty, price=price,
                               time_in_force=tif, reduce_only=p.reduce_only)
        cid = p.child_client_order_id(self._next_seq)
        order = Order.create(request, cid, p.strategy_id, now)
        self._children[cid] = OrderStateMachine(order)
        self._next_seq += 1
        return PlaceChild(request, cid, order)

    def _open(self) -> list[OrderStateMachine]:
        return [m for m in self._children.values() if not m.is_terminal]

    def _ended_by_us(self, machine: OrderStateMachine) -> bool:
        return machine.client_order_id in self._cancel_sent or any(
            t.event.kind is EventKind.CANCEL_REQUEST for t in machine.history)

    # --- hooks -----------------------------------------------------------------------------------
    @abstractmethod
    def _child_type(self) -> OrderType:
        """Order type of this algo's children."""

    def _child_types(self) -> tuple[OrderType, ...]:
        return (self._child_type(),)

    @abstractmethod
    def _decide(self, now: int, touch: tuple[Decimal, Decimal] | None) -> list[Action]:
        """The algo's own decision for this input (what to place or cancel now)."""

    def _stop_condition(self, now: int) -> tuple[ParentStatus, str] | None:
        return None

    def _on_volume(self, volume: Decimal) -> None:
        pass

    def _is_failure(self, machine: OrderStateMachine) -> bool:
        """Rejected, or ended by the venue (canceled / expired) short of its quantity without our cancel."""
        st = machine.status
        if st is OrderStatus.REJECTED:
            return True
        return st in (OrderStatus.CANCELED, OrderStatus.EXPIRED) and not self._ended_by_us(machine)

    def _deadline_stop(self, now: int, end_ns: int | None, what: str) -> tuple[ParentStatus, str] | None:
        if end_ns is not None and now >= end_ns:
            return (ParentStatus.EXPIRED, f"{what} ended at {end_ns} with {self.remaining_qty} unfilled")
        return None


def _check_ns(ts: Any) -> None:
    if isinstance(ts, bool) or not isinstance(ts, int):
        raise OrderValueError(f"ts={ts!r}: expected an int (UTC ns)")


def side_touch(side: OrderSide, touch: tuple[Decimal, Decimal]) -> Decimal:
    """The passive price: best bid for a buy, best ask for a sell."""
    return touch[0] if side is OrderSide.BUY else touch[1]
