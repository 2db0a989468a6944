"""Participation (POV): one child at a time, sized rate × V, where V is the market volume traded
(ours included, as reported by `on_market(traded_volume=…)`) since the previous child was placed;
capped by `max_clip`. Since every child is at most rate × the volume before it, our share of the
market volume stays ≤ rate (plus at most one merged dust remainder, below the minimum quantity).

While a child is open, volume keeps accumulating; V is reset when a child is placed. V is the only
state not in the journal: `restore(..., volume_since_last_child=V)` takes it when the shell kept it;
by default a restored algo starts from 0, which can only make it slower, never larger.
"""

from __future__ import annotations

from decimal import Decimal, localcontext

from execution.algos.base import _CTX, Action, ExecutionAlgo
from execution.algos.parent import ParentOrder, ParentStatus, ParticipationParams
from execution.orders.errors import OrderValueError
from execution.orders.model import OrderType, to_decimal
from execution.orders.validation import SymbolRules


class ParticipationAlgo(ExecutionAlgo):
    params_type = ParticipationParams

    def __init__(self, parent: ParentOrder, rules: SymbolRules, volume_since_last_child: Decimal = Decimal(0)):
        super().__init__(parent, rules)
        v = to_decimal(volume_since_last_child, "volume_since_last_child")
        if v < 0:
            raise OrderValueError(f"volume_since_last_child={v}: must be ≥ 0")
        self._volume = v

    @property
    def params(self) -> ParticipationParams:
        return self._parent.params  # type: ignore[return-value]

    @property
    def volume_since_last_child(self) -> Decimal:
        return self._volume

    def next_wakeup_ns(self, now_ns: int) -> int | None:
        end = self.params.end_ns
        return None if self.is_finished or end is None or now_ns >= end else end

    def _child_type(self) -> OrderType:
        return OrderType.MARKET if self.params.limit_price is None else OrderType.LIMIT

    def _stop_condition(self, now: int) -> tuple[ParentStatus, str] | None:
        return self._deadline_stop(now, self.params.end_ns, "participation")

    def _on_volume(self, volume: Decimal) -> None:
        self._volume += volume

    def _decide(self, now: int, touch: tuple[Decimal, Decimal] | None) -> list[Action]:
        if self._open():
            return []
        p = self.params
        with localcontext(_CTX):
            desired = p.rate * self._volume
        if p.max_clip is not None:
            desired = min(desired, p.max_clip)
        otype = self._child_type()
        q = self._size(desired, otype)
        if not q:
            return []
        self._volume = Decimal(0)
        return [self._place(now, otype, q, p.limit_price)]
