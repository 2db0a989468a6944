"""The parent order of an execution algorithm and the parameters of each algorithm.

A `ParentOrder` is an immutable value: the algo hands out a new one (`dataclasses.replace`) when the
status changes, in a `ParentUpdated` / `ParentFinished` action, and the shell persists it. Together
with the journaled child orders it is everything a restart needs (`restore_algo`).

Child client order ids are `format_client_order_id(parent.namespace, parent.parent_id, sequence)`:
the parent id takes the place of the strategy tag, so `OrderJournal.next_sequence(namespace,
parent_id)` and the algo agree on the next child sequence.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal
from enum import Enum
from typing import Any

from execution.orders.client_ids import format_client_order_id
from execution.orders.errors import OrderValueError
from execution.orders.model import OrderSide, _int, _text, to_decimal


class ParentStatus(str, Enum):
    ACTIVE = "ACTIVE"
    CANCELING = "CANCELING"  # cancel requested: cancels sent to open children, no new child ever
    FILLED = "FILLED"  # filled quantity == parent quantity
    CANCELED = "CANCELED"  # canceled by the user; the filled part stays filled
    EXPIRED = "EXPIRED"  # schedule / deadline / peg attempts over before the parent filled
    FAILED = "FAILED"  # more than `max_rejects` children rejected
    DUST = "DUST"  # what is left is below the minimum child quantity: dropped, reported

    @property
    def is_terminal(self) -> bool:
        return self not in (ParentStatus.ACTIVE, ParentStatus.CANCELING)


def _opt_ns(value: Any, name: str) -> int | None:
    return None if value is None else _int(value, name)


def _positive_ns(value: Any, name: str) -> int:
    if _int(value, name) <= 0:
        raise OrderValueError(f"{name}={value}: must be > 0 ns")
    return value


def _opt_price(value: Any, name: str) -> Decimal | None:
    return to_decimal(value, name, positive=True, allow_none=True)


@dataclass(frozen=True, slots=True)
class TwapParams:
    """`slices` children over [start_ns, start_ns + duration_ns): slice k opens at
    start + ⌈k·duration/slices⌉. MARKET children, or LIMIT GTC at `limit_price` when given."""

    start_ns: int
    duration_ns: int
    slices: int
    limit_price: Decimal | None = None

    def __post_init__(self) -> None:
        _int(self.start_ns, "start_ns")
        _positive_ns(self.duration_ns, "duration_ns")
        if _int(self.slices, "slices") <= 0 or self.slices > self.duration_ns:
            raise OrderValueError(f"slices={self.slices}: must be in [1, duration_ns]")
        object.__setattr__(self, "limit_price", _opt_price(self.limit_price, "limit_price"))

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.duration_ns


@dataclass(frozen=True, slots=True)
class IcebergParams:
    """One child at a time of `clip` (LIMIT GTC at `limit_price`, MARKET when None). With
    `clip_jitter` j > 0 the clip of child sequence s is clip·(1 + u), u uniform in [−j, j] drawn
    from (seed, parent id, s): deterministic, so a restart draws the same clips."""

    clip: Decimal
    limit_price: Decimal | None = None
    clip_jitter: Decimal = Decimal(0)
    seed: int = 0
    end_ns: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "clip", to_decimal(self.clip, "clip", positive=True))
        object.__setattr__(self, "limit_price", _opt_price(self.limit_price, "limit_price"))
        j = to_decimal(self.clip_jitter, "clip_jitter")
        if not Decimal(0) <= j < 1:
            raise OrderValueError(f"clip_jitter={j}: must be in [0, 1)")
        object.__setattr__(self, "clip_jitter", j)
        _int(self.seed, "seed")
        _opt_ns(self.end_ns, "end_ns")


@dataclass(frozen=True, slots=True)
class ParticipationParams:
    """One child at a time, sized rate × market volume traded since the previous child was placed
    (capped by `max_clip`). MARKET children, or LIMIT GTC at `limit_price` when given."""

    rate: Decimal
    max_clip: Decimal | None = None
    limit_price: Decimal | None = None
    end_ns: int | None = None

    def __post_init__(self) -> None:
        r = to_decimal(self.rate, "rate")
        if not Decimal(0) < r <= 1:
            raise OrderValueError(f"rate={r}: must be in (0, 1]")
        object.__setattr__(self, "rate", r)
        object.__setattr__(self, "max_clip", to_decimal(self.max_clip, "max_clip", positive=True, allow_none=True))
        object.__setattr__(self, "limit_price", _opt_price(self.limit_price, "limit_price"))
        _opt_ns(self.end_ns, "end_ns")


@dataclass(frozen=True, slots=True)
class PegParams:
    """Limit-at-touch: a POST_ONLY child at the best bid (buy) / ask (sell); not filled within
    `timeout_ns` (or, with `repeg_on_touch_move`, the touch moved away) → cancel and re-peg at the
    next quote, at most `max_repegs` times; then a MARKET child for the remainder (`fallback_market`),
    or the parent ends EXPIRED."""

    timeout_ns: int
    max_repegs: int
    repeg_on_touch_move: bool = True
    fallback_market: bool = True

    def __post_init__(self) -> None:
        _positive_ns(self.timeout_ns, "timeout_ns")
        if _int(self.max_repegs, "max_repegs") < 0:
            raise OrderValueError(f"max_repegs={self.max_repegs}: must be ≥ 0")
        for name in ("repeg_on_touch_move", "fallback_market"):
            if not isinstance(getattr(self, name), bool):
                raise OrderValueError(f"{name} must be a bool")


AlgoParams = TwapParams | IcebergParams | ParticipationParams | PegParams
_PARAMS_BY_NAME: dict[str, type] = {"twap": TwapParams, "iceberg": IcebergParams,
                                    "participation": ParticipationParams, "peg": PegParams}
_NAME_BY_PARAMS = {v: k for k, v in _PARAMS_BY_NAME.items()}


@dataclass(frozen=True, slots=True)
class ParentOrder:
    """A quantity to execute through child orders.

    `parent_id` is the strategy-tag part of every child's client id (1-14 of `[A-Za-z0-9_-]`);
    (namespace, parent_id) must be unique. `min_child_qty` raises the venue's min qty (e.g. to
    clear a min notional at the expected price). More than `max_rejects` rejected children fail
    the parent."""

    parent_id: str
    namespace: str
    strategy_id: str
    symbol: str
    side: OrderSide
    qty: Decimal
    params: AlgoParams
    ts_created: int
    status: ParentStatus = ParentStatus.ACTIVE
    reduce_only: bool = False
    min_child_qty: Decimal = Decimal(0)
    max_rejects: int = 3
    reason: str = ""  # why it reached its status (canceled by whom, why it failed / expired)

    def __post_init__(self) -> None:
        s = object.__setattr__
        format_client_order_id(self.namespace, self.parent_id, 0)  # validates both parts
        s(self, "strategy_id", _text(self.strategy_id, "strategy_id"))
        s(self, "symbol", _text(self.symbol, "symbol"))
        try:
            s(self, "side", OrderSide(self.side))
            s(self, "status", ParentStatus(self.status))
        except ValueError as err:
            raise OrderValueError(str(err)) from None
        s(self, "qty", to_decimal(self.qty, "qty", positive=True))
        if type(self.params) not in _NAME_BY_PARAMS:
            raise OrderValueError(f"params={self.params!r}: expected one of {sorted(_PARAMS_BY_NAME)} params")
        _int(self.ts_created, "ts_created")
        if not isinstance(self.reduce_only, bool):
            raise OrderValueError("reduce_only must be a bool")
        m = to_decimal(self.min_child_qty, "min_child_qty")
        if m < 0:
            raise OrderValueError(f"min_child_qty={m}: must be ≥ 0")
        s(self, "min_child_qty", m)
        if _int(self.max_rejects, "max_rejects") < 0:
            raise OrderValueError(f"max_rejects={self.max_rejects}: must be ≥ 0")
        _text(self.reason, "reason", allow_empty=True)

    @property
    def algo(self) -> str:
        """twap | iceberg | participation | peg."""
        return _NAME_BY_PARAMS[type(self.params)]

    def child_client_order_id(self, sequence: int) -> str:
        return format_client_order_id(self.namespace, self.parent_id, sequence)

    def to_record(self) -> dict[str, Any]:
        """JSON-able dict (Decimals as strings, exact); `from_record` inverts it."""
        params = {}
        for f in fields(self.params):
            v = getattr(self.params, f.name)
            params[f.name] = str(v) if isinstance(v, Decimal) else v
        return {"parent_id": self.parent_id, "namespace": self.namespace, "strategy_id": self.strategy_id,
                "symbol": self.symbol, "side": self.side.value, "qty": str(self.qty), "algo": self.algo,
                "params": params, "ts_created": self.ts_created, "status": self.status.value,
                "reduce_only": self.reduce_only, "min_child_qty": str(self.min_child_qty),
                "max_rejects": self.max_rejects, "reason": self.reason}

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> ParentOrder:
        rec = dict(rec)
        try:
            ptype = _PARAMS_BY_NAME[rec.pop("algo")]
        except KeyError as err:
            raise OrderValueError(f"not a parent order record: unknown algo {err}") from None
        rec["params"] = ptype(**rec["params"])
        return cls(**rec)
