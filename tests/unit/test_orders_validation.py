"""Local validation: every reject reason with its message (symbol, field, value, requirement),
the rounding rules (prices refused off the tick, quantities rounded down only on request) and the
normalised result."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.enums import Market
from core.errors import ConfigError, RejectedError
from core.instrument import Instrument
from execution.orders import (
    OrderRejected,
    OrderRequest,
    OrderSide,
    OrderType,
    OrderValueError,
    RejectReason,
    SymbolRules,
    TimeInForce,
    round_down_to_step,
    validate_order,
)

D = Decimal
R = RejectReason
BUY, SELL = OrderSide.BUY, OrderSide.SELL
MKT, LMT = OrderType.MARKET, OrderType.LIMIT

FUT = SymbolRules(symbol="BTCUSDT", market=Market.USDM, tick_size=D("0.10"), step_size=D("0.001"),
                  min_qty=D("0.001"), max_qty=D("1000"), market_step_size=D("0.001"), market_min_qty=D("0.001"),
                  market_max_qty=D("120"), min_price=D("556.80"), max_price=D("4529764"), min_notional=D("100"),
                  percent_price_up=D("1.05"), percent_price_down=D("0.95"))
SPOT = SymbolRules.from_instrument(
    Instrument(symbol="ETHUSDT", market=Market.SPOT, tick_size=0.01, step_size=0.0001, min_qty=0.0001,
               min_notional=5.0, max_leverage=1))
RULES = {"BTCUSDT": FUT, "ETHUSDT": SPOT}
REF = D("60000")


def req(symbol="BTCUSDT", side=BUY, type=LMT, qty="0.010", price="60000.0", stop=None, tif=None, ro=False):
    return OrderRequest(symbol=symbol, side=side, type=type, qty=qty, price=price, stop_price=stop,
                        time_in_force=tif, reduce_only=ro)


def reject(request, *, available=None, reference_price=REF, **kw) -> OrderRejected:
    with pytest.raises(OrderRejected) as info:
        validate_order(request, RULES, available=available, reference_price=reference_price, **kw)
    assert isinstance(info.value, RejectedError)
    return info.value


def test_valid_limit_is_normalised():
    out = validate_order(req(price="60000.1", qty="0.0100"), RULES, available=D("1000"), reference_price=REF,
                         leverage=D(10))
    assert (out.price, out.qty, out.time_in_force) == (D("60000.1"), D("0.010"), TimeInForce.GTC)
    assert str(out.price) == "60000.10" and str(out.qty) == "0.010"  # written with the tick's decimals
    assert str(validate_order(req(price="60000"), RULES, available=None, reference_price=REF).price) == "60000.00"


@pytest.mark.parametrize("kw,reason,parts", [
    (dict(symbol="DOGEUSDT"), R.UNKNOWN_SYMBOL, ["DOGEUSDT", "symbol=DOGEUSDT", "not in the exchange info"]),
    (dict(qty="0"), R.INVALID_QTY, ["qty=0", "must be > 0"]),
    (dict(qty="-1"), R.INVALID_QTY, ["qty=-1", "must be > 0"]),
    (dict(qty="0.0105"), R.QTY_OFF_STEP, ["BTCUSDT", "qty=0.0105", "multiple of step_size 0.001", "round down to 0.010"]),
    (dict(qty="2000"), R.QTY_ABOVE_MAX, ["qty=2000", "above max_qty 1000"]),
    (dict(type=MKT, price=None, qty="121"), R.QTY_ABOVE_MAX, ["qty=121", "above max_qty 120"]),
    (dict(price=None), R.MISSING_PRICE, ["price=None", "required for LIMIT"]),
    (dict(type=MKT), R.UNEXPECTED_PRICE, ["price=60000.0", "must be empty for MARKET"]),
    (dict(price="-5"), R.INVALID_PRICE, ["price=-5", "must be > 0"]),
    (dict(price="60000.05"), R.PRICE_OFF_TICK,
     ["price=60000.05", "multiple of tick_size 0.10", "nearest valid: 60000.00 or 60000.10", "never moved"]),
    (dict(price="500.0", qty="1"), R.PRICE_BELOW_MIN, ["price=500.0", "below min_price 556.80"]),
    (dict(price="5000000.0"), R.PRICE_ABOVE_MAX, ["price=5000000.0", "above max_price 4529764"]),
    (dict(price="64000.0"), R.PRICE_OUT_OF_BAND, ["price=64000.0", "percent-price band [57000.00, 63000.00]"]),
    (dict(type=OrderType.STOP_MARKET, price=None), R.MISSING_STOP_PRICE, ["stop_price=None", "required for STOP_MARKET"]),
    (dict(stop="61000.0"), R.UNEXPECTED_STOP_PRICE, ["stop_price=61000.0", "must be empty for LIMIT"]),
    (dict(type=OrderType.STOP_LIMIT, stop="61000.05"), R.PRICE_OFF_TICK, ["stop_price=61000.05", "tick_size 0.10"]),
    (dict(type=OrderType.STOP_MARKET, price=None, stop="59000.0"), R.STOP_WOULD_TRIGGER,
     ["stop_price=59000.0", "must be above the reference price 60000", "BUY STOP_MARKET"]),
    (dict(type=OrderType.TAKE_PROFIT_MARKET, side=SELL, price=None, stop="59000.0"), R.STOP_WOULD_TRIGGER,
     ["stop_price=59000.0", "must be above the reference price 60000", "SELL TAKE_PROFIT_MARKET"]),
    (dict(type=MKT, price=None, tif=TimeInForce.IOC), R.INVALID_TIME_IN_FORCE, ["time_in_force=IOC", "MARKET"]),
    (dict(type=OrderType.STOP_LIMIT, stop="61000.0", tif=TimeInForce.POST_ONLY), R.POST_ONLY_REQUIRES_LIMIT,
     ["time_in_force=POST_ONLY", "only allowed for LIMIT orders, not STOP_LIMIT"]),
    (dict(qty="0.001"), R.NOTIONAL_BELOW_MIN, ["notional=60.0000", "qty 0.001 × price 60000.0", "below min_notional 100"]),
    (dict(symbol="ETHUSDT", ro=True, price="3000.00", qty="0.01"), R.REDUCE_ONLY_NOT_SUPPORTED,
     ["ETHUSDT", "reduce_only=True", "only available on futures, not on spot"]),
])
def test_each_reject_reason_names_field_value_and_requirement(kw, reason, parts):
    err = reject(req(**kw))
    assert err.reason is reason
    msg = str(err)
    assert msg.startswith(f"[{reason.value}] {kw.get('symbol', 'BTCUSDT')}: ")
    for p in parts:
        assert p in msg, (p, msg)


def test_qty_below_min_and_rounding_on_request():
    spot = {"ETHUSDT": SPOT}
    with pytest.raises(OrderRejected) as info:
        validate_order(req("ETHUSDT", qty="0.00019", price="3000.00"), spot, available=None)
    assert info.value.reason is R.QTY_OFF_STEP and info.value.field == "qty" and info.value.value == D("0.00019")
    out = validate_order(req("ETHUSDT", qty="0.01239", price="3000.00"), spot, available=None, round_qty=True)
    assert str(out.qty) == "0.0123"  # down, never up
    r2 = SymbolRules(symbol="X", market=Market.USDM, tick_size=D("0.1"), step_size=D("0.001"), min_qty=D("0.002"))
    assert validate_order(req("X", qty="0.0029", price="1.0"), {"X": r2}, available=None, round_qty=True).qty == D("0.002")
    with pytest.raises(OrderRejected) as info:
        validate_order(req("X", qty="0.0019", price="1.0"), {"X": r2}, available=None, round_qty=True)
    assert info.value.reason is R.QTY_BELOW_MIN
    assert "qty=0.001 is below min_qty 0.002 (rounded down from 0.0019 to the step 0.001)" in str(info.value)
    with pytest.raises(OrderRejected, match=r"qty=0.000 is zero \(rounded down from 0.0004"):
        validate_order(req("X", qty="0.0004", price="1.0"), {"X": r2}, available=None, round_qty=True)


def test_min_qty_and_max_qty_exact_boundaries():
    ok = validate_order(req(qty="0.002", price="60000.0"), RULES, available=None, reference_price=REF)
    assert ok.qty == D("0.002")
    r = SymbolRules(symbol="X", market=Market.USDM, tick_size=D("0.1"), step_size=D("0.001"), min_qty=D("0.005"),
                    max_qty=D("1.000"))
    err = pytest.raises(OrderRejected, validate_order, req("X", qty="0.004", price="1.0"), {"X": r}, available=None)
    assert err.value.reason is R.QTY_BELOW_MIN and "qty=0.004 is below min_qty 0.005" in str(err.value)
    assert validate_order(req("X", qty="1.000", price="1.0"), {"X": r}, available=None).qty == D("1")


def test_insufficient_balance_spot_and_futures():
    # spot buy: notional + fee in the quote asset
    e = reject(req("ETHUSDT", qty="1.0000", price="3000.00"), available=D("3002"), reference_price=None,
               fee_rate=D("0.001"))
    assert e.reason is R.INSUFFICIENT_BALANCE and e.field == "available" and e.value == D("3002")
    assert "available=3002 is below the 3003.0" in str(e) and "notional 3000.0" in str(e)
    validate_order(req("ETHUSDT", qty="1.0000", price="3000.00"), RULES, available=D("3003"), fee_rate=D("0.001"))
    # spot sell: the base asset
    e = reject(req("ETHUSDT", side=SELL, qty="2.0000", price="3000.00"), available=D("1.5"), reference_price=None)
    assert e.reason is R.INSUFFICIENT_BALANCE and "below the 2.0000 the order needs (qty 2.0000 of the base asset)" in str(e)
    # futures: margin at the leverage (+ fee)
    e = reject(req(qty="0.100", price="60000.0"), available=D("599"), leverage=D(10))
    assert e.reason is R.INSUFFICIENT_BALANCE and "margin 600" in str(e) and "leverage 10" in str(e)
    validate_order(req(qty="0.100", price="60000.0"), RULES, available=D("600"), reference_price=REF, leverage=D(10))
    # reduce-only needs no balance and is exempt from min notional (Binance futures)
    out = validate_order(req(qty="0.001", price="60000.0", ro=True), RULES, available=D(0), reference_price=REF)
    assert out.reduce_only


def test_market_orders_need_a_reference_price_for_notional_and_balance():
    e = reject(req(type=MKT, price=None, qty="0.010"), reference_price=None)
    assert e.reason is R.REFERENCE_PRICE_REQUIRED and "reference_price=None" in str(e)
    out = validate_order(req(type=MKT, price=None, qty="0.010"), RULES, available=D("1000"), reference_price=REF,
                         leverage=D(10))
    assert out.price is None and out.time_in_force is None
    e = reject(req(type=MKT, price=None, qty="0.001"))
    assert e.reason is R.NOTIONAL_BELOW_MIN
    e = reject(req(price="60000.0"), reference_price=None)  # percent band needs a reference
    assert e.reason is R.REFERENCE_PRICE_REQUIRED and "percent-price band" in str(e)


def test_stop_and_take_profit_types():
    out = validate_order(req(type=OrderType.STOP_LIMIT, stop="61000.0", price="61100.0"), RULES, available=None,
                         reference_price=REF)
    assert (out.stop_price, out.time_in_force) == (D("61000.0"), TimeInForce.GTC)
    out = validate_order(req(type=OrderType.STOP_MARKET, side=SELL, price=None, stop="59000.0", ro=True), RULES,
                         available=None, reference_price=REF)
    assert out.stop_price == D("59000.0") and out.reduce_only
    out = validate_order(req(type=OrderType.TAKE_PROFIT_LIMIT, side=SELL, stop="62000.0", price="62000.0"), RULES,
                         available=None, reference_price=REF)
    assert out.type is OrderType.TAKE_PROFIT_LIMIT
    out = validate_order(req(tif=TimeInForce.POST_ONLY), RULES, available=None, reference_price=REF)
    assert out.time_in_force is TimeInForce.POST_ONLY


def test_request_values_are_decimal_only():
    with pytest.raises(OrderValueError, match="not float"):
        req(qty=0.01)
    with pytest.raises(OrderValueError):
        req(price="abc")
    with pytest.raises(OrderValueError):
        req(side="HOLD")


def test_bad_rules_are_config_errors():
    with pytest.raises(ConfigError, match="min_qty=0.0015 is not a multiple of step_size=0.001"):
        SymbolRules(symbol="X", market=Market.USDM, tick_size=D("0.1"), step_size=D("0.001"), min_qty=D("0.0015"))
    with pytest.raises(ConfigError, match="inverse"):
        SymbolRules(symbol="X", market=Market.COINM, tick_size=D("0.1"), step_size=D("1"))
    with pytest.raises(ConfigError, match="tick_size"):
        SymbolRules(symbol="X", market=Market.USDM, tick_size=D("0"), step_size=D("1"))
    with pytest.raises(ConfigError, match="both"):
        SymbolRules(symbol="X", market=Market.USDM, tick_size=D("1"), step_size=D("1"), percent_price_up=D("1.1"))


@settings(max_examples=300, deadline=None)
@given(st.floats(0.0001, 1e6, allow_nan=False), st.sampled_from([0.001, 0.1, 0.00001, 1.0, 0.5]))
def test_round_down_matches_the_instrument(qty, step):
    inst = Instrument(symbol="X", tick_size=0.1, step_size=step)
    ours = round_down_to_step(D(repr(qty)), D(repr(step)))
    assert ours == inst.decimal_qty(qty)
    assert ours <= D(repr(qty)) < ours + D(repr(step))


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 10**7), st.integers(-3, 3))
def test_on_tick_prices_pass_and_off_tick_prices_are_refused(units, offset):
    tick = D("0.10")
    price = units * tick + D(offset) / 100
    request = req(price=str(price), qty="1.000")
    rules = {"BTCUSDT": SymbolRules(symbol="BTCUSDT", market=Market.USDM, tick_size=tick, step_size=D("0.001"))}
    if offset == 0:
        assert validate_order(request, rules, available=None).price == price
    else:
        with pytest.raises(OrderRejected) as info:
            validate_order(request, rules, available=None)
        assert info.value.reason is R.PRICE_OFF_TICK
