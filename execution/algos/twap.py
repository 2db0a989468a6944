"""TWAP: the parent quantity in `slices` equal parts over [start, start + duration).

Slice k (0-based) opens at start + ⌈k·duration/slices⌉; its cumulative target is
⌊qty·(k+1)/slices⌋ on the lot step (the last slice's target is the whole quantity). At the first
input inside slice k with no child yet placed in slice k, one child is placed for
target(k) − committed, where committed = filled + the unfilled part of open children. So:

- an open child's unfilled quantity is not placed again (a late fill carries over as is);
- the unfilled part of a child that ended (canceled, rejected, expired) joins the next slice's child;
- a slice whose increment rounds below the minimum places nothing; the next slice catches up;
- a missed slice (no input during it, e.g. a restart) is caught up by the next slice's child.

At the end (start + duration) working children are canceled and the parent ends FILLED or EXPIRED.
"""

from __future__ import annotations

from decimal import Decimal, localcontext

from execution.algos.base import _CTX, Action, ExecutionAlgo
from execution.algos.parent import ParentStatus, TwapParams
from execution.orders.model import OrderType


class TwapAlgo(ExecutionAlgo):
    params_type = TwapParams

    @property
    def params(self) -> TwapParams:
        return self._parent.params  # type: ignore[return-value]

    def slice_at(self, ts: int) -> int | None:
        """The slice containing ts (None before the start and from the end on)."""
        p = self.params
        if ts < p.start_ns or ts >= p.end_ns:
            return None
        return (ts - p.start_ns) * p.slices // p.duration_ns

    def slice_start_ns(self, k: int) -> int:
        p = self.params
        return p.start_ns + -(-k * p.duration_ns // p.slices)

    def target_qty(self, k: int) -> Decimal:
        """Cumulative quantity due by the end of slice k, on the lot step."""
        lot = self.lot(self._child_type())
        with localcontext(_CTX):
            units = int(self._parent.qty / lot.step)  # exact: the parent qty is on the grid
            return units * (k + 1) // self.params.slices * lot.step

    def schedule(self) -> list[tuple[int, Decimal]]:
        """(slice start, cumulative target) for every slice: the plan when everything fills."""
        return [(self.slice_start_ns(k), self.target_qty(k)) for k in range(self.params.slices)]

    def next_wakeup_ns(self, now_ns: int) -> int | None:
        if self.is_finished:
            return None
        p = self.params
        if now_ns < p.start_ns:
            return p.start_ns
        k = self.slice_at(now_ns)
        return None if k is None else self.slice_start_ns(k + 1)  # slice_start_ns(slices) == end

    def _child_type(self) -> OrderType:
        return OrderType.MARKET if self.params.limit_price is None else OrderType.LIMIT

    def _stop_condition(self, now: int) -> tuple[ParentStatus, str] | None:
        return self._deadline_stop(now, self.params.end_ns, "TWAP schedule")

    def _decide(self, now: int, touch: tuple[Decimal, Decimal] | None) -> list[Action]:
        k = self.slice_at(now)
        if k is None:
            return []
        placed = (self.slice_at(m.order.ts_created) for m in self._children.values())
        last = max((s for s in placed if s is not None), default=-1)
        if k <= last:  # at most one child per slice (a rejected one is retried next slice)
            return []
        otype = self._child_type()
        q = self._size(self.target_qty(k) - self.committed_qty, otype)
        if not q:
            return []
        return [self._place(now, otype, q, self.params.limit_price)]
