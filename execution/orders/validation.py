"""Local order validation against the symbol's exchange rules, before any venue call.

`validate_order` returns the normalised request (Decimal price/qty on the tick/step grid, time in
force defaulted to GTC for limit types) or raises `OrderRejected(reason, message)`; the message
names the symbol, the field, the value and the requirement.

Rounding rules (docs/orders.md):
- A price or stop price off the tick is REFUSED, never moved: a silently moved limit price is a
  different order. The message gives the two nearest valid prices.
- A quantity off the step is refused, unless the caller asks `round_qty=True`: then it is rounded
  DOWN (toward zero) to the step, never up (caps stay caps), and min/max are checked after rounding.
  This is the same rounding as `core.instrument.Instrument.decimal_qty`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Any

from core.enums import Market
from core.errors import ConfigError
from core.instrument import Instrument
from execution.orders.errors import OrderRejected, OrderValueError, RejectReason
from execution.orders.model import (
    OrderRequest,
    OrderSide,
    OrderType,
    TimeInForce,
    to_decimal,
)

R = RejectReason
_CTX = Context(prec=60, rounding=ROUND_HALF_EVEN)


def _cfg_dec(value: Any, name: str, symbol: str, *, optional: bool = False, positive: bool = False) -> Decimal | None:
    try:
        d = to_decimal(value, name, allow_none=optional)
    except OrderValueError as err:
        raise ConfigError(f"symbol rules {symbol}: {err}") from None
    if d is not None and (d < 0 or (positive and d == 0)):
        raise ConfigError(f"symbol rules {symbol}: {name}={d}: must be {'> 0' if positive else '≥ 0'}")
    return d


@dataclass(frozen=True, slots=True)
class SymbolRules:
    """A symbol's exchange filters (Binance PRICE_FILTER, LOT_SIZE, MARKET_LOT_SIZE, MIN_NOTIONAL /
    NOTIONAL, PERCENT_PRICE) as exact Decimals. Linear contracts only: notional =
    qty·contract_size·price in the quote asset (COIN-M inverse contracts are refused)."""

    symbol: str
    market: Market
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal = Decimal(0)
    max_qty: Decimal | None = None
    market_step_size: Decimal | None = None  # MARKET_LOT_SIZE (orders without a limit price)
    market_min_qty: Decimal | None = None
    market_max_qty: Decimal | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    min_notional: Decimal = Decimal(0)
    max_notional: Decimal | None = None
    apply_min_notional_to_market: bool = True
    percent_price_up: Decimal | None = None  # limit price ≤ reference·up
    percent_price_down: Decimal | None = None  # limit price ≥ reference·down
    contract_size: Decimal = Decimal(1)

    def __post_init__(self) -> None:
        s = object.__setattr__
        if not isinstance(self.symbol, str) or not self.symbol:
            raise ConfigError(f"symbol rules: symbol={self.symbol!r}: expected a non-empty string")
        sym = self.symbol
        try:
            s(self, "market", Market(self.market))
        except ValueError:
            raise ConfigError(f"symbol rules {sym}: market={self.market!r}: expected spot, usdm or coinm") from None
        if self.market is Market.COINM:
            raise ConfigError(f"symbol rules {sym}: market=coinm: inverse contracts are not supported by this validator")
        positive = {"tick_size", "step_size", "contract_size", "market_step_size", "percent_price_up",
                    "percent_price_down"}
        optional = {"max_qty", "market_step_size", "market_min_qty", "market_max_qty", "min_price", "max_price",
                    "max_notional", "percent_price_up", "percent_price_down"}
        for f in fields(self):
            if f.name in ("symbol", "market", "apply_min_notional_to_market"):
                continue
            s(self, f.name, _cfg_dec(getattr(self, f.name), f.name, sym, optional=f.name in optional,
                                     positive=f.name in positive))
        if not isinstance(self.apply_min_notional_to_market, bool):
            raise ConfigError(f"symbol rules {sym}: apply_min_notional_to_market must be a bool")
        with localcontext(_CTX):
            if self.min_qty % self.step_size:
                raise ConfigError(f"symbol rules {sym}: min_qty={self.min_qty} is not a multiple of step_size={self.step_size}")
            if self.min_price and self.min_price % self.tick_size:
                raise ConfigError(f"symbol rules {sym}: min_price={self.min_price} is not a multiple of tick_size={self.tick_size}")
            mstep = self.market_step_size or self.step_size
            if self.market_min_qty and self.market_min_qty % mstep:
                raise ConfigError(f"symbol rules {sym}: market_min_qty={self.market_min_qty} is not a multiple of "
                                  f"the market step {mstep}")
        if (self.percent_price_up is None) != (self.percent_price_down is None):
            raise ConfigError(f"symbol rules {sym}: give both percent_price_up and percent_price_down, or neither")
        if self.percent_price_up is not None and not self.percent_price_down < 1 < self.percent_price_up:
            raise ConfigError(f"symbol rules {sym}: percent price bounds must satisfy down < 1 < up, got "
                              f"down={self.percent_price_down} up={self.percent_price_up}")

    @classmethod
    def from_instrument(cls, instrument: Instrument, **overrides: Any) -> SymbolRules:
        """Rules from an `Instrument` (tick, step, min qty, min notional, contract size, market),
        exact through `repr` of the floats; further filters as keyword overrides."""
        base = dict(symbol=instrument.symbol, market=instrument.market,
                    tick_size=Decimal(repr(instrument.tick_size)), step_size=Decimal(repr(instrument.step_size)),
                    min_qty=Decimal(repr(instrument.min_qty)), min_notional=Decimal(repr(instrument.min_notional)),
                    contract_size=Decimal(repr(instrument.contract_size)))
        base.update(overrides)
        return cls(**base)

    @property
    def is_futures(self) -> bool:
        return self.market is not Market.SPOT


def _grid(x: Decimal, step: Decimal) -> Decimal:
    """x written with the step's number of decimals (x is on the grid)."""
    return x.quantize(Decimal(1).scaleb(min(step.as_tuple().exponent, 0)))


