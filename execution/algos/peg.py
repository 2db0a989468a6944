"""Limit-at-touch with re-peg and market fallback.

One child at a time. A LIMIT POST_ONLY child for the whole remainder at the best bid (buy) / best
ask (sell) of a market update. It is canceled when it is not filled `timeout_ns` after it was
placed, or (with `repeg_on_touch_move`) when the touch moved away from it (buy: bid above our
price; sell: ask below). When it has ended, the next market update places the next one at the new
touch. At most 1 + `max_repegs` limit children are placed, whatever ended them (timeout, touch move,
post-only rejection or expiry); after that a MARKET child for the exact remainder (qty − filled,
on the market step) goes out at the next input (`fallback_market`), or the parent ends EXPIRED.

Limit children only ever go out on a market update (a fresh touch); nothing is remembered of
earlier quotes, so a restored algo decides exactly as an uninterrupted one.
"""

from __future__ import annotations

from decimal import Decimal, localcontext

from core.errors import DataError
from execution.algos.base import _CTX, Action, ExecutionAlgo, side_touch
from execution.algos.parent import ParentStatus, PegParams
from execution.orders.model import OrderSide, OrderStatus, OrderType, TimeInForce
from execution.orders.state_machine import OrderStateMachine


class PegAlgo(ExecutionAlgo):
    params_type = PegParams

    @property
    def params(self) -> PegParams:
        return self._parent.params  # type: ignore[return-value]

    @property
    def limit_children(self) -> int:
        return sum(1 for m in self._children.values() if m.order.type is OrderType.LIMIT)

    @property
    def repegs_left(self) -> int:
        return max(0, 1 + self.params.max_repegs - self.limit_children)

    def next_wakeup_ns(self, now_ns: int) -> int | None:
        if self.is_finished:
            return None
        for m in self._open():
            deadline = m.order.ts_created + self.params.timeout_ns
            if m.order.type is OrderType.LIMIT and m.status is not OrderStatus.PENDING_CANCEL and deadline > now_ns:
                return deadline
        return None  # past the deadline (cancel sent, or waiting for an in-flight child's answer): events drive it

    def _child_type(self) -> OrderType:
        return OrderType.LIMIT if self.repegs_left or not self.params.fallback_market else OrderType.MARKET

    def _child_types(self) -> tuple[OrderType, ...]:
        return (OrderType.LIMIT, OrderType.MARKET) if self.params.fallback_market else (OrderType.LIMIT,)

    def _is_failure(self, machine: OrderStateMachine) -> bool:
        # a limit child that ends unfilled is a used peg attempt, not a failure
        return machine.order.type is OrderType.MARKET and super()._is_failure(machine)

    def _stop_condition(self, now: int) -> tuple[ParentStatus, str] | None:
        if not self.params.fallback_market and not self.repegs_left and not self._open():
            return (ParentStatus.EXPIRED, (f"{self.limit_children} peg attempts used, no market fallback; "
                                           f"{self.remaining_qty} unfilled"))
        return None

    def _moved_away(self, price: Decimal, touch: tuple[Decimal, Decimal]) -> bool:
        if self._parent.side is OrderSide.BUY:
            return touch[0] > price
        return touch[1] < price

    def _decide(self, now: int, touch: tuple[Decimal, Decimal] | None) -> list[Action]:
        p = self.params
        open_children = self._open()
        if open_children:
            out: list[Action] = []
            for m in open_children:
                if m.order.type is not OrderType.LIMIT:
                    continue
                if now >= m.order.ts_created + p.timeout_ns:
                    out += self._cancel_child(m, now, f"peg timeout ({p.timeout_ns} ns)")
                elif touch is not None and p.repeg_on_touch_move and self._moved_away(m.order.price, touch):
                    out += self._cancel_child(m, now, f"touch moved away from {m.order.price}")
            return out
        if self.repegs_left:
            if touch is None:
                return []
            price = side_touch(self._parent.side, touch)
            with localcontext(_CTX):
                off_tick = price % self._rules.tick_size != 0
            if off_tick:
                raise DataError(f"{self._parent.symbol}: touch price {price} is not on the tick {self._rules.tick_size}")
            q = self._size(self.remaining_qty, OrderType.LIMIT)
            return [self._place(now, OrderType.LIMIT, q, price, TimeInForce.POST_ONLY)] if q else []
        q = self._size(self.remaining_qty, OrderType.MARKET)
        return [self._place(now, OrderType.MARKET, q)] if q else []
