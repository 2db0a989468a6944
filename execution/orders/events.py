"""Events that move an order through its state machine, as journaled. Each carries the timestamp
(UTC ns) at which we learned it; nothing here reads a clock."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Any, ClassVar

from core.time import NS_PER_S
from execution.orders.errors import OrderValueError
from execution.orders.model import Fill, VenueOrderView, _int, _text, to_decimal

# A venue processes a request only until its timestamp + recvWindow (Binance: ≤ 60 s); after that
# plus any clock skew, "not found" means it never will. Reconcilers may pass a tighter value.
DEFAULT_NOT_FOUND_GRACE_NS = 120 * NS_PER_S


class EventKind(str, Enum):
    SUBMIT = "submitted"
    ACCEPT = "accepted"
    FILL = "fill"
    CANCEL_REQUEST = "cancel_requested"
    CANCEL_REJECT = "cancel_rejected"
    CANCEL = "canceled"
    REJECT = "rejected"
    EXPIRE = "expired"
    TIMEOUT = "timeout"
    RESOLVE = "resolved"


def _check_ts(ts: Any) -> None:
    _int(ts, "ts")


def _opt_qty(value: Any) -> Decimal | None:
    d = to_decimal(value, "executed_qty", allow_none=True)
    if d is not None and d < 0:
        raise OrderValueError(f"executed_qty={d}: must be ≥ 0")
    return d


@dataclass(frozen=True, slots=True)
class Submitted:
    """Journaled immediately BEFORE the venue call."""

    ts: int
    kind: ClassVar[EventKind] = EventKind.SUBMIT

    def __post_init__(self) -> None:
        _check_ts(self.ts)


@dataclass(frozen=True, slots=True)
class Accepted:
    ts: int
    venue_order_id: str
    kind: ClassVar[EventKind] = EventKind.ACCEPT

    def __post_init__(self) -> None:
        _check_ts(self.ts)
        _text(self.venue_order_id, "venue_order_id")


@dataclass(frozen=True, slots=True)
class FillReceived:
    ts: int
    fill: Fill
    kind: ClassVar[EventKind] = EventKind.FILL

    def __post_init__(self) -> None:
        _check_ts(self.ts)
        if not isinstance(self.fill, Fill):
            raise OrderValueError("fill must be a Fill")


@dataclass(frozen=True, slots=True)
class CancelRequested:
    """Journaled before the cancel call (from NEW: a local cancel, nothing is sent)."""

    ts: int
    kind: ClassVar[EventKind] = EventKind.CANCEL_REQUEST

    def __post_init__(self) -> None:
        _check_ts(self.ts)


@dataclass(frozen=True, slots=True)
class CancelRejected:
    """The venue refused our cancel (e.g. already filled, unknown order): back to working."""

    ts: int
    reason: str = ""
    kind: ClassVar[EventKind] = EventKind.CANCEL_REJECT

    def __post_init__(self) -> None:
        _check_ts(self.ts)
        _text(self.reason, "reason", allow_empty=True)


@dataclass(frozen=True, slots=True)
class Canceled:
    """`executed_qty`: the venue's cumulative executed quantity in the report, when it has one
    (Binance `z`/`executedQty`); our fills must match it before the order may close."""

    ts: int
    reason: str = ""
    executed_qty: Decimal | None = None
    kind: ClassVar[EventKind] = EventKind.CANCEL

    def __post_init__(self) -> None:
        _check_ts(self.ts)
        _text(self.reason, "reason", allow_empty=True)
        object.__setattr__(self, "executed_qty", _opt_qty(self.executed_qty))


@dataclass(frozen=True, slots=True)
class Rejected:
    ts: int
    reason: str
    kind: ClassVar[EventKind] = EventKind.REJECT

    def __post_init__(self) -> None:
        _check_ts(self.ts)
        _text(self.reason, "reason", allow_empty=True)


@dataclass(frozen=True, slots=True)
class Expired:
    ts: int
    executed_qty: Decimal | None = None
    kind: ClassVar[EventKind] = EventKind.EXPIRE

    def __post_init__(self) -> None:
        _check_ts(self.ts)
        object.__setattr__(self, "executed_qty", _opt_qty(self.executed_qty))


@dataclass(frozen=True, slots=True)
class TimedOut:
    """The submission's answer did not come (timeout, disconnect, 5xx): outcome unknown."""

    ts: int
    kind: ClassVar[EventKind] = EventKind.TIMEOUT

    def __post_init__(self) -> None:
        _check_ts(self.ts)


@dataclass(frozen=True, slots=True)
class Resolved:
    """The venue's view of the order, asked by client order id; it overrides ours (see docs/orders.md)."""

    ts: int
    view: VenueOrderView
    not_found_grace_ns: int = DEFAULT_NOT_FOUND_GRACE_NS
    kind: ClassVar[EventKind] = EventKind.RESOLVE

    def __post_init__(self) -> None:
        _check_ts(self.ts)
        if not isinstance(self.view, VenueOrderView):
            raise OrderValueError("view must be a VenueOrderView")
        if _int(self.not_found_grace_ns, "not_found_grace_ns") < 0:
            raise OrderValueError(f"not_found_grace_ns={self.not_found_grace_ns}: must be ≥ 0")


OrderEvent = (Submitted | Accepted | FillReceived | CancelRequested | CancelRejected | Canceled | Rejected
              | Expired | TimedOut | Resolved)

_BY_KIND: dict[EventKind, type] = {cls.kind: cls for cls in (Submitted, Accepted, FillReceived, CancelRequested,
                                                              CancelRejected, Canceled, Rejected, Expired,
                                                              TimedOut, Resolved)}


def event_to_record(event: OrderEvent) -> dict[str, Any]:
    """JSON-able dict of an event (Decimals as strings, exact)."""
    rec: dict[str, Any] = {"kind": event.kind.value, "ts": event.ts}
    if isinstance(event, Accepted):
        rec["venue_order_id"] = event.venue_order_id
    elif isinstance(event, FillReceived):
        rec["fill"] = event.fill.to_record()
    elif isinstance(event, (CancelRejected, Rejected)):
        rec["reason"] = event.reason
    elif isinstance(event, Canceled):
        rec["reason"] = event.reason
        rec["executed_qty"] = None if event.executed_qty is None else str(event.executed_qty)
    elif isinstance(event, Expired):
        rec["executed_qty"] = None if event.executed_qty is None else str(event.executed_qty)
    elif isinstance(event, Resolved):
        rec["view"] = event.view.to_record()
        rec["not_found_grace_ns"] = event.not_found_grace_ns
    return rec


def event_from_record(rec: dict[str, Any]) -> OrderEvent:
    rec = dict(rec)
    try:
        cls = _BY_KIND[EventKind(rec.pop("kind"))]
    except (KeyError, ValueError) as err:
        raise OrderValueError(f"not an order event record: {err}") from None
    if cls is FillReceived:
        rec["fill"] = Fill.from_record(rec["fill"])
    elif cls is Resolved:
        rec["view"] = VenueOrderView.from_record(rec["view"])
    return cls(**rec)
