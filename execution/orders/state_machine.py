"""The order state machine: one transition table, events applied atomically (a refused event
raises a typed error and changes nothing), fills deduplicated by trade id, overfills refused,
every transition recorded with the timestamp carried by its event (no wall clock).

    NEW ──submitted──▶ SUBMITTED ──accepted──▶ ACCEPTED ──fill──▶ PARTIALLY_FILLED ──fill──▶ FILLED
     │                   │  └─timeout─▶ UNKNOWN ──(venue: accepted/fill/…/resolved)──▶ …
     └─cancel_requested─▶ CANCELED (local, never sent)
    ACCEPTED/PARTIALLY_FILLED ──cancel_requested──▶ PENDING_CANCEL ──canceled──▶ CANCELED
                                                                 └─cancel_rejected─▶ back to working

`TRANSITIONS` is the whole table: (status, event kind) → the statuses the event may lead to. Terminal
statuses (FILLED, CANCELED, REJECTED, EXPIRED) allow nothing; a duplicate of an already-applied trade
is a no-op in every status (the same trade reported by the stream and by REST). See docs/orders.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    Inexact,
    InvalidOperation,
    localcontext,
)

from execution.orders.errors import (
    FillConflictError,
    InvalidTransitionError,
    MissingFillsError,
    OrderInconsistencyError,
    OrderValueError,
    OverfillError,
    ResolutionInconclusiveError,
    TerminalOrderError,
)
from execution.orders.events import (
    Accepted,
    Canceled,
    CancelRejected,
    CancelRequested,
    EventKind,
    Expired,
    FillReceived,
    OrderEvent,
    Rejected,
    Resolved,
    Submitted,
    TimedOut,
)
from execution.orders.model import Fill, Order, OrderStatus, VenueOrderView, VenueStatus

S = OrderStatus
K = EventKind
_WORKING_RESOLVE = frozenset({S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.EXPIRED})
_IN_FLIGHT = {
    K.ACCEPT: frozenset({S.ACCEPTED}),
    K.FILL: frozenset({S.PARTIALLY_FILLED, S.FILLED}),
    K.CANCEL: frozenset({S.CANCELED}),
    K.REJECT: frozenset({S.REJECTED}),
    K.EXPIRE: frozenset({S.EXPIRED}),
    K.RESOLVE: _WORKING_RESOLVE | {S.REJECTED},
}

TRANSITIONS: Mapping[OrderStatus, Mapping[EventKind, frozenset[OrderStatus]]] = {
    S.NEW: {K.SUBMIT: frozenset({S.SUBMITTED}), K.CANCEL_REQUEST: frozenset({S.CANCELED})},
    S.SUBMITTED: {**_IN_FLIGHT, K.TIMEOUT: frozenset({S.UNKNOWN})},
    S.UNKNOWN: dict(_IN_FLIGHT),
    S.ACCEPTED: {
        K.ACCEPT: frozenset({S.ACCEPTED}),
        K.FILL: frozenset({S.PARTIALLY_FILLED, S.FILLED}),
        K.CANCEL_REQUEST: frozenset({S.PENDING_CANCEL}),
        K.CANCEL: frozenset({S.CANCELED}),
        K.EXPIRE: frozenset({S.EXPIRED}),
        K.RESOLVE: _WORKING_RESOLVE,
    },
    S.PARTIALLY_FILLED: {
        K.ACCEPT: frozenset({S.PARTIALLY_FILLED}),
        K.FILL: frozenset({S.PARTIALLY_FILLED, S.FILLED}),
        K.CANCEL_REQUEST: frozenset({S.PENDING_CANCEL}),
        K.CANCEL: frozenset({S.CANCELED}),
        K.EXPIRE: frozenset({S.EXPIRED}),
        K.RESOLVE: _WORKING_RESOLVE - {S.ACCEPTED},
    },
    S.PENDING_CANCEL: {
        K.ACCEPT: frozenset({S.PENDING_CANCEL}),
        K.FILL: frozenset({S.PENDING_CANCEL, S.FILLED}),
        K.CANCEL_REJECT: frozenset({S.ACCEPTED, S.PARTIALLY_FILLED}),
        K.CANCEL: frozenset({S.CANCELED}),
        K.EXPIRE: frozenset({S.EXPIRED}),
        K.RESOLVE: _WORKING_RESOLVE,
    },
    S.FILLED: {},
    S.CANCELED: {},
    S.REJECTED: {},
    S.EXPIRED: {},
}

# Sums of fills are exact (traps Inexact): 60 digits hold any product of two exchange numbers.
_EXACT = Context(prec=60, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, Inexact])
_AVG = Context(prec=34, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation])
_EVENT_TYPES = (Submitted, Accepted, FillReceived, CancelRequested, CancelRejected, Canceled, Rejected, Expired,
                TimedOut, Resolved)


@dataclass(frozen=True, slots=True)
class Transition:
    """One applied event: when (the event's ts), what, and the status before and after."""

    ts: int
    event: OrderEvent
    from_status: OrderStatus
    to_status: OrderStatus


@dataclass(frozen=True, slots=True)
class _State:
    status: OrderStatus
    filled_qty: Decimal
    filled_notional: Decimal
    fills: tuple[Fill, ...]
    fees: tuple[tuple[str, Decimal], ...]  # sorted by asset
    venue_order_id: str | None
    reason: str
    ts_submitted: int | None
    ts_last: int


@dataclass(frozen=True, slots=True)
class OrderSnapshot:
    """An immutable view of an order's state (what the journal hands out; equal ⇔ same state)."""

    order: Order
    status: OrderStatus
    filled_qty: Decimal
    filled_notional: Decimal
    fills: tuple[Fill, ...]
    fees: tuple[tuple[str, Decimal], ...]
    venue_order_id: str | None
    reason: str
    ts_submitted: int | None
    ts_last: int
    history: tuple[Transition, ...]

    @property
    def client_order_id(self) -> str:
        return self.order.client_order_id

    @property
    def remaining_qty(self) -> Decimal:
        return self.order.qty - self.filled_qty

    @property
    def avg_price(self) -> Decimal | None:
        return _avg(self.filled_notional, self.filled_qty)

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    @property
    def is_in_flight(self) -> bool:
        return self.status.is_in_flight


@dataclass(frozen=True, slots=True)
class PlannedTransition:
    """The result of `OrderStateMachine.plan`: committed only after it is durably journaled."""

    base: _State
    new: _State
    transition: Transition


def _avg(notional: Decimal, qty: Decimal) -> Decimal | None:
    if not qty:
        return None
    with localcontext(_AVG):
        return notional / qty


def allowed_events(status: OrderStatus) -> frozenset[EventKind]:
    return frozenset(TRANSITIONS[status])


class OrderStateMachine:
    """The state of one order. Change it only through `apply` (or `plan` + `commit`, which the
    journal uses so that nothing changes in memory before it is on disk)."""

    def __init__(self, order: Order):
        if not isinstance(order, Order):
            raise OrderValueError(f"expected an Order, got {type(order).__name__}")
        self._order = order
        self._state = _State(S.NEW, Decimal(0), Decimal(0), (), (), None, "", None, order.ts_created)
        self._trades: dict[str, Fill] = {}
        self._history: list[Transition] = []

    @classmethod
    def replay(cls, order: Order, events: Iterable[OrderEvent]) -> OrderStateMachine:
        """Rebuild an order's state from its journaled events (each must apply)."""
        machine = cls(order)
        for event in events:
            machine.apply(event)
        return machine

    # --- views -----------------------------------------------------------------------------
    @property
    def order(self) -> Order:
        return self._order

    @property
    def client_order_id(self) -> str:
        return self._order.client_order_id

    @property
    def status(self) -> OrderStatus:
        return self._state.status

    @property
    def filled_qty(self) -> Decimal:
        return self._state.filled_qty

    @property
    def remaining_qty(self) -> Decimal:
        return self._order.qty - self._state.filled_qty

    @property
    def filled_notional(self) -> Decimal:
        return self._state.filled_notional

    @property
    def avg_price(self) -> Decimal | None:
        """Σ qty·price / Σ qty over the distinct fills (34 significant digits; exact when it terminates)."""
        return _avg(self._state.filled_notional, self._state.filled_qty)

    @property
    def fills(self) -> tuple[Fill, ...]:
        return self._state.fills

    @property
    def fees(self) -> dict[str, Decimal]:
        return dict(self._state.fees)

    @property
    def venue_order_id(self) -> str | None:
        return self._state.venue_order_id

    @property
    def reason(self) -> str:
        return self._state.reason

    @property
    def history(self) -> tuple[Transition, ...]:
        return tuple(self._history)

    @property
    def is_terminal(self) -> bool:
        return self._state.status.is_terminal

    def snapshot(self) -> OrderSnapshot:
        st = self._state
        return OrderSnapshot(self._order, st.status, st.filled_qty, st.filled_notional, st.fills, st.fees,
                             st.venue_order_id, st.reason, st.ts_submitted, st.ts_last, tuple(self._history))

    # --- applying events ---------------------------------------------------------------------
    def apply(self, event: OrderEvent) -> bool:
        """Apply an event. False: a duplicate fill (already applied; nothing recorded). Raises a typed
        error (see errors.py) and leaves the state untouched when the event cannot apply."""
        planned = self.plan(event)
        if planned is None:
            return False
        self.commit(planned)
        return True

    def plan(self, event: OrderEvent) -> PlannedTransition | None:
        """Compute the transition without changing anything (None: duplicate fill, nothing to do)."""
        if not isinstance(event, _EVENT_TYPES):
            raise OrderValueError(f"not an order event: {event!r}")
        st = self._state
        if isinstance(event, FillReceived) and self._is_duplicate(event.fill, {}):
            return None
        allowed = TRANSITIONS[st.status]
        if event.kind not in allowed:
            cls = TerminalOrderError if st.status.is_terminal else InvalidTransitionError
            raise cls(f"order {self.client_order_id}: event '{event.kind.value}' is not allowed in status "
                      f"{st.status.value} (allowed: {sorted(k.value for k in allowed) or 'none, terminal'})",
                      st.status, event.kind)
        new = self._next_state(st, event)
        if new.status not in allowed[event.kind]:
            raise InvalidTransitionError(
                f"order {self.client_order_id}: '{event.kind.value}' would lead {st.status.value} → "
                f"{new.status.value}, which the transition table does not allow", st.status, event.kind)
        new = replace(new, ts_last=event.ts)
        return PlannedTransition(st, new, Transition(event.ts, event, st.status, new.status))

    def commit(self, planned: PlannedTransition) -> None:
        if planned.base is not self._state:
            raise InvalidTransitionError(f"order {self.client_order_id}: planned transition is stale")
        for f in planned.new.fills[len(planned.base.fills):]:
            self._trades[f.trade_id] = f
        self._state = planned.new
        self._history.append(planned.transition)

    # --- shorthands --------------------------------------------------------------------------
    def submit(self, ts: int) -> bool:
        return self.apply(Submitted(ts))

    def accept(self, ts: int, venue_order_id: str) -> bool:
        return self.apply(Accepted(ts, venue_order_id))

    def fill(self, ts: int, fill: Fill) -> bool:
        return self.apply(FillReceived(ts, fill))

    def request_cancel(self, ts: int) -> bool:
        return self.apply(CancelRequested(ts))

    def cancel_rejected(self, ts: int, reason: str = "") -> bool:
        return self.apply(CancelRejected(ts, reason))

    def canceled(self, ts: int, reason: str = "", executed_qty: Decimal | None = None) -> bool:
        return self.apply(Canceled(ts, reason, executed_qty))

    def rejected(self, ts: int, reason: str) -> bool:
        return self.apply(Rejected(ts, reason))

    def expired(self, ts: int, executed_qty: Decimal | None = None) -> bool:
        return self.apply(Expired(ts, executed_qty))

    def timeout(self, ts: int) -> bool:
        return self.apply(TimedOut(ts))

    def resolve(self, ts: int, view: VenueOrderView, not_found_grace_ns: int | None = None) -> bool:
        ev = Resolved(ts, view) if not_found_grace_ns is None else Resolved(ts, view, not_found_grace_ns)
        return self.apply(ev)

    # --- internals ---------------------------------------------------------------------------
    def _is_duplicate(self, fill: Fill, pending: dict[str, Fill]) -> bool:
        known = self._trades.get(fill.trade_id) or pending.get(fill.trade_id)
        if known is None:
            return False
        if not known.same_execution(fill):
            raise FillConflictError(
                f"order {self.client_order_id}: trade_id={fill.trade_id} already applied as qty={known.qty} "
                f"price={known.price} fee={known.fee} {known.fee_asset}, now reported as qty={fill.qty} "
                f"price={fill.price} fee={fill.fee} {fill.fee_asset}")
        return True

    def _add_fills(self, st: _State, fills: Iterable[Fill]) -> _State:
        pending: dict[str, Fill] = {}
        filled, notional, fees = st.filled_qty, st.filled_notional, dict(st.fees)
        try:
            with localcontext(_EXACT):
                for f in fills:
                    if self._is_duplicate(f, pending):
                        continue
                    new_filled = filled + f.qty
                    if new_filled > self._order.qty:
                        raise OverfillError(
                            f"order {self.client_order_id}: fill trade_id={f.trade_id} qty={f.qty} would bring the "
                            f"filled quantity to {new_filled}, above the order quantity {self._order.qty}; "
                            "nothing applied")
                    pending[f.trade_id] = f
                    filled = new_filled
                    notional = notional + f.qty * f.price
                    fees[f.fee_asset] = fees.get(f.fee_asset, Decimal(0)) + f.fee
        except Inexact:
            raise OrderValueError("fill arithmetic would lose precision (more than 60 significant digits)") from None
        return replace(st, filled_qty=filled, filled_notional=notional, fills=st.fills + tuple(pending.values()),
                       fees=tuple(sorted(fees.items())))

    def _check_executed(self, filled: Decimal, executed: Decimal | None, what: str) -> None:
        if executed is None or executed == filled:
            return
        if executed > filled:
            raise MissingFillsError(
                f"order {self.client_order_id}: venue reports executed_qty={executed} ({what}) but the applied fills "
                f"sum to {filled}; apply the missing trades first")
        raise OrderInconsistencyError(
            f"order {self.client_order_id}: venue reports executed_qty={executed} ({what}) below the applied fills "
            f"{filled}")

    def _filled_status(self, st: _State, working: OrderStatus) -> OrderStatus:
        return S.FILLED if st.filled_qty == self._order.qty else working

    def _next_state(self, st: _State, ev: OrderEvent) -> _State:
        status = st.status
        cid = self.client_order_id
        if isinstance(ev, Submitted):
            return replace(st, status=S.SUBMITTED, ts_submitted=ev.ts)
        if isinstance(ev, Accepted):
            if st.venue_order_id is not None and st.venue_order_id != ev.venue_order_id:
                raise OrderInconsistencyError(f"order {cid}: accepted as venue_order_id={ev.venue_order_id}, "
                                              f"already known as {st.venue_order_id}")
            target = status if status in (S.PARTIALLY_FILLED, S.PENDING_CANCEL) else S.ACCEPTED
            return replace(st, status=target, venue_order_id=ev.venue_order_id)
        if isinstance(ev, FillReceived):
            new = self._add_fills(st, (ev.fill,))
            working = S.PENDING_CANCEL if status is S.PENDING_CANCEL else S.PARTIALLY_FILLED
            return replace(new, status=self._filled_status(new, working))
        if isinstance(ev, CancelRequested):
            if status is S.NEW:
                return replace(st, status=S.CANCELED, reason="canceled locally before submission")
            return replace(st, status=S.PENDING_CANCEL)
        if isinstance(ev, CancelRejected):
            return replace(st, status=S.PARTIALLY_FILLED if st.filled_qty else S.ACCEPTED, reason=ev.reason)
        if isinstance(ev, Canceled):
            self._check_executed(st.filled_qty, ev.executed_qty, "canceled")
            return replace(st, status=S.CANCELED, reason=ev.reason)
        if isinstance(ev, Expired):
            self._check_executed(st.filled_qty, ev.executed_qty, "expired")
            return replace(st, status=S.EXPIRED)
        if isinstance(ev, Rejected):
            return replace(st, status=S.REJECTED, reason=ev.reason)
        if isinstance(ev, TimedOut):
            return replace(st, status=S.UNKNOWN)
        assert isinstance(ev, Resolved)
        return self._resolve(st, ev)

    def _resolve(self, st: _State, ev: Resolved) -> _State:
        view, status, cid = ev.view, st.status, self.client_order_id
        if view.status is VenueStatus.NOT_FOUND:
            if status.is_in_flight:
                waited = ev.ts - (st.ts_submitted if st.ts_submitted is not None else st.ts_last)
                if waited < ev.not_found_grace_ns:
                    raise ResolutionInconclusiveError(
                        f"order {cid}: venue does not know it {waited} ns after submission, inside the "
                        f"{ev.not_found_grace_ns} ns grace window; ask again later")
                return replace(st, status=S.REJECTED,
                               reason=f"not found at venue {waited} ns after submission (never reached it)")
            if st.filled_qty:
                raise OrderInconsistencyError(
                    f"order {cid}: venue does not know an order it acknowledged and filled {st.filled_qty} of")
            return replace(st, status=S.CANCELED,
                           reason="not found at venue: acknowledged, never filled, no longer live (archived)")
        if view.venue_order_id is not None and st.venue_order_id not in (None, view.venue_order_id):
            raise OrderInconsistencyError(f"order {cid}: venue reports venue_order_id={view.venue_order_id}, "
                                          f"known as {st.venue_order_id}")
        new = self._add_fills(st, view.fills)
        self._check_executed(new.filled_qty, view.executed_qty, f"venue status {view.status.value}")
        filled, qty = new.filled_qty, self._order.qty
        vs = view.status
        if vs is VenueStatus.NEW:
            target = S.ACCEPTED if not filled else None
        elif vs is VenueStatus.PARTIALLY_FILLED:
            target = S.PARTIALLY_FILLED if 0 < filled < qty else None
        elif vs is VenueStatus.FILLED:
            target = S.FILLED if filled == qty else None
        elif vs is VenueStatus.REJECTED:
            target = S.REJECTED if not filled else None
        elif vs is VenueStatus.CANCELED:
            target = S.CANCELED
        else:
            target = S.EXPIRED
        if target is None or target not in TRANSITIONS[status][K.RESOLVE]:
            raise OrderInconsistencyError(
                f"order {cid}: venue status {vs.value} with executed_qty={view.executed_qty} (order qty {qty}) "
                f"cannot follow local status {status.value}")
        reason = view.reason or st.reason
        return replace(new, status=target, reason=reason,
                       venue_order_id=view.venue_order_id or st.venue_order_id)
