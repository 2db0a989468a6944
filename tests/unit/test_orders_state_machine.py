"""Order state machine: the full transition table, fills (dedup, overfill, average price), venue
resolution rules, and hypothesis invariants over random event sequences."""

from __future__ import annotations

from decimal import Context, Decimal

import pytest
from hypothesis import given, settings

from core.errors import HaltError, RejectedError, RetryableError, TradingError
from core.time import NS_PER_S
from execution.orders import (
    TRANSITIONS,
    Accepted,
    Canceled,
    CancelRejected,
    CancelRequested,
    EventKind,
    Expired,
    Fill,
    FillConflictError,
    FillReceived,
    InvalidTransitionError,
    MissingFillsError,
    OrderInconsistencyError,
    OrderStateMachine,
    OrderStatus,
    OrderValueError,
    OverfillError,
    Rejected,
    ResolutionInconclusiveError,
    Resolved,
    Submitted,
    TerminalOrderError,
    TimedOut,
    VenueOrderView,
    VenueStatus,
)
from tests.support.orders import T0, event_specs, make_order, pool_fill, timed_events

S, K, V = OrderStatus, EventKind, VenueStatus
D = Decimal


def fill(tid: str, qty: str, price: str = "100", fee: str = "0.01") -> Fill:
    return Fill(trade_id=tid, qty=D(qty), price=D(price), fee=D(fee), fee_asset="USDT", ts_event=T0)


# paths from NEW to every status
PATHS = {
    S.NEW: [],
    S.SUBMITTED: [Submitted(T0 + 1)],
    S.UNKNOWN: [Submitted(T0 + 1), TimedOut(T0 + 2)],
    S.ACCEPTED: [Submitted(T0 + 1), Accepted(T0 + 2, "v1")],
    S.PARTIALLY_FILLED: [Submitted(T0 + 1), Accepted(T0 + 2, "v1"), FillReceived(T0 + 3, fill("a", "0.4"))],
    S.PENDING_CANCEL: [Submitted(T0 + 1), Accepted(T0 + 2, "v1"), CancelRequested(T0 + 3)],
    S.FILLED: [Submitted(T0 + 1), Accepted(T0 + 2, "v1"), FillReceived(T0 + 3, fill("a", "1.0"))],
    S.CANCELED: [Submitted(T0 + 1), Accepted(T0 + 2, "v1"), CancelRequested(T0 + 3), Canceled(T0 + 4)],
    S.REJECTED: [Submitted(T0 + 1), Rejected(T0 + 2, "insufficient margin")],
    S.EXPIRED: [Submitted(T0 + 1), Accepted(T0 + 2, "v1"), Expired(T0 + 3)],
}
TS = T0 + 1000 * NS_PER_S


def canonical_event(kind: EventKind, status: OrderStatus):
    """An event of `kind` that is valid whenever the table allows the kind in `status`."""
    if kind is K.SUBMIT:
        return Submitted(TS)
    if kind is K.ACCEPT:
        return Accepted(TS, "v1")
    if kind is K.FILL:
        return FillReceived(TS, fill("z", "0.2"))
    if kind is K.CANCEL_REQUEST:
        return CancelRequested(TS)
    if kind is K.CANCEL_REJECT:
        return CancelRejected(TS, "order already filled?")
    if kind is K.CANCEL:
        return Canceled(TS, "user")
    if kind is K.REJECT:
        return Rejected(TS, "Filter failure")
    if kind is K.EXPIRE:
        return Expired(TS)
    if kind is K.TIMEOUT:
        return TimedOut(TS)
    view = {S.PARTIALLY_FILLED: VenueOrderView(V.PARTIALLY_FILLED, D("0.4"), "v1"),
            S.PENDING_CANCEL: VenueOrderView(V.CANCELED, D(0), "v1")}.get(status, VenueOrderView(V.NEW, D(0), "v1"))
    return Resolved(TS, view)


