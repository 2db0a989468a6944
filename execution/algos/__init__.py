"""Execution algorithms: a parent order executed through child orders (docs/algos.md).

Pure, deterministic state machines (no I/O, no clock: every input carries its time). Each input
returns a list of actions (`PlaceChild`, `CancelChild`, `ParentUpdated`, `ParentFinished`) for the
shell to carry out. Child client ids are `namespace.parent_id.sequence`, so after a restart
`restore_algo(parent, rules, children_of(parent, journal.orders()))` resumes without duplicates.

    parent = ParentOrder(parent_id="twap1", namespace=ns, strategy_id="momo", symbol="BTCUSDT",
                         side=OrderSide.BUY, qty=Decimal("10"), ts_created=now,
                         params=TwapParams(start_ns=now, duration_ns=600 * NS_PER_S, slices=5))
    algo = make_algo(parent, rules)
    actions = algo.on_timer(now)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from execution.algos.base import (
    Action,
    CancelChild,
    ExecutionAlgo,
    Lot,
    ParentFinished,
    ParentUpdated,
    PlaceChild,
    children_of,
    lot_for,
)
from execution.algos.iceberg import IcebergAlgo, uniform_draw
from execution.algos.parent import (
    AlgoParams,
    IcebergParams,
    ParentOrder,
    ParentStatus,
    ParticipationParams,
    PegParams,
    TwapParams,
)
from execution.algos.participation import ParticipationAlgo
from execution.algos.peg import PegAlgo
from execution.algos.twap import TwapAlgo
from execution.orders.state_machine import OrderSnapshot
from execution.orders.validation import SymbolRules

ALGOS: dict[type, type[ExecutionAlgo]] = {TwapParams: TwapAlgo, IcebergParams: IcebergAlgo,
                                          ParticipationParams: ParticipationAlgo, PegParams: PegAlgo}


def make_algo(parent: ParentOrder, rules: SymbolRules, **kwargs: Any) -> ExecutionAlgo:
    """The algo for the parent's params type."""
    return ALGOS[type(parent.params)](parent, rules, **kwargs)


def restore_algo(parent: ParentOrder, rules: SymbolRules, children: Iterable[OrderSnapshot],
                 **kwargs: Any) -> ExecutionAlgo:
    """`make_algo` after a restart: the persisted parent and every journaled child."""
    return ALGOS[type(parent.params)].restore(parent, rules, children, **kwargs)


__all__ = [
    "ALGOS", "Action", "AlgoParams", "CancelChild", "ExecutionAlgo", "IcebergAlgo", "IcebergParams", "Lot",
    "ParentFinished", "ParentOrder", "ParentStatus", "ParentUpdated", "ParticipationAlgo", "ParticipationParams",
    "PegAlgo", "PegParams", "PlaceChild", "TwapAlgo", "TwapParams", "children_of", "lot_for", "make_algo",
    "restore_algo", "uniform_draw",
]