def round_down_to_step(qty: Decimal, step: Decimal) -> Decimal:
    """Largest multiple of `step` not above `qty` (qty ≥ 0), written with the step's decimals."""
    with localcontext(_CTX):
        return _grid((qty // step) * step, step)


def _reject(reason: RejectReason, symbol: str, field: str, value: Any, requirement: str) -> OrderRejected:
    return OrderRejected(reason, f"{symbol}: {field}={value} {requirement}", field, value)


def _check_price(rules: SymbolRules, field: str, p: Decimal) -> Decimal:
    sym = rules.symbol
    if p <= 0:
        raise _reject(R.INVALID_PRICE, sym, field, p, "must be > 0")
    with localcontext(_CTX):
        if p % rules.tick_size:
            lo = _grid((p // rules.tick_size) * rules.tick_size, rules.tick_size)
            hi = _grid(lo + rules.tick_size, rules.tick_size)
            raise _reject(R.PRICE_OFF_TICK, sym, field, p,
                          f"is not a multiple of tick_size {rules.tick_size} (nearest valid: {lo} or {hi}); "
                          "prices are never moved silently")
    if rules.min_price and p < rules.min_price:
        raise _reject(R.PRICE_BELOW_MIN, sym, field, p, f"is below min_price {rules.min_price}")
    if rules.max_price and p > rules.max_price:
        raise _reject(R.PRICE_ABOVE_MAX, sym, field, p, f"is above max_price {rules.max_price}")
    return _grid(p, rules.tick_size)


def validate_order(
    request: OrderRequest,
    rules: Mapping[str, SymbolRules],
    *,
    available: Decimal | None,
    reference_price: Decimal | None = None,
    round_qty: bool = False,
    leverage: Decimal = Decimal(1),
    fee_rate: Decimal = Decimal(0),
) -> OrderRequest:
    """Check `request` against its symbol's rules; return it normalised or raise `OrderRejected`.

    available: the balance the order consumes (spot buy: quote asset; spot sell: base asset;
        futures: available margin in the quote asset); None skips the balance check (say so explicitly).
    reference_price: last/mark price. Needed for market orders' notional and balance, for percent-price
        bands, and it enables the stop-would-trigger check.
    leverage, fee_rate: futures margin = notional/leverage; both sides add notional·fee_rate of quote.
    """
    if not isinstance(request, OrderRequest):
        raise OrderValueError(f"expected an OrderRequest, got {type(request).__name__}")
    lev = to_decimal(leverage, "leverage", positive=True)
    fee = to_decimal(fee_rate, "fee_rate")
    ref = to_decimal(reference_price, "reference_price", positive=True, allow_none=True)
    avail = to_decimal(available, "available", allow_none=True)
    sym = request.symbol
    r = rules.get(sym)
    if r is None:
        raise _reject(R.UNKNOWN_SYMBOL, sym, "symbol", sym, f"is not in the exchange info ({len(rules)} symbols known)")
    t = request.type

    # --- shape of the order ------------------------------------------------------------------
    if t.has_limit_price and request.price is None:
        raise _reject(R.MISSING_PRICE, sym, "price", None, f"is required for {t.value} orders")
    if not t.has_limit_price and request.price is not None:
        raise _reject(R.UNEXPECTED_PRICE, sym, "price", request.price, f"must be empty for {t.value} orders")
    if t.has_stop_price and request.stop_price is None:
        raise _reject(R.MISSING_STOP_PRICE, sym, "stop_price", None, f"is required for {t.value} orders")
    if not t.has_stop_price and request.stop_price is not None:
        raise _reject(R.UNEXPECTED_STOP_PRICE, sym, "stop_price", request.stop_price,
                      f"must be empty for {t.value} orders")
    tif = request.time_in_force
    if tif is TimeInForce.POST_ONLY and t is not OrderType.LIMIT:
        raise _reject(R.POST_ONLY_REQUIRES_LIMIT, sym, "time_in_force", tif.value,
                      f"is only allowed for LIMIT orders, not {t.value}")
    if not t.has_limit_price and tif is not None:
        raise _reject(R.INVALID_TIME_IN_FORCE, sym, "time_in_force", tif.value,
                      f"must be empty for {t.value} orders (no limit price)")
    if t.has_limit_price and tif is None:
        tif = TimeInForce.GTC
    if request.reduce_only and not r.is_futures:
        raise _reject(R.REDUCE_ONLY_NOT_SUPPORTED, sym, "reduce_only", True,
                      f"is only available on futures, not on {r.market.value}")

    # --- quantity ----------------------------------------------------------------------------
    qty = request.qty
    if qty <= 0:
        raise _reject(R.INVALID_QTY, sym, "qty", qty, "must be > 0")
    market_like = not t.has_limit_price
    step = (r.market_step_size if market_like and r.market_step_size else r.step_size)
    min_qty = r.market_min_qty if market_like and r.market_min_qty is not None else r.min_qty
    max_qty = r.market_max_qty if market_like and r.market_max_qty is not None else r.max_qty
    step_name = "market_step_size" if step is r.market_step_size else "step_size"
    rounded_from = None
    with localcontext(_CTX):
        if qty % step:
            if not round_qty:
                raise _reject(R.QTY_OFF_STEP, sym, "qty", qty,
                              f"is not a multiple of {step_name} {step} (pass round_qty=True to round down to "
                              f"{round_down_to_step(qty, step)})")
            rounded_from, qty = qty, round_down_to_step(qty, step)
        else:
            qty = _grid(qty, step)
    note = f" (rounded down from {rounded_from} to the step {step})" if rounded_from is not None else ""
    if qty == 0:
        raise _reject(R.QTY_BELOW_MIN, sym, "qty", qty, f"is zero{note}")
    if qty < min_qty:
        raise _reject(R.QTY_BELOW_MIN, sym, "qty", qty, f"is below min_qty {min_qty}{note}")
    if max_qty is not None and qty > max_qty:
        raise _reject(R.QTY_ABOVE_MAX, sym, "qty", qty, f"is above max_qty {max_qty}")

    # --- prices ------------------------------------------------------------------------------
    price = _check_price(r, "price", request.price) if request.price is not None else None
    stop = _check_price(r, "stop_price", request.stop_price) if request.stop_price is not None else None
    if price is not None and r.percent_price_up is not None:
        if ref is None:
            raise _reject(R.REFERENCE_PRICE_REQUIRED, sym, "reference_price", None,
                          "is required to check the percent-price band of a limit price")
        with localcontext(_CTX):
            lo, hi = ref * r.percent_price_down, ref * r.percent_price_up
        if not lo <= price <= hi:
            raise _reject(R.PRICE_OUT_OF_BAND, sym, "price", price,
                          f"is outside the percent-price band [{lo}, {hi}] around reference {ref}")
    if stop is not None and ref is not None:
        # stop: buy triggers on a rise, sell on a fall; take-profit the other way round
        above = (request.side is OrderSide.BUY) == t.is_stop
        if (above and stop <= ref) or (not above and stop >= ref):
            raise _reject(R.STOP_WOULD_TRIGGER, sym, "stop_price", stop,
                          f"must be {'above' if above else 'below'} the reference price {ref} for a "
                          f"{request.side.value} {t.value} (it would trigger immediately)")

    # --- notional and balance ----------------------------------------------------------------
    px = price if price is not None else (stop if stop is not None else ref)
    exempt_min = (market_like and t is OrderType.MARKET and not r.apply_min_notional_to_market) or (
        r.is_futures and request.reduce_only)  # Binance futures: reduce-only is exempt from min notional
    needs_notional = (r.min_notional > 0 and not exempt_min) or r.max_notional is not None
    needs_balance = avail is not None and not request.reduce_only
    if px is None and (needs_notional or needs_balance):
        raise _reject(R.REFERENCE_PRICE_REQUIRED, sym, "reference_price", None,
                      f"is required for a {t.value} order's notional and balance checks")
    if px is not None:
        with localcontext(_CTX):
            notional = qty * r.contract_size * px
        if not exempt_min and notional < r.min_notional:
            raise _reject(R.NOTIONAL_BELOW_MIN, sym, "notional", notional,
                          f"(qty {qty} × price {px}) is below min_notional {r.min_notional}")
        if r.max_notional is not None and notional > r.max_notional:
            raise _reject(R.NOTIONAL_ABOVE_MAX, sym, "notional", notional,
                          f"(qty {qty} × price {px}) is above max_notional {r.max_notional}")
        if needs_balance:
            with localcontext(_CTX):
                if not r.is_futures and request.side is OrderSide.SELL:
                    need, what = qty, f"qty {qty} of the base asset"
                elif not r.is_futures:
                    need = notional + notional * fee
                    what = f"notional {notional} + fee {notional * fee} of the quote asset"
                else:
                    need = notional / lev + notional * fee
                    what = f"margin {notional / lev} (notional {notional} / leverage {lev}) + fee {notional * fee}"
            if need > avail:
                raise _reject(R.INSUFFICIENT_BALANCE, sym, "available", avail,
                              f"is below the {need} the order needs ({what})")

    return OrderRequest(symbol=sym, side=request.side, type=t, qty=qty, price=price, stop_price=stop,
                        time_in_force=tif, reduce_only=request.reduce_only)
