"""ParentOrder and params: validation, exact record round trip, make/restore dispatch."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from execution.algos import (
    IcebergAlgo,
    IcebergParams,
    ParentOrder,
    ParentStatus,
    ParticipationParams,
    PegAlgo,
    PegParams,
    TwapAlgo,
    TwapParams,
    make_algo,
    restore_algo,
)
from execution.orders import InvalidClientOrderIdError, OrderSide, OrderValueError
from tests.unit.test_algos_shell import parent, rules

D = Decimal
ALL_PARAMS = [TwapParams(5, 600, 5, D("100.5")), IcebergParams(D("0.3"), None, D("0.2"), 42, 1000),
              ParticipationParams(D("0.1"), D("2"), None, None), PegParams(1000, 3, False, True)]


@pytest.mark.parametrize("params", ALL_PARAMS)
def test_record_round_trip_is_exact_and_json_able(params):
    p = parent(params, qty="1.234", min_child_qty=D("0.01"), max_rejects=5, reduce_only=True)
    rec = json.loads(json.dumps(p.to_record()))
    assert ParentOrder.from_record(rec) == p
    assert ParentOrder.from_record(p.to_record()).params == params


def test_child_ids_use_namespace_parent_id_and_sequence():
    p = parent(PegParams(10, 1), pid="peg_BTC-7")
    assert p.child_client_order_id(0) == "t0000001.peg_BTC-7.0"
    assert p.child_client_order_id(36) == "t0000001.peg_BTC-7.10"
    assert p.algo == "peg"


@pytest.mark.parametrize("bad, err", [
    ({"pid": "this-id-is-far-too-long"}, InvalidClientOrderIdError),
    ({"pid": "bad.id"}, InvalidClientOrderIdError),
    ({"qty": 1.5}, OrderValueError),
    ({"qty": "0"}, OrderValueError),
    ({"max_rejects": -1}, OrderValueError),
    ({"min_child_qty": D("-1")}, OrderValueError),
    ({"side": "HOLD"}, OrderValueError),
])
def test_parent_validation(bad, err):
    kw = {"parent_id": "p1", "namespace": "t0000001", "strategy_id": "s", "symbol": "BTCUSDT",
          "side": OrderSide.BUY, "qty": D(1), "params": TwapParams(0, 10, 2), "ts_created": 0}
    kw.update({("parent_id" if k == "pid" else k): v for k, v in bad.items()})
    with pytest.raises(err):
        ParentOrder(**kw)


@pytest.mark.parametrize("make", [
    lambda: TwapParams(0, 0, 1), lambda: TwapParams(0, 10, 0), lambda: TwapParams(0, 10, 11),
    lambda: TwapParams(0, 10, 2, D("-1")), lambda: IcebergParams(D(0)), lambda: IcebergParams(D(1), None, D(1)),
    lambda: ParticipationParams(D(0)), lambda: ParticipationParams(D("1.1")), lambda: PegParams(0, 1),
    lambda: PegParams(10, -1), lambda: PegParams(10, 1, "yes"), lambda: IcebergParams(0.5),
])
def test_params_validation(make):
    with pytest.raises(OrderValueError):
        make()


def test_make_and_restore_dispatch_on_params_and_refuse_mismatches():
    assert isinstance(make_algo(parent(TwapParams(0, 10, 2)), rules()), TwapAlgo)
    assert isinstance(make_algo(parent(IcebergParams(D(1))), rules()), IcebergAlgo)
    assert isinstance(restore_algo(parent(PegParams(10, 1)), rules(), []), PegAlgo)
    with pytest.raises(OrderValueError, match="needs TwapParams"):
        TwapAlgo(parent(PegParams(10, 1)), rules())
    with pytest.raises(OrderValueError, match="do not match"):
        TwapAlgo(ParentOrder("p1", "t0000001", "s", "ETHUSDT", OrderSide.BUY, D(1), TwapParams(0, 10, 2), 0), rules())


def test_a_terminal_parent_restores_to_a_silent_algo():
    p = parent(TwapParams(0, 10, 2), status=ParentStatus.FILLED)
    algo = restore_algo(p, rules(), [])
    assert algo.is_finished and algo.on_timer(5) == [] and algo.cancel(5) == []