# the table, written out independently: (status, event kind) → status after the canonical event
EXPECTED = {
    (S.NEW, K.SUBMIT): S.SUBMITTED,
    (S.NEW, K.CANCEL_REQUEST): S.CANCELED,
    **{(s, k): t for s in (S.SUBMITTED, S.UNKNOWN) for k, t in [
        (K.ACCEPT, S.ACCEPTED), (K.FILL, S.PARTIALLY_FILLED), (K.CANCEL, S.CANCELED), (K.REJECT, S.REJECTED),
        (K.EXPIRE, S.EXPIRED), (K.RESOLVE, S.ACCEPTED)]},
    (S.SUBMITTED, K.TIMEOUT): S.UNKNOWN,
    (S.ACCEPTED, K.ACCEPT): S.ACCEPTED,
    (S.ACCEPTED, K.FILL): S.PARTIALLY_FILLED,
    (S.ACCEPTED, K.CANCEL_REQUEST): S.PENDING_CANCEL,
    (S.ACCEPTED, K.CANCEL): S.CANCELED,
    (S.ACCEPTED, K.EXPIRE): S.EXPIRED,
    (S.ACCEPTED, K.RESOLVE): S.ACCEPTED,
    (S.PARTIALLY_FILLED, K.ACCEPT): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, K.FILL): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, K.CANCEL_REQUEST): S.PENDING_CANCEL,
    (S.PARTIALLY_FILLED, K.CANCEL): S.CANCELED,
    (S.PARTIALLY_FILLED, K.EXPIRE): S.EXPIRED,
    (S.PARTIALLY_FILLED, K.RESOLVE): S.PARTIALLY_FILLED,
    (S.PENDING_CANCEL, K.ACCEPT): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, K.FILL): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, K.CANCEL_REJECT): S.ACCEPTED,
    (S.PENDING_CANCEL, K.CANCEL): S.CANCELED,
    (S.PENDING_CANCEL, K.EXPIRE): S.EXPIRED,
    (S.PENDING_CANCEL, K.RESOLVE): S.CANCELED,
}


def machine_in(status: OrderStatus) -> OrderStateMachine:
    m = OrderStateMachine.replay(make_order(), PATHS[status])
    assert m.status is status
    return m


def test_paths_reach_every_status_and_table_covers_them():
    assert set(PATHS) == set(OrderStatus) == set(TRANSITIONS)
    allowed = {(s, k) for s, row in TRANSITIONS.items() for k in row}
    assert allowed == set(EXPECTED)


@pytest.mark.parametrize("status", list(OrderStatus))
@pytest.mark.parametrize("kind", list(EventKind))
def test_full_transition_table(status, kind):
    m = machine_in(status)
    before = m.snapshot()
    event = canonical_event(kind, status)
    if (status, kind) in EXPECTED:
        assert m.apply(event) is True
        assert m.status is EXPECTED[(status, kind)]
        assert m.status in TRANSITIONS[status][kind]
        last = m.history[-1]
        assert (last.ts, last.event, last.from_status, last.to_status) == (TS, event, status, m.status)
        assert len(m.history) == len(before.history) + 1
    else:
        err = TerminalOrderError if status.is_terminal else InvalidTransitionError
        with pytest.raises(err) as info:
            m.apply(event)
        assert info.value.status is status and info.value.event is kind
        assert status.value in str(info.value) and kind.value in str(info.value)
        assert m.snapshot() == before


def test_terminal_statuses_allow_nothing():
    for s in OrderStatus:
        assert (TRANSITIONS[s] == {}) == s.is_terminal


# --- fills ------------------------------------------------------------------------------------

def test_duplicate_trade_id_counted_once_in_every_status_even_terminal():
    m = machine_in(S.ACCEPTED)
    assert m.fill(TS, fill("t1", "0.3")) is True
    n_hist = len(m.history)
    assert m.fill(TS + 1, fill("t1", "0.3")) is False
    assert m.filled_qty == D("0.3") and len(m.fills) == 1 and len(m.history) == n_hist
    assert m.fill(TS + 2, fill("t2", "0.7")) is True
    assert m.status is S.FILLED
    assert m.fill(TS + 3, fill("t1", "0.3")) is False  # late duplicate on a terminal order: a no-op
    assert m.filled_qty == D("1.0")


def test_same_trade_id_with_other_content_is_a_conflict():
    m = machine_in(S.ACCEPTED)
    m.fill(TS, fill("t1", "0.3"))
    before = m.snapshot()
    with pytest.raises(FillConflictError, match="trade_id=t1"):
        m.fill(TS, fill("t1", "0.4"))
    assert m.snapshot() == before


def test_overfill_is_refused_and_nothing_applied():
    m = machine_in(S.ACCEPTED)
    m.fill(TS, fill("t1", "0.6"))
    before = m.snapshot()
    with pytest.raises(OverfillError, match=r"qty=0.5 .* to 1.1, above the order quantity 1.0"):
        m.fill(TS + 1, fill("t2", "0.5"))
    assert m.snapshot() == before and m.status is S.PARTIALLY_FILLED
    assert issubclass(OverfillError, RejectedError)
    # a resolution carrying an overfill applies none of its fills
    with pytest.raises(OverfillError):
        m.resolve(TS + 2, VenueOrderView(V.FILLED, D("1.0"), "v1", (fill("t3", "0.4"), fill("t4", "0.5"))))
    assert m.snapshot() == before


