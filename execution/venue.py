"""The venue port: what the order manager and the reconciler need from an exchange, and the typed
answers and errors a venue adapter returns (docs/venue.md).

Everything is `Decimal` and the order layer's own types (`Order`, `Fill`, `VenueOrderView`); vendor
exceptions never cross this boundary. The errors are split by what the caller does next:

- `AmbiguousSubmitError` (retryable): the submission's outcome is unknown (timeout, disconnect, 5xx,
  Binance -1006/-1007). The order may or may not exist: it goes UNKNOWN and is resolved by asking
  the venue by client order id. It is NEVER resent.
- `SubmitNotProcessedError` (retryable): the venue answered that it did not process the submission
  (429/418 rate limit, or the request never left this process). The order certainly does not exist;
  a new attempt is a new order with a new client order id.
- `VenueRejectedError` (rejected): the venue refused the request, with Binance's code and message.
- `VenueUnavailableError` (retryable): a read or cancel still failed after the adapter's retries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, runtime_checkable

from core.errors import RateLimitedError, RejectedError, RetryableError
from execution.orders.model import (
    Fill,
    Order,
    OrderSide,
    OrderType,
    TimeInForce,
    VenueOrderView,
    VenueStatus,
)

# -- errors ---------------------------------------------------------------------------------------


class AmbiguousSubmitError(RetryableError):
    """The submission may or may not have reached the book. Resolve by client order id; never resend."""

    def __init__(self, message: str, client_order_id: str):
        super().__init__(message)
        self.client_order_id = client_order_id


class SubmitNotProcessedError(RetryableError):
    """The venue did not process the submission (429/418, or it was never sent): the order does not
    exist. `retry_after` in seconds when the venue said so."""

    def __init__(self, message: str, client_order_id: str, retry_after: float | None = None, banned: bool = False):
        super().__init__(message)
        self.client_order_id = client_order_id
        self.retry_after = retry_after
        self.banned = banned


class VenueRejectedError(RejectedError):
    """The venue refused the request. `code`/`venue_message` are Binance's (`code` None when the answer
    carried none); `http_status` the HTTP status."""

    def __init__(self, message: str, *, code: int | None, venue_message: str, http_status: int | None,
                 client_order_id: str | None = None):
        super().__init__(message)
        self.code = code
        self.venue_message = venue_message
        self.http_status = http_status
        self.client_order_id = client_order_id
        self.snapshot = None  # the journaled REJECTED order, set by the order manager


class VenueUnavailableError(RetryableError):
    """A read or cancel failed after the adapter's retries (network, 5xx, rate limits)."""


class VenueRateLimitedError(RateLimitedError):
    """A read gave up because the venue kept rate limiting it."""


# -- answers --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubmitAck:
    """The venue's acknowledgement of a submission. `status` is the venue's status in the ack (a
    non-marketable IOC can already be EXPIRED); fills are fetched separately."""

    client_order_id: str
    venue_order_id: str
    status: VenueStatus
    executed_qty: Decimal
    ts_event: int


@dataclass(frozen=True, slots=True)
class VenueFill:
    """One of the account's trades, as listed by the venue (fills-since)."""

    symbol: str
    venue_order_id: str
    side: OrderSide
    fill: Fill


@dataclass(frozen=True, slots=True)
class VenueOpenOrder:
    """An order live at the venue (untriggered conditional orders included), in our vocabulary."""

    symbol: str
    client_order_id: str
    venue_order_id: str
    side: OrderSide
    type: OrderType
    qty: Decimal
    price: Decimal | None
    stop_price: Decimal | None
    time_in_force: TimeInForce | None
    reduce_only: bool
    status: VenueStatus
    executed_qty: Decimal
    ts_event: int
    conditional: bool  # USD-M algo (conditional) order: its id space is algoId / clientAlgoId


@dataclass(frozen=True, slots=True)
class Balance:
    asset: str
    free: Decimal
    locked: Decimal

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


@dataclass(frozen=True, slots=True)
class Position:
    """A futures position (one-way mode): signed quantity in base units and the entry price."""

    symbol: str
    qty: Decimal
    entry_price: Decimal


# -- the port -------------------------------------------------------------------------------------


@runtime_checkable
class Venue(Protocol):
    """What an exchange offers the order manager and the reconciler. All calls are async; every
    value is Decimal; orders are identified by client order id (the venue's order id is informative)."""

    market: str  # "spot" | "usdm"

    async def submit(self, order: Order) -> SubmitAck:
        """Send a new order once. Raises AmbiguousSubmitError, SubmitNotProcessedError or VenueRejectedError."""
        ...

    async def cancel(self, symbol: str, client_order_id: str, *, conditional: bool = False) -> None:
        """Ask the venue to cancel. VenueRejectedError (e.g. -2011: already final) or VenueUnavailableError."""
        ...

    async def query_order(self, symbol: str, client_order_id: str, *, conditional: bool = False) -> VenueOrderView:
        """The venue's view by client order id, with the order's trades; NOT_FOUND when unknown."""
        ...

    async def open_orders(self, symbol: str | None = None) -> Sequence[VenueOpenOrder]:
        ...

    async def fills_since(self, symbol: str, since_ms: int | None = None, *, from_id: int | None = None
                          ) -> Sequence[VenueFill]:
        """The account's trades from trade id `from_id` (else from `since_ms`, else the latest), oldest first."""
        ...

    async def balances(self) -> Mapping[str, Balance]:
        ...

    async def positions(self) -> Mapping[str, Position]:
        """Non-zero futures positions by symbol (spot: empty; positions are base-asset balances)."""
        ...

    async def close(self) -> None:
        ...


def is_conditional(market: str, order_type: OrderType) -> bool:
    """USD-M stop/take-profit orders live in Binance's Algo Order id space (algoId, clientAlgoId)."""
    return market == "usdm" and order_type.has_stop_price
