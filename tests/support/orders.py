"""Shared builders for the order-layer tests: an order, fills from a small trade pool (the same
trade id always carries the same execution, so repeats are true duplicates), and a hypothesis
strategy of random event sequences (many of them invalid on purpose)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import strategies as st

from core.time import NS_PER_S
from execution.orders import (
    Accepted,
    Canceled,
    CancelRejected,
    CancelRequested,
    Expired,
    Fill,
    FillReceived,
    Liquidity,
    Order,
    OrderSide,
    OrderType,
    Rejected,
    Resolved,
    Submitted,
    TimedOut,
    TimeInForce,
    VenueOrderView,
    VenueStatus,
)

T0 = 1_700_000_000 * NS_PER_S
ORDER_QTY = Decimal("1.0")
N_TRADES = 8


def make_order(cid: str = "acct01.mom.0", qty: Decimal = ORDER_QTY, ts: int = T0) -> Order:
    return Order(client_order_id=cid, strategy_id="momentum", symbol="BTCUSDT", side=OrderSide.BUY,
                 type=OrderType.LIMIT, qty=qty, price=Decimal("100.0"), stop_price=None,
                 time_in_force=TimeInForce.GTC, reduce_only=False, ts_created=ts)


def pool_fill(i: int) -> Fill:
    """Trade i of the pool: qty 0.1/0.2/0.3 (Σ of all = 1.5 > the order's 1.0: overfills happen)."""
    return Fill(trade_id=f"t{i}", qty=Decimal(i % 3 + 1) / 10, price=Decimal(100) + Decimal(i) / 4,
                fee=Decimal("0.0004") * (i + 1), fee_asset="USDT", ts_event=T0 + i, liquidity=Liquidity.MAKER)


EXECUTED_CHOICES = [None, Decimal(0), Decimal("0.1"), Decimal("0.3"), Decimal("0.6"), Decimal("1.0")]

_spec = st.one_of(
    st.tuples(st.just("submit")),
    st.tuples(st.just("accept"), st.sampled_from(["v1", "v2"])),
    st.tuples(st.just("fill"), st.integers(0, N_TRADES - 1)),
    st.tuples(st.just("cancel_request")),
    st.tuples(st.just("cancel_reject")),
    st.tuples(st.just("cancel"), st.sampled_from(EXECUTED_CHOICES)),
    st.tuples(st.just("reject")),
    st.tuples(st.just("expire"), st.sampled_from(EXECUTED_CHOICES)),
    st.tuples(st.just("timeout")),
    st.tuples(st.just("resolve"), st.sampled_from(list(VenueStatus)), st.sampled_from(EXECUTED_CHOICES[1:]),
              st.lists(st.integers(0, N_TRADES - 1), max_size=4), st.sampled_from([None, "v1", "v2"])),
)
# (spec, seconds since the previous event): 200 s steps pass the not-found grace window, 1 s do not
event_specs = st.lists(st.tuples(_spec, st.sampled_from([1, 200])), max_size=30)


def build_event(spec: tuple, ts: int):
    kind = spec[0]
    if kind == "submit":
        return Submitted(ts)
    if kind == "accept":
        return Accepted(ts, spec[1])
    if kind == "fill":
        return FillReceived(ts, pool_fill(spec[1]))
    if kind == "cancel_request":
        return CancelRequested(ts)
    if kind == "cancel_reject":
        return CancelRejected(ts, "Unknown order sent.")
    if kind == "cancel":
        return Canceled(ts, "", spec[1])
    if kind == "reject":
        return Rejected(ts, "Filter failure: PRICE_FILTER")
    if kind == "expire":
        return Expired(ts, spec[1])
    if kind == "timeout":
        return TimedOut(ts)
    status, executed, trades, vid = spec[1:]
    if status is VenueStatus.NOT_FOUND:
        return Resolved(ts, VenueOrderView(VenueStatus.NOT_FOUND))
    fills = tuple(pool_fill(i) for i in dict.fromkeys(trades))
    return Resolved(ts, VenueOrderView(status, executed, vid, fills))


def timed_events(specs):
    """The events of a spec list with their timestamps (strictly increasing from T0)."""
    ts = T0
    for spec, dt in specs:
        ts += dt * NS_PER_S
        yield build_event(spec, ts)