def test_partial_then_final_fill_is_filled_with_exact_average_price():
    m = machine_in(S.ACCEPTED)
    m.fill(TS, fill("t1", "0.4", "100.1", "0.016016"))
    assert m.status is S.PARTIALLY_FILLED and m.remaining_qty == D("0.6")
    m.fill(TS + 1, fill("t2", "0.6", "100.2", "0.024048"))
    assert m.status is S.FILLED and m.remaining_qty == 0
    assert m.filled_qty == D("1.0")
    assert m.filled_notional == D("100.16")  # 40.04 + 60.12, exact
    assert m.avg_price == D("100.16")
    assert m.fees == {"USDT": D("0.040064")}
    # a non-terminating average is given to 34 significant digits
    m3 = machine_in(S.ACCEPTED)
    for i, p in enumerate(["1", "2", "2"]):
        m3.fill(TS + i, fill(f"x{i}", "0.3", p))
    assert m3.avg_price == Context(prec=34).divide(D("1.5"), D("0.9"))
    assert str(m3.avg_price) == "1." + "6" * 32 + "7"


def test_fill_during_pending_cancel_then_cancel_reject_returns_to_partially_filled():
    m = machine_in(S.PENDING_CANCEL)
    m.fill(TS, fill("t1", "0.25"))
    assert m.status is S.PENDING_CANCEL
    m.cancel_rejected(TS + 1, "too late")
    assert m.status is S.PARTIALLY_FILLED and m.reason == "too late"
    m.request_cancel(TS + 2)
    m.fill(TS + 3, fill("t2", "0.75"))
    assert m.status is S.FILLED  # the fill won the race against the cancel


def test_fill_before_ack_and_late_ack():
    m = machine_in(S.SUBMITTED)
    m.fill(TS, fill("t1", "0.5"))
    assert m.status is S.PARTIALLY_FILLED and m.venue_order_id is None
    m.accept(TS + 1, "v9")
    assert m.status is S.PARTIALLY_FILLED and m.venue_order_id == "v9"
    with pytest.raises(OrderInconsistencyError):
        m.accept(TS + 2, "v10")


def test_terminal_events_check_the_venue_executed_quantity():
    m = machine_in(S.PARTIALLY_FILLED)  # 0.4 filled
    before = m.snapshot()
    with pytest.raises(MissingFillsError, match="executed_qty=0.5"):
        m.canceled(TS, "user", D("0.5"))
    with pytest.raises(OrderInconsistencyError):
        m.expired(TS, D("0.3"))
    assert m.snapshot() == before
    assert issubclass(MissingFillsError, RetryableError) and issubclass(OrderInconsistencyError, HaltError)
    m.canceled(TS, "user", D("0.4"))
    assert m.status is S.CANCELED and m.filled_qty == D("0.4")


def test_new_order_canceled_locally_never_sent():
    m = machine_in(S.NEW)
    m.request_cancel(TS)
    assert m.status is S.CANCELED and "before submission" in m.reason


# --- resolution from the venue ---------------------------------------------------------------

def test_unknown_resolved_filled_with_trades():
    m = machine_in(S.UNKNOWN)
    view = VenueOrderView(V.FILLED, D("1.0"), "v7", (fill("t1", "0.4", "100"), fill("t2", "0.6", "101")))
    m.resolve(TS, view)
    assert m.status is S.FILLED and m.venue_order_id == "v7" and m.avg_price == D("100.6")


def test_resolution_without_the_trades_is_refused_until_they_come():
    m = machine_in(S.UNKNOWN)
    before = m.snapshot()
    with pytest.raises(MissingFillsError):
        m.resolve(TS, VenueOrderView(V.FILLED, D("1.0"), "v7"))
    assert m.snapshot() == before
    # trades already applied from the stream count; the view need not repeat them
    m.fill(TS, fill("t1", "1.0"))
    assert m.status is S.FILLED


def test_not_found_in_flight_waits_for_the_grace_window_then_rejects():
    m = machine_in(S.UNKNOWN)  # submitted at T0 + 1
    before = m.snapshot()
    grace = 60 * NS_PER_S
    with pytest.raises(ResolutionInconclusiveError):
        m.resolve(T0 + 1 + grace - 1, VenueOrderView(V.NOT_FOUND), grace)
    assert m.snapshot() == before
    m.resolve(T0 + 1 + grace, VenueOrderView(V.NOT_FOUND), grace)
    assert m.status is S.REJECTED and "not found at venue" in m.reason


