"""Iceberg / clip: clip sizes, one child at a time, seeded randomised clips, dust."""

from __future__ import annotations

from decimal import Decimal

from execution.algos import IcebergAlgo, IcebergParams, ParentStatus, uniform_draw
from execution.orders import Expired, OrderType
from tests.unit.test_algos_shell import NS, Shell, parent, rules

D = Decimal


def cid(seq: int) -> str:
    return f"{NS}.p1.{seq}"


def iceberg(qty="1", clip="0.3", price="100", min_qty="0.001", **kw) -> IcebergAlgo:
    pk = {k: kw.pop(k) for k in ("clip_jitter", "seed", "end_ns") if k in kw}
    return IcebergAlgo(parent(IcebergParams(D(clip), None if price is None else D(price), **pk), qty=qty, **kw),
                       rules(min_qty=min_qty))


def drain(sh: Shell, t: int = 0) -> list[Decimal]:
    """Fill every child in full as it comes; the clip sizes in order."""
    sizes = []
    acts = sh.timer(t)
    while acts and sh.finished is None:
        places = [a for a in acts if a.__class__.__name__ == "PlaceChild"]
        assert len(places) == 1 and not [c for c in sh.open_cids() if c != places[0].client_order_id]
        p = places[0]
        sizes.append(p.order.qty)
        sh.accept(p.client_order_id, p.ts + 1)
        acts = sh.fill(p.client_order_id, p.order.qty, p.ts + 2)
    return sizes


def test_clips_one_at_a_time_with_the_last_one_smaller():
    sh = Shell(iceberg(), auto_submit=True)
    assert drain(sh) == [D("0.3"), D("0.3"), D("0.3"), D("0.1")]
    assert sh.places()[0].order.type is OrderType.LIMIT and sh.places()[0].order.price == D(100)
    assert sh.finished.status is ParentStatus.FILLED


def test_rest_below_minimum_is_merged_into_the_last_clip():
    sh = Shell(iceberg(min_qty="0.2"), auto_submit=True)
    assert drain(sh) == [D("0.3"), D("0.3"), D("0.4")]


def test_partial_fill_does_not_release_the_next_clip():
    sh = Shell(iceberg(), auto_submit=True)
    sh.timer(0)
    assert sh.fill(cid(0), "0.1", 5) == []
    assert sh.timer(10) == []
    acts = sh.fill(cid(0), "0.2", 15)
    assert [(a.client_order_id, a.order.qty) for a in acts] == [(cid(1), D("0.3"))]


def test_market_clips_and_max_qty_cap():
    algo = IcebergAlgo(parent(IcebergParams(D("5")), qty="3"), rules(max_qty=D("1.2")))
    sh = Shell(algo, auto_submit=True)
    assert drain(sh) == [D("1.2"), D("1.2"), D("0.6")]
    assert {p.order.type for p in sh.places()} == {OrderType.MARKET}


def test_randomised_clips_are_seeded_bounded_and_survive_a_restart():
    a = iceberg(qty="10", clip="1", clip_jitter=D("0.25"), seed=7)
    clips = [a.clip_for(s) for s in range(40)]
    assert all(D("0.75") <= c <= D("1.25") for c in clips) and len(set(clips)) > 10
    assert clips == [iceberg(qty="10", clip="1", clip_jitter=D("0.25"), seed=7).clip_for(s) for s in range(40)]
    assert clips != [iceberg(qty="10", clip="1", clip_jitter=D("0.25"), seed=8).clip_for(s) for s in range(40)]
    u = uniform_draw(7, "p1", 0)
    assert 0 <= u < 1 and clips[0] == (D(1) * (1 + D("0.25") * (2 * u - 1))).quantize(D("0.001"), "ROUND_DOWN")
    sh = Shell(iceberg(qty="10", clip="1", clip_jitter=D("0.25"), seed=7), auto_submit=True)
    sizes = drain(sh)
    assert sum(sizes) == D(10) and sizes[:5] == clips[:5]
    # restart after three clips: the fourth is the same as without the restart
    sh2 = Shell(iceberg(qty="10", clip="1", clip_jitter=D("0.25"), seed=7), auto_submit=True)
    sh2.timer(0)
    for s in range(3):
        sh2.fill(cid(s), sizes[s], 10 + s)
    sh2.restore()
    assert sh2.algo.next_sequence == 4 and sh2.open_cids() == [cid(3)]
    assert sh2.fill(cid(3), sizes[3], 20)[0].order.qty == sizes[4]


def test_child_ended_short_by_the_venue_leaves_dust_below_min():
    sh = Shell(iceberg(qty="1.000", clip="0.5", min_qty="0.010"), auto_submit=True)
    sh.timer(0)
    sh.fill(cid(0), "0.5", 1)
    sh.fill(cid(1), "0.495", 2)
    acts = sh.event(cid(1), Expired(3))
    assert len(acts) == 1 and acts[0].status is ParentStatus.DUST
    assert acts[0].unfilled_qty == D("0.005") and "below the minimum child quantity 0.010" in acts[0].reason


def test_deadline_cancels_the_working_clip_and_expires():
    sh = Shell(iceberg(end_ns=100), auto_submit=True)
    sh.timer(0)
    sh.accept(cid(0), 1)
    assert sh.algo.next_wakeup_ns(50) == 100
    acts = sh.timer(100)
    assert [a.client_order_id for a in acts] == [cid(0)]
    acts = sh.canceled(cid(0), 101)
    assert acts[-1].status is ParentStatus.EXPIRED and acts[-1].unfilled_qty == D(1)
