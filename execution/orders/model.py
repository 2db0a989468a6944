"""Order value types: sides, types, time in force, statuses, requests, orders, fills and the
venue's view of an order. Prices, quantities and fees are `Decimal` (the exchange boundary);
a `float` is refused (`Decimal(0.1)` is not 0.1), strings and ints are converted exactly.

Every type serialises to a JSON-able dict (`to_record`) and back (`from_record`) without loss:
the journal stores these records.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

from execution.orders.client_ids import BINANCE_CLIENT_ID_RE
from execution.orders.errors import OrderValueError


class OrderSide(str, Enum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(str, Enum):
    """Our vocabulary; the venue adapter maps it (e.g. spot TAKE_PROFIT = our TAKE_PROFIT_MARKET,
    futures TAKE_PROFIT = our TAKE_PROFIT_LIMIT)."""

    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP_MARKET = "STOP_MARKET"
    STOP_LIMIT = "STOP_LIMIT"
    TAKE_PROFIT_MARKET = "TAKE_PROFIT_MARKET"
    TAKE_PROFIT_LIMIT = "TAKE_PROFIT_LIMIT"

    @property
    def has_limit_price(self) -> bool:
        return self in (OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_LIMIT)

    @property
    def has_stop_price(self) -> bool:
        return self not in (OrderType.MARKET, OrderType.LIMIT)

    @property
    def is_stop(self) -> bool:
        """Triggers when the price moves against the position being protected (buy above, sell below)."""
        return self in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT)


class TimeInForce(str, Enum):
    """POST_ONLY: futures `timeInForce=GTX`, spot order type `LIMIT_MAKER` (mapped by the adapter)."""

    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    POST_ONLY = "POST_ONLY"


class OrderStatus(str, Enum):
    NEW = "NEW"  # validated and journaled; never sent
    SUBMITTED = "SUBMITTED"  # journaled as sent; no answer yet
    ACCEPTED = "ACCEPTED"  # acknowledged by the venue, nothing filled
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    PENDING_CANCEL = "PENDING_CANCEL"  # cancel sent, not confirmed
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    UNKNOWN = "UNKNOWN"  # the submission's outcome is unknown (timeout, disconnect): ask the venue

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def is_in_flight(self) -> bool:
        """Sent, and the venue has not told us what happened yet."""
        return self in (OrderStatus.SUBMITTED, OrderStatus.UNKNOWN)


TERMINAL_STATUSES = frozenset({OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED})


class VenueStatus(str, Enum):
    """An order's status as the venue reports it when asked by client order id. The adapter maps
    venue-specific values (Binance EXPIRED_IN_MATCH → EXPIRED; error -2013 → NOT_FOUND)."""

    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    NOT_FOUND = "NOT_FOUND"


class Liquidity(str, Enum):
    MAKER = "MAKER"
    TAKER = "TAKER"
    UNKNOWN = "UNKNOWN"


def to_decimal(value: Any, name: str, *, positive: bool = False, allow_none: bool = False) -> Decimal | None:
    """Exact Decimal from a Decimal, int or numeric string; floats, NaN and infinities are refused."""
    if value is None:
        if allow_none:
            return None
        raise OrderValueError(f"{name} is required")
    if isinstance(value, (bool, float)):
        raise OrderValueError(f"{name}={value!r}: pass a Decimal or a string, not {type(value).__name__}")
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, (int, str)):
        try:
            d = Decimal(value)
        except InvalidOperation:
            raise OrderValueError(f"{name}={value!r}: not a decimal number") from None
    else:
        raise OrderValueError(f"{name}={value!r}: expected Decimal, int or str, got {type(value).__name__}")
    if not d.is_finite():
        raise OrderValueError(f"{name}={value!r}: must be finite")
    if positive and d <= 0:
        raise OrderValueError(f"{name}={value}: must be > 0")
    return d


def _enum(cls: type[Enum], value: Any, name: str) -> Any:
    try:
        return cls(value)
    except ValueError:
        raise OrderValueError(f"{name}={value!r}: expected one of {[m.value for m in cls]}") from None


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise OrderValueError(f"{name}={value!r}: expected an int (UTC ns)")
    return value


def _text(value: Any, name: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not allow_empty and not value):
        raise OrderValueError(f"{name}={value!r}: expected a non-empty string")
    return value


def _dec_str(d: Decimal | None) -> str | None:
    return None if d is None else str(d)


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What a strategy asks for. Structure only is checked here; `validate_order` checks it against
    the symbol's rules and returns the normalised request that becomes an `Order`."""

    symbol: str
    side: OrderSide
    type: OrderType
    qty: Decimal
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce | None = None
    reduce_only: bool = False

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "symbol", _text(self.symbol, "symbol"))
        s(self, "side", _enum(OrderSide, self.side, "side"))
        s(self, "type", _enum(OrderType, self.type, "type"))
        s(self, "qty", to_decimal(self.qty, "qty"))
        s(self, "price", to_decimal(self.price, "price", allow_none=True))
        s(self, "stop_price", to_decimal(self.stop_price, "stop_price", allow_none=True))
        if self.time_in_force is not None:
            s(self, "time_in_force", _enum(TimeInForce, self.time_in_force, "time_in_force"))
        if not isinstance(self.reduce_only, bool):
            raise OrderValueError(f"reduce_only={self.reduce_only!r}: expected a bool")


