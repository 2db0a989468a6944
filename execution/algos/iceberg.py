"""Iceberg / clip: one child at a time of the clip size (LIMIT GTC at the parent's limit price, or
MARKET clips), the next one as soon as the previous child is terminal.

With `clip_jitter` j > 0 the clip of child sequence s is ⌊clip·(1 + j·(2u − 1))⌋ on the step, u in
[0, 1) drawn from sha256(seed, parent id, s). The draw depends on the sequence only, not on an RNG
state, so a restored algo draws exactly the clips the uninterrupted one would.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal, localcontext

from execution.algos.base import _CTX, Action, ExecutionAlgo
from execution.algos.parent import IcebergParams, ParentStatus
from execution.orders.model import OrderType


def uniform_draw(seed: int, parent_id: str, sequence: int) -> Decimal:
    """A deterministic uniform number in [0, 1) (exact Decimal, 64 bits)."""
    digest = hashlib.sha256(f"{seed}:{parent_id}:{sequence}".encode()).digest()
    with localcontext(_CTX):
        return Decimal(int.from_bytes(digest[:8], "big")) / Decimal(2**64)


class IcebergAlgo(ExecutionAlgo):
    params_type = IcebergParams

    @property
    def params(self) -> IcebergParams:
        return self._parent.params  # type: ignore[return-value]

    def clip_for(self, sequence: int) -> Decimal:
        """The clip of child `sequence` (before capping at what is left), at least the minimum."""
        p = self.params
        lot = self.lot(self._child_type())
        clip = p.clip
        if p.clip_jitter:
            u = uniform_draw(p.seed, self._parent.parent_id, sequence)
            with localcontext(_CTX):
                clip = clip * (1 + p.clip_jitter * (2 * u - 1))
        return max(lot.floor(clip), lot.min_qty)

    def next_wakeup_ns(self, now_ns: int) -> int | None:
        end = self.params.end_ns
        return None if self.is_finished or end is None or now_ns >= end else end

    def _child_type(self) -> OrderType:
        return OrderType.MARKET if self.params.limit_price is None else OrderType.LIMIT

    def _stop_condition(self, now: int) -> tuple[ParentStatus, str] | None:
        return self._deadline_stop(now, self.params.end_ns, "iceberg")

    def _decide(self, now: int, touch: tuple[Decimal, Decimal] | None) -> list[Action]:
        if self._open():
            return []
        otype = self._child_type()
        q = self._size(self.clip_for(self._next_seq), otype)
        return [self._place(now, otype, q, self.params.limit_price)] if q else []
