"""The order layer: order value types, the order state machine, deterministic client order ids,
local validation against exchange filters and the crash-safe order journal (docs/orders.md).

    from execution.orders import OrderJournal, OrderRequest, SymbolRules, validate_order

Pure and synchronous: no network, no clock (timestamps are passed in), stdlib `sqlite3` only.
"""

from __future__ import annotations

from execution.orders.client_ids import (
    BINANCE_CLIENT_ID_RE,
    MAX_SEQUENCE,
    ClientOrderId,
    ClientOrderIdFactory,
    format_client_order_id,
    is_our_client_order_id,
    parse_client_order_id,
    run_namespace,
)
from execution.orders.errors import (
    DuplicateClientOrderIdError,
    FillConflictError,
    InvalidClientOrderIdError,
    InvalidTransitionError,
    JournalCorruptError,
    JournalLockedError,
    MissingFillsError,
    OrderInconsistencyError,
    OrderRejected,
    OrderValueError,
    OverfillError,
    RejectReason,
    ResolutionInconclusiveError,
    TerminalOrderError,
    UnknownOrderError,
)
from execution.orders.events import (
    DEFAULT_NOT_FOUND_GRACE_NS,
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
    event_from_record,
    event_to_record,
)
from execution.orders.journal import (
    InMemoryJournalStore,
    JournalRecord,
    JournalStore,
    OrderJournal,
    SqliteJournalStore,
)
from execution.orders.model import (
    TERMINAL_STATUSES,
    Fill,
    Liquidity,
    Order,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
    VenueOrderView,
    VenueStatus,
)
from execution.orders.state_machine import (
    TRANSITIONS,
    OrderSnapshot,
    OrderStateMachine,
    PlannedTransition,
    Transition,
    allowed_events,
)
from execution.orders.validation import SymbolRules, round_down_to_step, validate_order

__all__ = [
    "BINANCE_CLIENT_ID_RE", "DEFAULT_NOT_FOUND_GRACE_NS", "MAX_SEQUENCE", "TERMINAL_STATUSES", "TRANSITIONS",
    "Accepted", "CancelRejected", "CancelRequested", "Canceled", "ClientOrderId", "ClientOrderIdFactory",
    "DuplicateClientOrderIdError", "EventKind", "Expired", "Fill", "FillConflictError", "FillReceived",
    "InMemoryJournalStore", "InvalidClientOrderIdError", "InvalidTransitionError", "JournalCorruptError",
    "JournalLockedError", "JournalRecord", "JournalStore", "Liquidity", "MissingFillsError", "Order", "OrderEvent",
    "OrderInconsistencyError", "OrderJournal", "OrderRejected", "OrderRequest", "OrderSide", "OrderSnapshot",
    "OrderStateMachine", "OrderStatus", "OrderType", "OrderValueError", "OverfillError", "PlannedTransition",
    "RejectReason", "Rejected", "ResolutionInconclusiveError", "Resolved", "SqliteJournalStore", "Submitted",
    "SymbolRules", "TerminalOrderError", "TimeInForce", "TimedOut", "Transition", "UnknownOrderError",
    "VenueOrderView", "VenueStatus", "allowed_events", "event_from_record", "event_to_record",
    "format_client_order_id", "is_our_client_order_id", "parse_client_order_id", "round_down_to_step",
    "run_namespace", "validate_order",
]