@dataclass(frozen=True, slots=True)
class Order:
    """A validated order with its client order id, as journaled before any venue call."""

    client_order_id: str
    strategy_id: str
    symbol: str
    side: OrderSide
    type: OrderType
    qty: Decimal
    price: Decimal | None
    stop_price: Decimal | None
    time_in_force: TimeInForce | None
    reduce_only: bool
    ts_created: int

    def __post_init__(self) -> None:
        s = object.__setattr__
        if not isinstance(self.client_order_id, str) or not BINANCE_CLIENT_ID_RE.match(self.client_order_id):
            raise OrderValueError(f"client_order_id={self.client_order_id!r}: must match {BINANCE_CLIENT_ID_RE.pattern}")
        s(self, "strategy_id", _text(self.strategy_id, "strategy_id"))
        s(self, "symbol", _text(self.symbol, "symbol"))
        s(self, "side", _enum(OrderSide, self.side, "side"))
        s(self, "type", _enum(OrderType, self.type, "type"))
        s(self, "qty", to_decimal(self.qty, "qty", positive=True))
        s(self, "price", to_decimal(self.price, "price", positive=True, allow_none=True))
        s(self, "stop_price", to_decimal(self.stop_price, "stop_price", positive=True, allow_none=True))
        if self.time_in_force is not None:
            s(self, "time_in_force", _enum(TimeInForce, self.time_in_force, "time_in_force"))
        if not isinstance(self.reduce_only, bool):
            raise OrderValueError(f"reduce_only={self.reduce_only!r}: expected a bool")
        _int(self.ts_created, "ts_created")
        if self.type.has_limit_price != (self.price is not None):
            raise OrderValueError(f"{self.type.value} order with price={self.price}: limit types need a price, others none")
        if self.type.has_stop_price != (self.stop_price is not None):
            raise OrderValueError(f"{self.type.value} order with stop_price={self.stop_price}: "
                                  "stop/take-profit types need a stop price, others none")

    @classmethod
    def create(cls, request: OrderRequest, client_order_id: str, strategy_id: str, ts_created: int) -> Order:
        """The order for a (validated, normalised) request."""
        return cls(client_order_id=client_order_id, strategy_id=strategy_id, symbol=request.symbol,
                   side=request.side, type=request.type, qty=request.qty, price=request.price,
                   stop_price=request.stop_price, time_in_force=request.time_in_force,
                   reduce_only=request.reduce_only, ts_created=ts_created)

    def to_record(self) -> dict[str, Any]:
        return {"client_order_id": self.client_order_id, "strategy_id": self.strategy_id, "symbol": self.symbol,
                "side": self.side.value, "type": self.type.value, "qty": str(self.qty),
                "price": _dec_str(self.price), "stop_price": _dec_str(self.stop_price),
                "time_in_force": None if self.time_in_force is None else self.time_in_force.value,
                "reduce_only": self.reduce_only, "ts_created": self.ts_created}

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> Order:
        return cls(**rec)


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution (trade) of an order. `trade_id` is the venue's trade id (unique per symbol):
    the dedup key. `fee` may be negative (rebate); `fee_asset` names its currency."""

    trade_id: str
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_asset: str
    ts_event: int
    liquidity: Liquidity = Liquidity.UNKNOWN

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "trade_id", _text(self.trade_id, "trade_id"))
        s(self, "qty", to_decimal(self.qty, "qty", positive=True))
        s(self, "price", to_decimal(self.price, "price", positive=True))
        s(self, "fee", to_decimal(self.fee, "fee"))
        s(self, "fee_asset", _text(self.fee_asset, "fee_asset", allow_empty=True))
        _int(self.ts_event, "ts_event")
        s(self, "liquidity", _enum(Liquidity, self.liquidity, "liquidity"))

    def same_execution(self, other: Fill) -> bool:
        """Same trade reported twice (stream and REST): the economic fields agree."""
        return (self.trade_id, self.qty, self.price, self.fee, self.fee_asset) == (
            other.trade_id, other.qty, other.price, other.fee, other.fee_asset)

    def to_record(self) -> dict[str, Any]:
        return {"trade_id": self.trade_id, "qty": str(self.qty), "price": str(self.price), "fee": str(self.fee),
                "fee_asset": self.fee_asset, "ts_event": self.ts_event, "liquidity": self.liquidity.value}

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> Fill:
        return cls(**rec)


@dataclass(frozen=True, slots=True)
class VenueOrderView:
    """The venue's answer to "what happened to client order id X": status, cumulative executed
    quantity and the order's trades (from the trades endpoint; fills must account for
    `executed_qty`, else resolution raises `MissingFillsError`)."""

    status: VenueStatus
    executed_qty: Decimal = Decimal(0)
    venue_order_id: str | None = None
    fills: tuple[Fill, ...] = ()
    reason: str = ""

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "status", _enum(VenueStatus, self.status, "status"))
        s(self, "executed_qty", to_decimal(self.executed_qty, "executed_qty"))
        if self.executed_qty < 0:
            raise OrderValueError(f"executed_qty={self.executed_qty}: must be ≥ 0")
        if self.venue_order_id is not None:
            _text(self.venue_order_id, "venue_order_id")
        s(self, "fills", tuple(self.fills))
        if not all(isinstance(f, Fill) for f in self.fills):
            raise OrderValueError("fills must be Fill instances")
        _text(self.reason, "reason", allow_empty=True)
        if self.status is VenueStatus.NOT_FOUND and (self.fills or self.executed_qty or self.venue_order_id):
            raise OrderValueError("a NOT_FOUND view carries no fills, executed quantity or venue order id")

    def to_record(self) -> dict[str, Any]:
        return {"status": self.status.value, "executed_qty": str(self.executed_qty),
                "venue_order_id": self.venue_order_id, "fills": [f.to_record() for f in self.fills],
                "reason": self.reason}

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> VenueOrderView:
        rec = dict(rec)
        rec["fills"] = tuple(Fill.from_record(f) for f in rec["fills"])
        return cls(**rec)
