"""Typed errors of the order layer, placed in the project's hierarchy by what the caller does next.

- `RejectedError` family: the input (an order, an event) is wrong; nothing was applied or written,
  and repeating the same input fails again.
- `RetryableError` family: the answer is not known yet (fills still missing, the venue's "not
  found" still inside its grace window); nothing was applied; ask again later.
- `OrderInconsistencyError` (a `HaltError`): the venue's view contradicts what we know; nothing was
  applied; trading on that order's strategy/symbol must stop until a person or a deeper
  reconciliation settles it.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from core.errors import FatalError, HaltError, RejectedError, RetryableError


class OrderValueError(RejectedError):
    """An order, fill or event value is malformed (wrong type, float where Decimal is required, ≤ 0)."""


class InvalidClientOrderIdError(RejectedError):
    """A client order id (or one of its parts) is not valid / not one of ours."""


class RejectReason(str, Enum):
    """Why `validate_order` refused an order before it reached the venue."""

    UNKNOWN_SYMBOL = "unknown_symbol"
    INVALID_QTY = "invalid_qty"
    QTY_OFF_STEP = "qty_off_step"
    QTY_BELOW_MIN = "qty_below_min"
    QTY_ABOVE_MAX = "qty_above_max"
    MISSING_PRICE = "missing_price"
    UNEXPECTED_PRICE = "unexpected_price"
    INVALID_PRICE = "invalid_price"
    PRICE_OFF_TICK = "price_off_tick"
    PRICE_BELOW_MIN = "price_below_min"
    PRICE_ABOVE_MAX = "price_above_max"
    PRICE_OUT_OF_BAND = "price_out_of_band"
    MISSING_STOP_PRICE = "missing_stop_price"
    UNEXPECTED_STOP_PRICE = "unexpected_stop_price"
    STOP_WOULD_TRIGGER = "stop_would_trigger"
    INVALID_TIME_IN_FORCE = "invalid_time_in_force"
    POST_ONLY_REQUIRES_LIMIT = "post_only_requires_limit"
    REDUCE_ONLY_NOT_SUPPORTED = "reduce_only_not_supported"
    NOTIONAL_BELOW_MIN = "notional_below_min"
    NOTIONAL_ABOVE_MAX = "notional_above_max"
    REFERENCE_PRICE_REQUIRED = "reference_price_required"
    INSUFFICIENT_BALANCE = "insufficient_balance"


class OrderRejected(RejectedError):
    """An order refused locally, before any venue call. `reason` is the code, `field`/`value` what
    was wrong; the message names the symbol, the field, the value and the requirement."""

    def __init__(self, reason: RejectReason, message: str, field: str | None = None, value: Any = None):
        super().__init__(f"[{reason.value}] {message}")
        self.reason = reason
        self.field = field
        self.value = value


class InvalidTransitionError(RejectedError):
    """The event is not allowed in the order's current status; the order is unchanged."""

    def __init__(self, message: str, status: Any = None, event: Any = None):
        super().__init__(message)
        self.status = status
        self.event = event


class TerminalOrderError(InvalidTransitionError):
    """The order is in a terminal status and never changes again (a late or stale message)."""


class OverfillError(RejectedError):
    """A fill would take the filled quantity above the order quantity; nothing was applied."""


class FillConflictError(RejectedError):
    """A trade id already applied arrived again with a different quantity, price or fee."""


class MissingFillsError(RetryableError):
    """The venue reports more executed quantity than the fills (trade ids) we hold: fetch the
    order's trades and apply them (or pass them in the venue view) first. Nothing was applied."""


class ResolutionInconclusiveError(RetryableError):
    """The venue does not know the order yet, but the request may still be processed (inside the
    not-found grace window). Ask again later; nothing was applied."""


class OrderInconsistencyError(HaltError):
    """The venue's view contradicts ours (different venue order id, fewer executed than our trades,
    rejected after acknowledged, ...). Nothing was applied; escalate."""


class DuplicateClientOrderIdError(RejectedError):
    """An intent with this client order id is already in the journal; nothing was written."""


class UnknownOrderError(RejectedError):
    """No order with this client order id in the journal."""


class JournalCorruptError(FatalError):
    """The journal's content cannot be replayed (a record that does not parse or does not apply)."""


class JournalLockedError(FatalError):
    """Another writer holds the journal; one journal has exactly one writer."""
