"""Participation: child size = rate × market volume since the previous child, from a crafted stream."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.errors import DataError
from execution.algos import ParentStatus, ParticipationAlgo, ParticipationParams
from tests.unit.test_algos_shell import NS, Shell, parent, rules

D = Decimal


def cid(seq: int) -> str:
    return f"{NS}.p1.{seq}"


def pov(qty="5", rate="0.1", max_clip=None, min_qty="0.1", **kw) -> ParticipationAlgo:
    params = ParticipationParams(D(rate), None if max_clip is None else D(max_clip), **kw)
    return ParticipationAlgo(parent(params, qty=qty), rules(step="0.1", min_qty=min_qty))


def test_crafted_volume_stream():
    sh = Shell(pov(max_clip="1.5"), auto_submit=True)

    def placed(acts):
        return [(a.client_order_id, a.order.qty) for a in acts]

    assert sh.market(1, volume="0.5") == []  # cap 0.05 < min 0.1: wait
    assert placed(sh.market(2, volume="4.6")) == [(cid(0), D("0.5"))]  # V = 5.1 → 0.51 → 0.5
    assert sh.algo.volume_since_last_child == 0
    assert sh.market(3, volume="10") == []  # child open: volume accumulates
    assert placed(sh.fill(cid(0), "0.5", 4)) == [(cid(1), D("1.0"))]  # V = 10 → 1.0
    assert sh.market(5, volume="2") == []
    assert placed(sh.fill(cid(1), "1.0", 6)) == [(cid(2), D("0.2"))]
    assert sh.fill(cid(2), "0.2", 7) == []  # V = 0
    assert placed(sh.market(8, volume="100")) == [(cid(3), D("1.5"))]  # 10 → max_clip 1.5
    sh.fill(cid(3), "1.5", 9)
    assert placed(sh.market(10, volume="100")) == [(cid(4), D("1.5"))]  # 1.8 left: rest 0.3 ≥ min
    sh.fill(cid(4), "1.5", 11)
    assert placed(sh.market(12, volume="1")) == [(cid(5), D("0.1"))]
    sh.fill(cid(5), "0.1", 13)
    assert placed(sh.market(14, volume="1.9")) == [(cid(6), D("0.1"))]  # 0.19 → 0.1; rest 0.1 = min
    sh.fill(cid(6), "0.1", 15)
    assert placed(sh.market(16, volume="1")) == [(cid(7), D("0.1"))]
    sh.fill(cid(7), "0.1", 17)
    assert sh.finished.status is ParentStatus.FILLED and sh.finished.filled_qty == D(5)


def test_fill_event_places_when_volume_already_accumulated():
    sh = Shell(pov(), auto_submit=True)
    sh.market(1, volume="10")  # child 0 of 1.0
    sh.market(2, volume="20")  # open child: V = 20
    acts = sh.fill(cid(0), "1", 3)
    assert [(a.client_order_id, a.order.qty) for a in acts] == [(cid(1), D("2.0"))]


def test_share_of_market_volume_never_exceeds_rate():
    sh = Shell(pov(qty="1000", rate="0.2", min_qty="0.1"), auto_submit=True)
    total_volume = D(0)
    vols = [D(v) for v in ("0.3", "1.7", "0.05", "9", "2.2", "0.4", "13", "0.01", "5", "7.7")] * 5
    for i, v in enumerate(vols):
        total_volume += v
        for a in sh.market(10 * i, volume=v):
            sh.fill(a.client_order_id, a.order.qty, 10 * i + 1)
    assert sh.algo.filled_qty <= D("0.2") * total_volume
    assert sh.algo.filled_qty > D("0.2") * total_volume - D(3)


def test_restore_with_and_without_the_volume_accumulator():
    sh = Shell(pov(), auto_submit=True)
    sh.market(1, volume="10")
    sh.fill(cid(0), "1", 2)
    sh.market(3, volume="0.5")  # V = 0.5 → 0.05 below min
    kept = sh.algo.volume_since_last_child
    twin = Shell(pov(), auto_submit=True)
    twin.journal, twin.parent = sh.journal, sh.parent
    restored = twin.restore(volume_since_last_child=kept)
    assert restored.volume_since_last_child == D("0.5")
    assert [a.order.qty for a in sh.algo.on_market(4, None, None, D("0.5"))] == [D("0.1")]
    assert [a.order.qty for a in restored.on_market(4, None, None, D("0.5"))] == [D("0.1")]
    lossy = twin.restore()  # the accumulator lost: slower, never larger
    assert lossy.on_market(4, None, None, D("0.5")) == []


def test_bad_market_data_fails_loudly():
    algo = pov()
    with pytest.raises(DataError, match="negative"):
        algo.on_market(1, None, None, D("-1"))
    with pytest.raises(DataError, match="crossed"):
        algo.on_market(1, D(101), D(100), D(1))
    with pytest.raises(DataError, match="both or neither"):
        algo.on_market(1, D(101), None, D(1))
    with pytest.raises(DataError):
        algo.on_market(1, None, None, 1.5)