def test_not_found_after_ack():
    m = machine_in(S.ACCEPTED)
    m.resolve(TS, VenueOrderView(V.NOT_FOUND))
    assert m.status is S.CANCELED and "archived" in m.reason
    pf = machine_in(S.PARTIALLY_FILLED)
    before = pf.snapshot()
    with pytest.raises(OrderInconsistencyError):
        pf.resolve(TS, VenueOrderView(V.NOT_FOUND))
    assert pf.snapshot() == before


@pytest.mark.parametrize("status,view", [
    (S.ACCEPTED, VenueOrderView(V.REJECTED, D(0), "v1")),  # rejected after acknowledged
    (S.ACCEPTED, VenueOrderView(V.NEW, D(0), "v2")),  # another venue order id
    (S.PARTIALLY_FILLED, VenueOrderView(V.NEW, D(0), "v1")),  # venue shows fewer executed than our trades
    (S.UNKNOWN, VenueOrderView(V.PARTIALLY_FILLED, D("1.0"), "v1", (fill("a", "1.0"),))),  # "partial" yet all
    (S.UNKNOWN, VenueOrderView(V.FILLED, D("0.5"), "v1", (fill("a", "0.5"),))),  # "filled" yet half
])
def test_contradictory_venue_views_halt(status, view):
    m = machine_in(status)
    before = m.snapshot()
    with pytest.raises(OrderInconsistencyError):
        m.resolve(TS, view)
    assert m.snapshot() == before


def test_resolution_overrides_local_pending_cancel():
    m = machine_in(S.PENDING_CANCEL)
    m.resolve(TS, VenueOrderView(V.PARTIALLY_FILLED, D("0.2"), "v1", (fill("a", "0.2"),)))
    assert m.status is S.PARTIALLY_FILLED


def test_bad_values_are_refused():
    with pytest.raises(OrderValueError):
        Fill(trade_id="a", qty=0.1, price=D(1), fee=D(0), fee_asset="USDT", ts_event=0)  # float
    with pytest.raises(OrderValueError):
        Fill(trade_id="a", qty=D(0), price=D(1), fee=D(0), fee_asset="USDT", ts_event=0)
    with pytest.raises(OrderValueError):
        Fill(trade_id="", qty=D(1), price=D(1), fee=D(0), fee_asset="USDT", ts_event=0)
    with pytest.raises(OrderValueError):
        VenueOrderView(V.NOT_FOUND, D(1))
    with pytest.raises(OrderValueError):
        Submitted(1.5)
    with pytest.raises(OrderValueError):
        OrderStateMachine(make_order()).apply("submitted")


# --- properties ----------------------------------------------------------------------------------

@settings(max_examples=400, deadline=None)
@given(event_specs)
def test_random_event_sequences_keep_the_invariants(specs):
    order = make_order()
    m = OrderStateMachine(order)
    seen_trades: set[str] = set()
    terminal_at = None
    for event in timed_events(specs):
        before = m.snapshot()
        try:
            applied = m.apply(event)
        except TradingError as err:
            assert not isinstance(err, OrderValueError), err
            assert m.snapshot() == before  # a refused event changes nothing
            continue
        if isinstance(event, FillReceived):
            seen_trades.add(event.fill.trade_id)
        elif isinstance(event, Resolved):
            seen_trades.update(f.trade_id for f in event.view.fills)
        if not applied:
            assert m.snapshot() == before
        if terminal_at is not None:
            assert m.status is terminal_at and m.snapshot() == before  # terminal never changes
        elif m.status.is_terminal:
            terminal_at = m.status
        ids = [f.trade_id for f in m.fills]
        assert len(ids) == len(set(ids))
        assert set(ids) == seen_trades
        assert m.filled_qty == sum((f.qty for f in m.fills), D(0)) <= order.qty
        assert m.filled_notional == sum((f.qty * f.price for f in m.fills), D(0))
        assert (m.filled_qty == order.qty) == (m.status is S.FILLED)
        assert (m.filled_qty > 0) <= (m.status not in (S.NEW, S.SUBMITTED, S.UNKNOWN, S.ACCEPTED, S.REJECTED))
    replayed = OrderStateMachine.replay(order, [t.event for t in m.history])
    assert replayed.snapshot() == m.snapshot()


@settings(max_examples=100, deadline=None)
@given(event_specs)
def test_every_recorded_transition_follows_the_table(specs):
    m = OrderStateMachine(make_order())
    for event in timed_events(specs):
        try:
            m.apply(event)
        except TradingError:
            pass
    prev = S.NEW
    for t in m.history:
        assert t.from_status is prev and t.to_status in TRANSITIONS[t.from_status][t.event.kind]
        prev = t.to_status
    assert prev is m.status


def test_pool_fills_are_stable():
    assert pool_fill(3).same_execution(pool_fill(3)) and not pool_fill(3).same_execution(pool_fill(4))
