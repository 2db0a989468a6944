"""`SimVenue`: the backtest fill model behind the `Venue` port, in process (paper trading, tests, drills).

Its owner feeds it market data — `on_trade(symbol, ts_ns, price, qty, is_buyer_maker)` (and
optionally `on_book(symbol, ts_ns, bid, ask)`) — and it matches resting orders against each trade
with the fill model's kernels, read at trade granularity exactly as the exchange emulator does (one
trade = a bar whose open, low and high are the trade price and whose volume is the trade quantity):

- every order reaches the venue `latency_ns` after its submission (`market_eligible_nb`): trades
  before that never touch it;
- MARKET: fills at the next trade at price ± slippage (`market_fill_price_nb`, `price_impact` 0 unless
  the owner passes one), quantity capped at participation × trade qty (`fillable_qty_nb`); the rest
  goes on at later trades;
- LIMIT resting: fills only when a trade goes THROUGH the price (strictly), on the trade that makes
  the count of such trades exceed `queue_delay_bars` (`limit_fill_nb`), at the limit price, maker fee,
  participation-capped;
- LIMIT marketable at placement (`limit_place_check_nb` against the last trade): taker on the next
  trade at that trade's market fill price if within the limit; IOC/FOK then expire the rest (FOK:
  all or nothing); a GTC remainder rests as a maker limit. A non-marketable IOC/FOK expires at once;
- post-only (`TimeInForce.POST_ONLY`): rejected when it would cross the last price;
- stops trigger on the trade price: STOP_MARKET fills in full at the triggering trade with
  `stop_fill_nb` (gap → the trade price), TAKE_PROFIT_MARKET at that trade's market fill price,
  *_LIMIT become limits; a stop that would trigger at placement is rejected;
- reduce-only (USD-M): rejected without an opposite position; fills are capped at the position and
  the order expires when the position is gone.

Fees: `execution.fees.fee_nb` (maker for resting limits, taker otherwise). USD-M: the USDT wallet and
positions are an `execution.ledger.Ledger` (the backtest's accounting), with open-order margin
reserved like Binance. Spot: asset balances (free/locked) with the commission taken in the received
asset (buy: base, sell: quote), as Binance does without BNB, so that the order manager's and the
reconciler's views agree with what a real account reports.

Filters go through `execution.orders.validation.validate_order` (the rules the order manager uses)
and its rejects are answered as Binance does (`VenueRejectedError` with Binance's code and message).
Deterministic: no wall clock (market time is the latest fed timestamp unless a `clock` is injected),
no network, faults for drills are scheduled (`inject`) or drawn from a seeded RNG.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

import numpy as np
from pydantic import Field

from core.config import FrozenConfig
from core.enums import Market, Reason
from core.errors import ConfigError, DataError
from core.instrument import Instrument
from core.time import NS_PER_MS
from execution.fees import FeeConfig, fee_nb
from execution.fill_model import (
    PLACE_WOULD_CROSS,
    FillModelConfig,
    fillable_qty_nb,
    instrument_row,
    limit_fill_nb,
    limit_place_check_nb,
    market_eligible_nb,
    market_fill_price_nb,
    stop_fill_nb,
)
from execution.ledger import S_LEVERAGE, Ledger
from execution.orders.errors import OrderRejected, RejectReason
from execution.orders.model import (
    Fill,
    Liquidity,
    Order,
    OrderRequest,
    OrderSide,
    OrderType,
    TimeInForce,
    VenueOrderView,
    VenueStatus,
)
from execution.orders.validation import SymbolRules, validate_order
from execution.venue import (
    AmbiguousSubmitError,
    Balance,
    Position,
    SubmitAck,
    SubmitNotProcessedError,
    VenueFill,
    VenueOpenOrder,
    VenueRejectedError,
    VenueUnavailableError,
    is_conditional,
)

V = VenueStatus
R = RejectReason
QUOTE_ASSETS = ("USDT", "USDC", "FDUSD", "BTC")
# our type → (executes as "market" | "limit", trigger None | "stop" | "tp")
_KINDS: dict[OrderType, tuple[str, str | None]] = {
    OrderType.MARKET: ("market", None), OrderType.LIMIT: ("limit", None),
    OrderType.STOP_MARKET: ("market", "stop"), OrderType.STOP_LIMIT: ("limit", "stop"),
    OrderType.TAKE_PROFIT_MARKET: ("market", "tp"), OrderType.TAKE_PROFIT_LIMIT: ("limit", "tp"),
}
FaultKind = Literal["lost_ack", "timeout", "not_processed", "unavailable"]
FaultCall = Literal["submit", "cancel", "query", "open_orders", "fills_since", "balances", "positions"]

# Binance's answers (code, message) for the rejects SimVenue produces.
_SPOT_INSUFFICIENT = (-2010, "Account has insufficient balance for requested action.")
_SPOT_DUPLICATE = (-2010, "Duplicate order sent.")
_SPOT_WOULD_TAKE = (-2010, "Order would immediately match and take.")
_SPOT_STOP_IMMEDIATE = (-2010, "Stop price would trigger immediately.")
_FUT_MARGIN = (-2019, "Margin is insufficient.")
_FUT_DUPLICATE = (-4116, "ClientOrderId is duplicated.")
_FUT_GTX_REJECT = (-5022, ("Due to the order could not be executed as maker, the Post Only order will be rejected. "
                           "The order will not be recorded in the order history"))
_FUT_STOP_IMMEDIATE = (-2021, "Order would immediately trigger.")
_FUT_REDUCE_ONLY = (-2022, "ReduceOnly Order is rejected.")
_UNKNOWN_ORDER = (-2011, "Unknown order sent.")
_INVALID_SYMBOL = (-1121, "Invalid symbol.")


def _filter(name: str) -> tuple[int, str]:
    return -1013, f"Filter failure: {name}"


def split_symbol(symbol: str) -> tuple[str, str]:
    """'BTCUSDT' → ('BTC', 'USDT'): the longest known quote suffix wins (pass `assets` otherwise)."""
    for q in QUOTE_ASSETS:
        if symbol.endswith(q) and len(symbol) > len(q):
            return symbol[: -len(q)], q
    raise ConfigError(f"symbol {symbol!r}: quote asset not one of {QUOTE_ASSETS}; pass assets=")


def _d8(x: float) -> Decimal:
    """Float → Decimal with 8 decimals (Binance's wire precision; the emulator's too)."""
    return Decimal(f"{x:.8f}")


class SimVenueConfig(FrozenConfig):
    """Market, the backtest fill/fee models, the account and the seeded random faults."""

    market: Literal["spot", "usdm"] = "usdm"
    fill: FillModelConfig = FillModelConfig()
    fees: FeeConfig | None = Field(None, description="None: Binance VIP 0 of the market")
    balances: dict[str, float] = Field(default_factory=lambda: {"USDT": 10_000.0},
                                       description="starting balances (usdm: the USDT wallet)")
    leverage: float = Field(10.0, ge=1, le=125, description="usdm: leverage of every symbol (capped by the instrument)")
    market_buy_reserve: float = Field(0.05, ge=0, le=1, description="spot: quote locked above the reference for "
                                      "market buys (a fill beyond it expires the order, as Binance does)")
    seed: int = Field(0, ge=0)
    random_submit_faults: float = Field(0.0, ge=0, le=1, description="probability that a submission gets a "
                                        "lost ack or a timeout (drawn from the seeded RNG)")

    def fee_config(self) -> FeeConfig:
        if self.fees is not None:
            return self.fees
        if self.market == "spot":
            return FeeConfig(venue="binance_spot", maker_rate=0.001, taker_rate=0.001)
        return FeeConfig(venue="binance_usdm", maker_rate=0.0002, taker_rate=0.0004)


@dataclass(frozen=True, slots=True)
class SimFault:
    """A scheduled fault for drills: the next `times` calls of `call` get `kind`.

    - lost_ack (submit): the order IS stored, then AmbiguousSubmitError (the answer was lost);
    - timeout (submit): the request never reached the book, AmbiguousSubmitError (reads and
      cancels: VenueUnavailableError);
    - not_processed (submit): SubmitNotProcessedError (a 429: the order does not exist);
    - unavailable (reads, cancel): VenueUnavailableError.
    """

    kind: FaultKind
    call: FaultCall = "submit"
    times: int = 1


@dataclass
class _SimOrder:
    order: Order
    venue_order_id: str
    side: int
    exec_kind: str
    trigger: str | None
    tif: str | None  # GTC | IOC | FOK | None (market kinds, post-only)
    post_only: bool
    conditional: bool
    qty_f: float
    price: float | None
    stop: float | None
    ts_submit: int
    status: VenueStatus = V.NEW
    executed: Decimal = Decimal(0)
    triggered: bool = False
    taker_pending: bool = False
    through: int = 0
    lock_asset: str | None = None
    lock_per_unit: float = 0.0
    im_per_unit: float = 0.0
    fills: list[VenueFill] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status in (V.NEW, V.PARTIALLY_FILLED)

    @property
    def remaining_f(self) -> float:
        return float(self.order.qty - self.executed)


class SimVenue:
    """The `Venue` port over the backtest fill model (see the module docstring).

    instruments: the tradable symbols (their market must be `config.market`).
    rules: symbol → `SymbolRules` (default `SymbolRules.from_instrument`): the filters enforced.
    clock: UTC ns of submissions (None: market time, the latest fed timestamp).
    assets: symbol → (base, quote) (default: split by the quote suffix).
    """

    def __init__(self, instruments: Sequence[Instrument], config: SimVenueConfig | None = None, *,
                 rules: Mapping[str, SymbolRules] | None = None, clock: Callable[[], int] | None = None,
                 assets: Mapping[str, tuple[str, str]] | None = None):
        self.config = config or SimVenueConfig()
        self.market = self.config.market
        self._mkt = Market(self.market)
        if not instruments:
            raise ConfigError("SimVenue: at least one instrument is required")
        for inst in instruments:
            if inst.market != self._mkt:
                raise ConfigError(f"SimVenue: {inst.symbol} is {inst.market.value}, the venue is {self.market}")
        self.instruments = {i.symbol: i for i in instruments}
        self.rules = dict(rules) if rules is not None else {s: SymbolRules.from_instrument(i)
                                                            for s, i in self.instruments.items()}
        missing = set(self.instruments) - set(self.rules)
        if missing:
            raise ConfigError(f"SimVenue: no rules for {sorted(missing)}")
        self.assets = {s: (tuple(assets[s]) if assets and s in assets else split_symbol(s)) for s in self.instruments}
        self._rows = {s: instrument_row(i) for s, i in self.instruments.items()}
        self._decimals = {s: max(0, -Decimal(repr(i.step_size)).as_tuple().exponent)
                          for s, i in self.instruments.items()}
        self.fill_params = self.config.fill.to_params()
        self.fee_params = self.config.fee_config().to_params()
        self._clock = clock
        self._rng = random.Random(self.config.seed)
        self._faults: list[list] = []  # [SimFault, remaining]
        self._market_ns = 0
        self._last: dict[str, float] = {}
        self._last_ts: dict[str, int] = {}
        self._book: dict[str, tuple[int, float, float]] = {}
        self._orders: list[_SimOrder] = []
        self._open: dict[str, list[_SimOrder]] = {s: [] for s in self.instruments}
        self._fills: list[VenueFill] = []
        self._next_order_id = 1
        self._next_trade_id = 1
        self.balances_f: dict[str, list[float]] = {}  # spot: asset → [free, locked]
        self.ledger: Ledger | None = None
        if self._mkt == Market.SPOT:
            self.balances_f = {a: [float(v), 0.0] for a, v in self.config.balances.items()}
            for base, quote in self.assets.values():
                self.balances_f.setdefault(base, [0.0, 0.0])
                self.balances_f.setdefault(quote, [0.0, 0.0])
        else:
            insts = list(self.instruments.values())
            self.ledger = Ledger(insts, float(self.config.balances.get("USDT", 0.0)),
                                 leverage=[min(self.config.leverage, i.max_leverage) for i in insts])
        self.closed = False

    # -- market data (fed by the owner) ---------------------------------------------------------

    def now_ns(self) -> int:
        return int(self._clock()) if self._clock is not None else self._market_ns

    def last_price(self, symbol: str) -> float | None:
        return self._last.get(symbol)

    def _symbol(self, symbol: str) -> str:
        if symbol not in self.instruments:
            raise DataError(f"SimVenue: unknown symbol {symbol!r}; venue has {sorted(self.instruments)}")
        return symbol

    def on_book(self, symbol: str, ts_ns: int, bid: float, ask: float) -> None:
        """Best bid/ask. Only a reference price (mid) before the first trade: fills come from trades."""
        self._symbol(symbol)
        if not (math.isfinite(bid) and math.isfinite(ask) and 0 < bid < ask):
            raise DataError(f"SimVenue.on_book {symbol}: need 0 < bid < ask, got bid={bid!r} ask={ask!r}")
        self._book[symbol] = (int(ts_ns), float(bid), float(ask))
        self._market_ns = max(self._market_ns, int(ts_ns))

    def on_trade(self, symbol: str, ts_ns: int, price: float, qty: float, is_buyer_maker: bool = False,
                 *, price_impact: float = 0.0) -> list[VenueFill]:
        """One market trade: match every open order of `symbol` against it; returns the account's
        fills it produced (what a user-data stream would push). Timestamps must not go back."""
        self._symbol(symbol)
        ts = int(ts_ns)
        if not (math.isfinite(price) and price > 0 and math.isfinite(qty) and qty > 0):
            raise DataError(f"SimVenue.on_trade {symbol}: price and qty must be finite and > 0, got {price!r}, {qty!r}")
        if ts < self._last_ts.get(symbol, ts):
            raise DataError(f"SimVenue.on_trade {symbol}: ts {ts} before the previous trade {self._last_ts[symbol]}")
        if not math.isfinite(price_impact):
            raise DataError(f"SimVenue.on_trade {symbol}: price_impact must be finite")
        self._last[symbol] = float(price)
        self._last_ts[symbol] = ts
        self._market_ns = max(self._market_ns, ts)
        if not self._open[symbol]:
            return []
        n0 = len(self._fills)
        self._match(symbol, ts, float(price), float(qty), float(price_impact))
        return self._fills[n0:]

    def _reference(self, symbol: str) -> float | None:
        last = self._last.get(symbol)
        if last is None and symbol in self._book:
            _, bid, ask = self._book[symbol]
            return (bid + ask) / 2
        return last

    # -- faults ---------------------------------------------------------------------------------

    def inject(self, fault: SimFault) -> None:
        """Schedule a fault for the next `fault.times` calls of `fault.call`."""
        if fault.times < 1:
            raise ConfigError("SimFault.times must be ≥ 1")
        if fault.call == "submit" and fault.kind == "unavailable":
            raise ConfigError("SimFault: 'unavailable' is for reads and cancels; use 'timeout' for submissions")
        if fault.call != "submit" and fault.kind in ("lost_ack", "not_processed"):
            raise ConfigError(f"SimFault: {fault.kind!r} only applies to submissions")
        self._faults.append([fault, fault.times])

    def _take_fault(self, call: str) -> FaultKind | None:
        for slot in self._faults:
            if slot[0].call == call and slot[1] > 0:
                slot[1] -= 1
                kind = slot[0].kind
                self._faults = [s for s in self._faults if s[1] > 0]
                return kind
        if call == "submit" and self.config.random_submit_faults > 0 \
                and self._rng.random() < self.config.random_submit_faults:
            return "lost_ack" if self._rng.random() < 0.5 else "timeout"
        return None

    def _read_fault(self, call: str, what: str) -> None:
        if self.closed:
            raise VenueUnavailableError(f"SimVenue closed: {what}")
        if self._take_fault(call) is not None:
            raise VenueUnavailableError(f"{what}: simulated venue unavailable")

    # -- submit ---------------------------------------------------------------------------------

    def _reject(self, pair: tuple[int, str], cid: str | None, what: str = "order rejected") -> VenueRejectedError:
        code, msg = pair
        return VenueRejectedError(f"{what}: code={code} {msg}", code=code, venue_message=msg, http_status=400,
                                  client_order_id=cid)

    def _map_reject(self, err: OrderRejected, order: Order) -> tuple[int, str]:
        """The validator's reason → Binance's answer (the emulator's table)."""
        spot = self._mkt == Market.SPOT
        market_like = not order.type.has_limit_price
        r = err.reason
        if r is R.UNKNOWN_SYMBOL:
            return _INVALID_SYMBOL
        if r is R.PRICE_OFF_TICK:
            return _filter("PRICE_FILTER") if spot else (-4014, "Price not increased by tick size.")
        if r in (R.INVALID_PRICE, R.PRICE_BELOW_MIN, R.PRICE_ABOVE_MAX):
            return _filter("PRICE_FILTER")
        if r is R.PRICE_OUT_OF_BAND:
            return _filter("PERCENT_PRICE_BY_SIDE" if spot else "PERCENT_PRICE")
        if r is R.QTY_OFF_STEP:
            return _filter("LOT_SIZE") if spot else (-1111, "Precision is over the maximum defined for this asset.")
        if r is R.INVALID_QTY:
            return _filter("LOT_SIZE") if spot else (-4003, "Quantity less than or equal to zero.")
        if r is R.QTY_BELOW_MIN:
            return _filter("MARKET_LOT_SIZE" if market_like else "LOT_SIZE")
        if r is R.QTY_ABOVE_MAX:
            if market_like:
                return _filter("MARKET_LOT_SIZE")
            return _filter("LOT_SIZE") if spot else (-4005, "Quantity greater than max quantity.")
        if r in (R.NOTIONAL_BELOW_MIN, R.NOTIONAL_ABOVE_MAX):
            if spot:
                return _filter("NOTIONAL")
            mn = self.rules[order.symbol].min_notional
            return -4164, f"Order's notional must be no smaller than {mn.normalize():f} (unless you choose reduce only)."
        if r is R.STOP_WOULD_TRIGGER:
            return _SPOT_STOP_IMMEDIATE if spot else _FUT_STOP_IMMEDIATE
        if r is R.REDUCE_ONLY_NOT_SUPPORTED:
            return -1106, "Parameter 'reduceOnly' sent when not required."
        if r in (R.INSUFFICIENT_BALANCE, R.REFERENCE_PRICE_REQUIRED):  # no price to value it with: no funds check
            return _SPOT_INSUFFICIENT if spot else _FUT_MARGIN
        return -1102, str(err)  # malformed request (shape errors the order type already prevents)

    async def submit(self, order: Order) -> SubmitAck:
        """Place `order` once (see the module docstring for the rules). Raises VenueRejectedError with
        Binance's code, AmbiguousSubmitError / SubmitNotProcessedError for injected faults."""
        cid = order.client_order_id
        if self.closed:
            raise SubmitNotProcessedError("SimVenue closed: not sent", cid)
        fault = self._take_fault("submit")
        if fault == "not_processed":
            raise SubmitNotProcessedError(f"submit {cid}: simulated 429 (not processed)", cid, retry_after=1.0)
        if fault == "timeout":
            raise AmbiguousSubmitError(f"submit {cid}: simulated timeout (the request never reached the book)", cid)
        o = self._place(order)
        if fault == "lost_ack":
            raise AmbiguousSubmitError(f"submit {cid}: simulated lost acknowledgement (the order is stored)", cid)
        return SubmitAck(cid, o.venue_order_id, o.status, o.executed, o.ts_submit)

    def _place(self, order: Order) -> _SimOrder:
        spot = self._mkt == Market.SPOT
        cid = order.client_order_id
        sym = order.symbol
        if sym not in self.instruments:
            raise self._reject(_INVALID_SYMBOL, cid)
        ref = self._reference(sym)
        req = OrderRequest(sym, order.side, order.type, order.qty, order.price, order.stop_price,
                           order.time_in_force, order.reduce_only)
        try:
            validate_order(req, self.rules, available=None,
                           reference_price=None if ref is None else _d8(ref))
        except OrderRejected as err:
            raise self._reject(self._map_reject(err, order), cid) from err
        if any(o.order.client_order_id == cid and o.is_open for o in self._orders):
            raise self._reject(_SPOT_DUPLICATE if spot else _FUT_DUPLICATE, cid)
        exec_kind, trigger = _KINDS[order.type]
        side = 1 if order.side is OrderSide.BUY else -1
        price = float(order.price) if order.price is not None else None
        stop = float(order.stop_price) if order.stop_price is not None else None
        last = self._last.get(sym)
        post_only = order.time_in_force is TimeInForce.POST_ONLY
        tif = None
        if exec_kind == "limit" and not post_only:
            tif = (order.time_in_force or TimeInForce.GTC).value
        if trigger is not None and last is not None and self._triggers(side, trigger, stop, last):
            raise self._reject(_SPOT_STOP_IMMEDIATE if spot else _FUT_STOP_IMMEDIATE, cid)
        marketable = False
        if exec_kind == "limit" and trigger is None and last is not None:
            marketable = int(limit_place_check_nb(side, price, last)) == PLACE_WOULD_CROSS
            if post_only and marketable:
                raise self._reject(_SPOT_WOULD_TAKE if spot else _FUT_GTX_REJECT, cid)
        if order.reduce_only:
            pos = self.ledger.position(sym).qty
            if pos == 0 or (pos > 0) == (side > 0):
                raise self._reject(_FUT_REDUCE_ONLY, cid)
        o = _SimOrder(order=order, venue_order_id=str(self._next_order_id), side=side, exec_kind=exec_kind,
                      trigger=trigger, tif=tif, post_only=post_only,
                      conditional=is_conditional(self.market, order.type), qty_f=float(order.qty), price=price,
                      stop=stop, ts_submit=self.now_ns(), taker_pending=marketable)
        reserve_ref = price if price is not None else (stop if stop is not None else ref)
        if spot:
            self._reserve_spot(o, reserve_ref)
        else:
            self._reserve_margin(o, reserve_ref)
        self._next_order_id += 1
        self._orders.append(o)
        if exec_kind == "limit" and trigger is None and tif in ("IOC", "FOK") and not marketable:
            self._finish(o, V.EXPIRED)  # nothing to take now: expires at once
        else:
            self._open[sym].append(o)
        return o

    def _reserve_spot(self, o: _SimOrder, ref: float | None) -> None:
        base, quote = self.assets[o.order.symbol]
        cid = o.order.client_order_id
        if o.side == 1:
            if ref is None:
                raise self._reject(_SPOT_INSUFFICIENT, cid)  # no price yet to value a buy
            per_unit = ref if o.price is not None else ref * (1.0 + self.config.market_buy_reserve)
            asset, amount = quote, o.qty_f * per_unit
        else:
            per_unit, asset, amount = 1.0, base, o.qty_f
        bal = self.balances_f[asset]
        if bal[0] + 1e-12 < amount:
            raise self._reject(_SPOT_INSUFFICIENT, cid)
        bal[0] -= amount
        bal[1] += amount
        o.lock_asset, o.lock_per_unit = asset, per_unit

    def _reserve_margin(self, o: _SimOrder, ref: float | None) -> None:
        if o.order.reduce_only:
            return
        pos = self.ledger.position(o.order.symbol).qty
        increasing = o.qty_f if pos == 0 or (pos > 0) == (o.side > 0) else max(0.0, o.qty_f - abs(pos))
        if increasing <= 0:
            return
        if ref is None:
            raise self._reject(_FUT_MARGIN, o.order.client_order_id)
        lev = float(self.ledger.pos[self.ledger.index(o.order.symbol), S_LEVERAGE])
        need = increasing * ref / lev
        if need > self.available_margin() + 1e-9:
            raise self._reject(_FUT_MARGIN, o.order.client_order_id)
        o.im_per_unit = need / o.qty_f

    # -- USD-M account numbers ------------------------------------------------------------------

    def _mark_all(self) -> None:
        for sym, p in self._last.items():
            self.ledger.mark(sym, p)

    def available_margin(self) -> float:
        """USD-M: wallet + unrealized − position initial margin − open-order margin (cross)."""
        self._mark_all()
        led = self.ledger
        upnl = im = 0.0
        for sym in self.instruments:
            pos = led.position(sym)
            if pos.qty != 0:
                upnl += pos.unrealized_pnl
                mark = self._last.get(sym) or pos.avg_price
                im += abs(pos.qty) * mark / float(led.pos[led.index(sym), S_LEVERAGE])
        open_im = sum(o.im_per_unit * o.remaining_f for o in self._orders if o.is_open)
        return led.wallet + upnl - im - open_im

    # -- matching -------------------------------------------------------------------------------

    @staticmethod
    def _triggers(side: int, kind: str, stop: float, p: float) -> bool:
        d = side * (p - stop)
        return d >= 0 if kind == "stop" else d <= 0

    def _match(self, sym: str, ts: int, p: float, q: float, impact: float) -> None:
        inst = self._rows[sym]
        prm = self.fill_params
        for o in list(self._open[sym]):
            if not o.is_open or not market_eligible_nb(prm, np.int64(o.ts_submit), np.int64(ts)):
                continue  # not at the venue yet (latency)
            if o.trigger is not None and not o.triggered:
                if not self._triggers(o.side, o.trigger, o.stop, p):
                    continue
                o.triggered = True
                if o.exec_kind == "market":
                    if o.trigger == "stop":
                        _, fp = stop_fill_nb(prm, o.side, o.stop, o.remaining_f, p, p, p, impact)
                    else:
                        fp = market_fill_price_nb(prm, o.side, o.remaining_f, p, impact)
                    self._fill(o, o.remaining_f, round(float(fp), 8), False, ts)
                else:
                    o.taker_pending = int(limit_place_check_nb(o.side, o.price, p)) == PLACE_WOULD_CROSS
                continue
            if o.exec_kind == "market":
                fq = float(fillable_qty_nb(prm, inst, o.remaining_f, q))
                if fq > 0:
                    fp = float(market_fill_price_nb(prm, o.side, fq, p, impact))
                    self._fill(o, fq, round(fp, 8), False, ts)
                continue
            if o.taker_pending:
                o.taker_pending = False
                fq = float(fillable_qty_nb(prm, inst, o.remaining_f, q))
                fp = round(float(market_fill_price_nb(prm, o.side, max(fq, 1e-12), p, impact)), 8)
                within = fp <= o.price if o.side == 1 else fp >= o.price
                if o.tif == "FOK" and fq + 1e-12 < o.remaining_f:
                    within = False
                if fq > 0 and within:
                    self._fill(o, fq, fp, False, ts)
                if o.is_open and o.tif in ("IOC", "FOK"):
                    self._finish(o, V.EXPIRED)
                continue
            filled, through = limit_fill_nb(prm, o.side, o.price, p, p, np.int64(o.through))
            o.through = int(through)
            if filled:
                fq = float(fillable_qty_nb(prm, inst, o.remaining_f, q))
                if fq > 0:
                    self._fill(o, fq, o.price, True, ts)
        self._open[sym] = [o for o in self._open[sym] if o.is_open]

    def _fill(self, o: _SimOrder, qty: float, price: float, is_maker: bool, ts: int) -> None:
        sym = o.order.symbol
        dec = self._decimals[sym]
        if o.order.reduce_only:
            pos = self.ledger.position(sym).qty
            if pos == 0 or (pos > 0) == (o.side > 0):
                self._finish(o, V.EXPIRED)
                return
            qty = min(qty, abs(pos))
        qty = round(qty, dec)
        notional = qty * price
        base, quote = self.assets[sym]
        if self._mkt == Market.SPOT:
            lock = self.balances_f[o.lock_asset]
            release = o.lock_per_unit * qty
            if o.side == 1:
                commission, c_asset = float(fee_nb(qty, is_maker, self.fee_params)), base
                if notional > lock[0] + release + 1e-9:  # a market buy beyond its reserve: Binance expires it
                    self._finish(o, V.EXPIRED)
                    return
                lock[1] -= release
                lock[0] += release - notional
                self.balances_f[base][0] += qty - commission
            else:
                commission, c_asset = float(fee_nb(notional, is_maker, self.fee_params)), quote
                lock[1] -= release
                self.balances_f[quote][0] += notional - commission
        else:
            commission, c_asset = float(fee_nb(notional, is_maker, self.fee_params)), quote
            self.ledger.apply_fill(sym, ts, o.side, qty, price, commission, is_maker, int(Reason.NONE),
                                   order_id=int(o.venue_order_id))
        q_dec = Decimal(f"{qty:.{dec}f}")
        fill = Fill(trade_id=str(self._next_trade_id), qty=q_dec, price=_d8(price), fee=_d8(commission),
                    fee_asset=c_asset, ts_event=ts, liquidity=Liquidity.MAKER if is_maker else Liquidity.TAKER)
        self._next_trade_id += 1
        vf = VenueFill(sym, o.venue_order_id, o.order.side, fill)
        o.fills.append(vf)
        self._fills.append(vf)
        o.executed += q_dec
        if o.executed >= o.order.qty:
            self._finish(o, V.FILLED)
        else:
            o.status = V.PARTIALLY_FILLED
            if o.order.reduce_only and self.ledger.position(sym).qty == 0:
                self._finish(o, V.EXPIRED)

    def _finish(self, o: _SimOrder, status: VenueStatus) -> None:
        """Final state: release what the order still holds (spot lock; usdm margin follows is_open)."""
        if self._mkt == Market.SPOT and o.lock_asset is not None:
            bal = self.balances_f[o.lock_asset]
            left = o.lock_per_unit * o.remaining_f
            bal[1] -= left
            bal[0] += left
            if abs(bal[1]) < 1e-9:
                bal[1] = 0.0
        o.status = status

    # -- cancel and queries ---------------------------------------------------------------------

    def _find(self, symbol: str, cid: str, conditional: bool) -> _SimOrder | None:
        matches = [o for o in self._orders if o.order.client_order_id == cid and o.order.symbol == symbol
                   and (self.market == "spot" or o.conditional == conditional)]
        if not matches:
            return None
        open_ = [o for o in matches if o.is_open]
        return (open_ or matches)[-1]

    async def cancel(self, symbol: str, client_order_id: str, *, conditional: bool = False) -> None:
        """Cancel an open order; VenueRejectedError -2011 when unknown or already final."""
        self._read_fault("cancel", f"cancel {client_order_id}")
        o = self._find(symbol, client_order_id, conditional)
        if o is None or not o.is_open:
            raise self._reject(_UNKNOWN_ORDER, client_order_id, f"cancel {client_order_id}: unknown or already final")
        self._finish(o, V.CANCELED)
        self._open[symbol] = [x for x in self._open[symbol] if x.is_open]

    async def query_order(self, symbol: str, client_order_id: str, *, conditional: bool = False) -> VenueOrderView:
        self._read_fault("query", f"query {client_order_id}")
        o = self._find(symbol, client_order_id, conditional)
        if o is None:
            return VenueOrderView(V.NOT_FOUND)
        return VenueOrderView(o.status, o.executed, o.venue_order_id, tuple(f.fill for f in o.fills))

    def _open_view(self, o: _SimOrder) -> VenueOpenOrder:
        tif = TimeInForce.POST_ONLY if o.post_only else (TimeInForce(o.tif) if o.tif else None)
        return VenueOpenOrder(symbol=o.order.symbol, client_order_id=o.order.client_order_id,
                              venue_order_id=o.venue_order_id, side=o.order.side, type=o.order.type,
                              qty=o.order.qty, price=o.order.price, stop_price=o.order.stop_price,
                              time_in_force=tif, reduce_only=o.order.reduce_only, status=o.status,
                              executed_qty=o.executed, ts_event=o.ts_submit, conditional=o.conditional)

    async def open_orders(self, symbol: str | None = None) -> list[VenueOpenOrder]:
        self._read_fault("open_orders", "open orders")
        return [self._open_view(o) for o in self._orders if o.is_open and symbol in (None, o.order.symbol)]

    def all_orders(self, symbol: str | None = None) -> list[VenueOpenOrder]:
        """Every order the venue accepted (terminal ones included), in placement order (tests, drills)."""
        return [self._open_view(o) for o in self._orders if symbol in (None, o.order.symbol)]

    async def fills_since(self, symbol: str, since_ms: int | None = None, *, from_id: int | None = None
                          ) -> list[VenueFill]:
        self._read_fault("fills_since", f"fills of {symbol}")
        rows = [f for f in self._fills if f.symbol == symbol]
        if from_id is not None:
            return [f for f in rows if int(f.fill.trade_id) >= from_id]
        if since_ms is not None:
            return [f for f in rows if f.fill.ts_event // NS_PER_MS >= since_ms]
        return rows[-500:]

    async def balances(self) -> dict[str, Balance]:
        self._read_fault("balances", "account")
        if self._mkt == Market.SPOT:
            return {a: Balance(a, _d8(v[0]), _d8(v[1])) for a, v in self.balances_f.items()}
        avail = self.available_margin()
        wallet = self.ledger.wallet
        return {"USDT": Balance("USDT", _d8(avail), _d8(wallet) - _d8(avail))}

    async def positions(self) -> dict[str, Position]:
        self._read_fault("positions", "positions")
        if self._mkt == Market.SPOT:
            return {}
        out = {}
        for sym in self.instruments:
            pos = self.ledger.position(sym)
            if pos.qty != 0:
                out[sym] = Position(sym, Decimal(f"{pos.qty:.{self._decimals[sym]}f}"), _d8(pos.avg_price))
        return out

    async def close(self) -> None:
        self.closed = True
