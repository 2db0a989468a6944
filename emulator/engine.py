"""The matching engine and accounts of the emulator: pure, synchronous, no network, no wall clock.

Orders are matched against the replayed trade tape with the backtest fill model's rules and
kernels (`execution.fill_model`), read at trade granularity (one trade = a bar whose open, low and
high are the trade price, its volume the trade quantity):

- MARKET: fills at the NEXT trade after placement, at price ± slippage (`market_fill_price_nb`,
  price_impact 0), quantity capped at participation × trade qty (`fillable_qty_nb`); the rest goes
  on at later trades.
- LIMIT resting: fills only when a trade goes THROUGH the price (buy: p < limit; sell: p > limit;
  touching is not enough) after `queue_delay_bars` such trades (`limit_fill_nb`), at the limit
  price, maker fee, participation-capped.
- LIMIT marketable at placement (buy ≥ last price, sell ≤ last): taker on the next trade only, at
  that trade's market fill price if it is within the limit; IOC/FOK then expire the rest (FOK fills
  all or nothing); a GTC remainder rests as a maker limit. A non-marketable IOC/FOK expires at once.
- Post-only (spot LIMIT_MAKER, usdm GTX): rejected when it would cross the last price
  (`limit_place_check_nb`).
- Stops trigger on the trade price: "stop" kinds (STOP_LOSS*, STOP*, buy p ≥ stop / sell p ≤ stop)
  fill in full at the triggering trade with `stop_fill_nb`; take-profit kinds (buy p ≤ stop / sell
  p ≥ stop) at that trade's market fill price; *_LIMIT / STOP / TAKE_PROFIT (usdm) become limits.
  A stop that would trigger at placement is rejected.

Fees: `execution.fees.fee_nb`, maker for resting limits, taker otherwise. Spot commission is taken
in the received asset (buy: base, sell: quote) as Binance does without BNB. USD-M positions and the
USDT wallet are an `execution.ledger.Ledger` (one-way mode, cross margin): the same fill accounting
as the backtest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import numpy as np

from core.enums import Market, Reason
from core.instrument import Instrument
from core.time import NS_PER_MS
from emulator import errors as E
from emulator.config import AccountConfig, EmulatorConfig, SymbolConfig, split_symbol
from emulator.errors import ApiError
from emulator.replay import ReplayClock, Tape
from execution.fees import fee_nb
from execution.fill_model import (PLACE_WOULD_CROSS, fillable_qty_nb, instrument_row, limit_fill_nb,
                                  limit_place_check_nb, market_fill_price_nb, stop_fill_nb)
from execution.ledger import S_LEVERAGE, Ledger

OPEN = ("NEW", "PARTIALLY_FILLED")
# type → (executes as "market" or "limit", trigger kind None | "stop" | "tp")
ORDER_TYPES: dict[Market, dict[str, tuple[str, str | None]]] = {
    Market.SPOT: {
        "MARKET": ("market", None), "LIMIT": ("limit", None), "LIMIT_MAKER": ("limit", None),
        "STOP_LOSS": ("market", "stop"), "STOP_LOSS_LIMIT": ("limit", "stop"),
        "TAKE_PROFIT": ("market", "tp"), "TAKE_PROFIT_LIMIT": ("limit", "tp"),
    },
    Market.USDM: {
        "MARKET": ("market", None), "LIMIT": ("limit", None), "STOP": ("limit", "stop"),
        "STOP_MARKET": ("market", "stop"), "TAKE_PROFIT": ("limit", "tp"), "TAKE_PROFIT_MARKET": ("market", "tp"),
    },
}
TIME_IN_FORCE = {Market.SPOT: ("GTC", "IOC", "FOK"), Market.USDM: ("GTC", "IOC", "FOK", "GTX")}


@dataclass
class Fill:
    trade_id: int
    order_id: int
    symbol: str
    side: int
    price: float
    qty: float
    commission: float
    commission_asset: str
    ts_ms: int
    is_maker: bool
    realized_pnl: float = 0.0


@dataclass
class Order:
    order_id: int
    client_id: str
    account: str
    symbol: str
    side: int  # +1 buy, -1 sell
    type: str
    exec_kind: str  # "market" | "limit"
    trigger: str | None  # None | "stop" | "tp"
    tif: str | None
    qty: float
    price: float | None
    stop_price: float | None
    reduce_only: bool
    post_only: bool
    time_ms: int
    status: str = "NEW"
    executed: float = 0.0
    cum_quote: float = 0.0
    update_ms: int = 0
    triggered: bool = False
    taker_pending: bool = False
    through: int = 0
    lock_asset: str | None = None
    lock_per_unit: float = 0.0
    im_per_unit: float = 0.0
    fills: list[Fill] = field(default_factory=list)
    cancel_client_id: str | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    @property
    def remaining(self) -> float:
        return max(0.0, self.qty - self.executed)

    @property
    def avg_price(self) -> float:
        return self.cum_quote / self.executed if self.executed > 0 else 0.0


class Account:
    """One API key's state: spot balances (asset → [free, locked]) or a USD-M ledger."""

    def __init__(self, cfg: AccountConfig, market: Market, instruments: list[Instrument]):
        self.cfg = cfg
        self.market = market
        self.balances: dict[str, list[float]] = {a: [float(v), 0.0] for a, v in cfg.balances.items()}
        for inst in instruments:
            for a in split_symbol(inst.symbol):
                self.balances.setdefault(a, [0.0, 0.0])
        self.ledger: Ledger | None = None
        if market == Market.USDM:
            self.ledger = Ledger(instruments, float(cfg.balances.get("USDT", 0.0)),
                                 leverage=[min(cfg.leverage, i.max_leverage) for i in instruments])
        self.orders: dict[int, Order] = {}
        # indexes so that placing and querying stay O(1)-ish however many orders an account has had
        self.open_orders: dict[int, Order] = {}
        self.by_client_id: dict[str, list[Order]] = {}
        self.open_margin = 0.0  # Σ initial margin still held by open orders (USD-M), kept incrementally
        self.fills: list[Fill] = []
        self.update_ms = 0


def _decimals(step: float) -> int:
    return max(0, -Decimal(repr(step)).as_tuple().exponent)


def _on_grid(value: Decimal, step: float) -> bool:
    return value % Decimal(repr(step)) == 0


def _dec(params: dict[str, str], name: str, required: bool = False) -> Decimal | None:
    raw = params.get(name)
    if raw is None or raw == "":
        if required:
            raise E.mandatory(name)
        return None
    try:
        d = Decimal(raw)
    except InvalidOperation:
        raise E.illegal(name) from None
    if not d.is_finite():
        raise E.illegal(name)
    return d


class Engine:
    """Tapes + accounts + orders; `sync()` consumes the trades that market time has reached."""

    def __init__(self, cfg: EmulatorConfig, tapes: dict[str, Tape], clock: ReplayClock):
        self.cfg = cfg
        self.market = cfg.market
        self.clock = clock
        self.tapes = tapes
        self.symbols: dict[str, SymbolConfig] = {s.instrument.symbol: s for s in cfg.symbols}
        self.instruments = [s.instrument for s in cfg.symbols]
        self.inst_rows = {i.symbol: instrument_row(i) for i in self.instruments}
        self.fill_params = cfg.fill.to_params()
        self.fee_params = cfg.fee_config().to_params()
        self.accounts: dict[str, Account] = {a.api_key: Account(a, self.market, self.instruments) for a in cfg.accounts}
        self._next_order_id = 1
        self._next_trade_id = 1
        self._open: dict[str, list[Order]] = {s: [] for s in self.symbols}
        # Order-event listener (the websocket user-data streams, emulator.ws_user): called under the
        # engine lock as listener(account, order, kind, fill, ts_ms) with kind NEW | TRADE | CANCELED |
        # EXPIRED | TRIGGERED, right after the order's state changed (the order is read at once).
        self.listener: Callable[[Account, Order, str, Fill | None, int], None] | None = None

    # -- time ---------------------------------------------------------------------------------

    def now_ms(self) -> int:
        return self.clock.now_ns() // NS_PER_MS

    def sync(self) -> None:
        """Match every trade with ts ≤ market time that was not consumed yet, symbol by symbol."""
        now = self.clock.now_ns()
        for sym, tape in self.tapes.items():
            stop = tape.n_visible(now)
            if stop <= tape.cursor:
                continue
            if not self._open[sym]:
                tape.cursor = stop  # fast path: nothing to match
                continue
            while tape.cursor < stop:
                i = tape.cursor
                tape.cursor += 1
                self._on_trade(sym, float(tape.price[i]), float(tape.qty[i]), int(tape.ts[i] // NS_PER_MS))
                if not self._open[sym]:
                    tape.cursor = stop
                    break

    def last_price(self, symbol: str) -> float | None:
        return self.tapes[symbol].last_price

    # -- placement ----------------------------------------------------------------------------

    def symbol_of(self, params: dict[str, str]) -> str:
        sym = params.get("symbol")
        if not sym:
            raise E.mandatory("symbol")
        if sym not in self.symbols:
            raise E.err(E.INVALID_SYMBOL)
        return sym

    def place(self, acct: Account, params: dict[str, str]) -> Order:
        """Validate, check filters and funds, store the order (NEW / EXPIRED); raise ApiError otherwise."""
        spot = self.market == Market.SPOT
        sym = self.symbol_of(params)
        sc = self.symbols[sym]
        side_s = params.get("side")
        if not side_s:
            raise E.mandatory("side")
        if side_s not in ("BUY", "SELL"):
            raise E.err(E.INVALID_SIDE)
        side = 1 if side_s == "BUY" else -1
        otype = params.get("type")
        if not otype:
            raise E.mandatory("type")
        if otype not in ORDER_TYPES[self.market]:
            raise E.err(E.INVALID_TYPE)
        exec_kind, trigger = ORDER_TYPES[self.market][otype]
        qty_d = _dec(params, "quantity", required=True)
        price_d = _dec(params, "price", required=exec_kind == "limit")
        stop_d = _dec(params, "stopPrice", required=trigger is not None)
        if exec_kind == "market" and price_d is not None:
            raise E.not_required("price")
        if trigger is None and stop_d is not None:
            raise E.not_required("stopPrice")
        tif = params.get("timeInForce")
        if exec_kind == "limit" and otype != "LIMIT_MAKER":
            if not tif:
                if not spot:
                    tif = "GTC"  # USD-M defaults to GTC
                else:
                    raise E.mandatory("timeInForce")
            if tif not in TIME_IN_FORCE[self.market]:
                raise E.err(E.INVALID_TIF)
        elif tif is not None and spot:
            raise E.not_required("timeInForce")
        else:
            tif = None if spot else "GTC"
        reduce_only = params.get("reduceOnly", "false").lower() == "true"
        if reduce_only and spot:
            raise E.not_required("reduceOnly")
        post_only = otype == "LIMIT_MAKER" or tif == "GTX"

        # filters
        self._check_filters(sc, exec_kind, qty_d, price_d, stop_d, reduce_only)
        qty = float(qty_d)
        price = float(price_d) if price_d is not None else None
        stop = float(stop_d) if stop_d is not None else None
        last = self.last_price(sym)

        # client order id: unique among the account's OPEN orders (Binance's rule)
        cid = params.get("newClientOrderId") or f"emu{self._next_order_id:08d}"
        if any(o.is_open for o in acct.by_client_id.get(cid, ())):
            raise E.err(E.SPOT_DUPLICATE if spot else E.FUT_DUPLICATE)

        # immediate-trigger and post-only checks against the last trade price
        if trigger is not None and last is not None and self._triggers(side, trigger, stop, last):
            raise E.err(E.SPOT_STOP_IMMEDIATE if spot else E.FUT_STOP_IMMEDIATE)
        marketable = False
        if exec_kind == "limit" and trigger is None and last is not None:
            marketable = int(limit_place_check_nb(side, price, last)) == PLACE_WOULD_CROSS
            if post_only and marketable:
                raise E.err(E.SPOT_WOULD_TAKE if spot else E.FUT_GTX_REJECT)

        now = self.now_ms()
        order = Order(order_id=self._next_order_id, client_id=cid, account=acct.cfg.api_key, symbol=sym, side=side,
                      type=otype, exec_kind=exec_kind, trigger=trigger, tif=tif, qty=qty, price=price,
                      stop_price=stop, reduce_only=reduce_only, post_only=post_only, time_ms=now, update_ms=now,
                      taker_pending=marketable)
        if reduce_only:
            pos = acct.ledger.position(sym).qty
            if pos == 0 or (pos > 0) == (side > 0):
                raise E.err(E.FUT_REDUCE_ONLY)
        ref = price if price is not None else (stop if stop is not None else last)
        if spot:
            self._reserve_spot(acct, order, ref)
        else:
            self._reserve_margin(acct, order, ref)
        self._next_order_id += 1
        acct.orders[order.order_id] = order
        acct.open_orders[order.order_id] = order
        acct.open_margin += order.im_per_unit * order.remaining
        acct.by_client_id.setdefault(order.client_id, []).append(order)
        self._emit(acct, order, "NEW", None, now)
        if exec_kind == "limit" and trigger is None and tif in ("IOC", "FOK") and not marketable:
            self._finish(acct, order, "EXPIRED", now)  # nothing to take now: expires at once
        else:
            self._open[sym].append(order)
        return order

    def _check_filters(self, sc: SymbolConfig, exec_kind: str, qty: Decimal, price: Decimal | None,
                       stop: Decimal | None, reduce_only: bool) -> None:
        spot = self.market == Market.SPOT
        inst = sc.instrument
        for p in (price, stop):
            if p is None:
                continue
            if p <= 0 or p < Decimal(repr(sc.min_price)) or p > Decimal(repr(sc.max_price)):
                raise E.filter_failure("PRICE_FILTER")
            if not _on_grid(p, inst.tick_size):
                raise E.filter_failure("PRICE_FILTER") if spot else E.err(E.FUT_TICK)
        if qty <= 0:
            raise E.filter_failure("LOT_SIZE") if spot else E.err(E.FUT_QTY_LE_ZERO)
        if not _on_grid(qty, inst.step_size):
            raise E.filter_failure("LOT_SIZE") if spot else E.err(E.FUT_PRECISION)
        if qty < Decimal(repr(inst.min_qty)):
            raise E.filter_failure("LOT_SIZE")
        if qty > Decimal(repr(sc.max_qty)):
            raise E.filter_failure("LOT_SIZE") if spot else E.err(E.FUT_QTY_MAX)
        if exec_kind == "market" and qty > Decimal(repr(sc.max_market_qty)):
            raise E.filter_failure("MARKET_LOT_SIZE")
        ref = price if price is not None else stop
        if ref is None:
            last = self.last_price(inst.symbol)
            ref = Decimal(repr(last)) if last is not None else None
        if ref is not None and not reduce_only and qty * ref < Decimal(repr(inst.min_notional)):
            if spot:
                raise E.filter_failure("NOTIONAL")
            raise ApiError(-4164, f"Order's notional must be no smaller than {inst.min_notional:g} "
                                  "(unless you choose reduce only).")

    def _reserve_spot(self, acct: Account, order: Order, ref: float | None) -> None:
        base, quote = split_symbol(order.symbol)
        if order.side == 1:
            if ref is None:
                raise E.err(E.SPOT_INSUFFICIENT)  # no price yet to value a market buy
            per_unit = ref if order.price is not None else ref * (1.0 + self.cfg.market_buy_reserve)
            asset, amount = quote, order.qty * per_unit
        else:
            per_unit, asset, amount = 1.0, base, order.qty
        bal = acct.balances[asset]
        if bal[0] + 1e-12 < amount:
            raise E.err(E.SPOT_INSUFFICIENT)
        bal[0] -= amount
        bal[1] += amount
        order.lock_asset, order.lock_per_unit = asset, per_unit

    def _open_order_margin(self, acct: Account) -> float:
        return max(acct.open_margin, 0.0)

    def _reserve_margin(self, acct: Account, order: Order, ref: float | None) -> None:
        if order.reduce_only:
            return
        led = acct.ledger
        pos = led.position(order.symbol).qty
        increasing = order.qty if pos == 0 or (pos > 0) == (order.side > 0) else max(0.0, order.qty - abs(pos))
        if increasing <= 0:
            return
        if ref is None:
            raise E.err(E.FUT_MARGIN)
        lev = float(led.pos[led.index(order.symbol), S_LEVERAGE])
        need = increasing * ref / lev
        if need > self.available_balance(acct) + 1e-9:
            raise E.err(E.FUT_MARGIN)
        order.im_per_unit = need / order.qty

    # -- usdm account numbers -----------------------------------------------------------------

    def mark_all(self, acct: Account) -> None:
        for sym in self.symbols:
            p = self.last_price(sym)
            if p is not None:
                acct.ledger.mark(sym, p)

    def position_margin(self, acct: Account, sym: str) -> float:
        led = acct.ledger
        s = led.index(sym)
        pos = led.position(sym)
        mark = self.last_price(sym) or pos.avg_price
        return abs(pos.qty) * mark / float(led.pos[s, S_LEVERAGE])

    def available_balance(self, acct: Account) -> float:
        self.mark_all(acct)
        led = acct.ledger
        upnl = sum(led.position(s).unrealized_pnl for s in self.symbols if led.position(s).qty != 0)
        im = sum(self.position_margin(acct, s) for s in self.symbols)
        return led.wallet + upnl - im - self._open_order_margin(acct)

    def set_leverage(self, acct: Account, sym: str, leverage: int) -> None:
        inst = self.symbols[sym].instrument
        if not 1 <= leverage <= inst.max_leverage:
            raise ApiError(-4028, f"Leverage {leverage} is not valid")
        acct.ledger.pos[acct.ledger.index(sym), S_LEVERAGE] = float(leverage)

    # -- queries and cancel -------------------------------------------------------------------

    def find(self, acct: Account, sym: str, params: dict[str, str], on_missing: tuple[int, str]) -> Order:
        oid = params.get("orderId")
        cid = params.get("origClientOrderId")
        if oid is None and cid is None:
            raise ApiError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        if oid is not None:
            try:
                o = acct.orders.get(int(oid))
            except ValueError:
                raise E.illegal("orderId") from None
            if o is None or o.symbol != sym or (cid is not None and o.client_id != cid):
                raise E.err(on_missing)
            return o
        matches = [o for o in acct.by_client_id.get(cid, ()) if o.symbol == sym]
        if not matches:
            raise E.err(on_missing)
        open_ = [o for o in matches if o.is_open]
        return (open_ or matches)[-1]

    def cancel(self, acct: Account, order: Order, cancel_client_id: str | None = None) -> Order:
        """Cancel an open order; `cancel_client_id` (spot: the cancel request's newClientOrderId) is
        what the spot executionReport of the cancel carries as `c`."""
        if not order.is_open:
            raise E.err(E.UNKNOWN_ORDER)
        order.cancel_client_id = cancel_client_id
        self._finish(acct, order, "CANCELED", self.now_ms())
        return order

    # -- matching -----------------------------------------------------------------------------

    @staticmethod
    def _triggers(side: int, kind: str, stop: float, p: float) -> bool:
        d = side * (p - stop)
        return d >= 0 if kind == "stop" else d <= 0

    def _on_trade(self, sym: str, p: float, q: float, ts_ms: int) -> None:
        inst = self.inst_rows[sym]
        prm = self.fill_params
        for o in list(self._open[sym]):
            if not o.is_open:
                continue
            acct = self.accounts[o.account]
            if o.trigger is not None and not o.triggered:
                if not self._triggers(o.side, o.trigger, o.stop_price, p):
                    continue
                o.triggered = True
                o.update_ms = ts_ms
                self._emit(acct, o, "TRIGGERED", None, ts_ms)
                if o.exec_kind == "market":
                    if o.trigger == "stop":
                        _, fp = stop_fill_nb(prm, o.side, o.stop_price, o.remaining, p, p, p, 0.0)
                    else:
                        fp = market_fill_price_nb(prm, o.side, o.remaining, p, 0.0)
                    self._fill(acct, o, o.remaining, self._round_price(sym, float(fp)), False, ts_ms)
                else:
                    o.taker_pending = int(limit_place_check_nb(o.side, o.price, p)) == PLACE_WOULD_CROSS
                continue
            if o.exec_kind == "market":
                fq = float(fillable_qty_nb(prm, inst, o.remaining, q))
                if fq > 0:
                    fp = float(market_fill_price_nb(prm, o.side, fq, p, 0.0))
                    self._fill(acct, o, fq, self._round_price(sym, fp), False, ts_ms)
                continue
            if o.taker_pending:
                o.taker_pending = False
                fq = float(fillable_qty_nb(prm, inst, o.remaining, q))
                fp = self._round_price(sym, float(market_fill_price_nb(prm, o.side, max(fq, 1e-12), p, 0.0)))
                within = fp <= o.price if o.side == 1 else fp >= o.price
                if o.tif == "FOK" and fq + 1e-12 < o.remaining:
                    within = False
                if fq > 0 and within:
                    self._fill(acct, o, fq, fp, False, ts_ms)
                if o.is_open and o.tif in ("IOC", "FOK"):
                    self._finish(acct, o, "EXPIRED", ts_ms)
                continue
            filled, o.through = limit_fill_nb(prm, o.side, o.price, p, p, np.int64(o.through))
            if filled:
                fq = float(fillable_qty_nb(prm, inst, o.remaining, q))
                if fq > 0:
                    self._fill(acct, o, fq, o.price, True, ts_ms)
        self._open[sym] = [o for o in self._open[sym] if o.is_open]

    def _round_price(self, sym: str, price: float) -> float:
        # Fill prices keep the kernel's value; rounding to 1e-8 only removes binary noise for display.
        return round(price, 8)

    def _fill(self, acct: Account, o: Order, qty: float, price: float, is_maker: bool, ts_ms: int) -> None:
        inst = self.symbols[o.symbol].instrument
        dec = _decimals(inst.step_size)
        if o.reduce_only:
            pos = acct.ledger.position(o.symbol).qty
            if pos == 0 or (pos > 0) == (o.side > 0):
                self._finish(acct, o, "EXPIRED", ts_ms)
                return
            qty = min(qty, abs(pos))
        qty = round(qty, dec)
        notional = qty * price
        base, quote = split_symbol(o.symbol)
        realized = 0.0
        if self.market == Market.SPOT:
            lock = acct.balances[o.lock_asset]
            release = o.lock_per_unit * qty
            if o.side == 1:
                commission, c_asset = float(fee_nb(qty, is_maker, self.fee_params)), base
                if notional > lock[0] + release + 1e-9:  # a market buy beyond its reserve: Binance expires it
                    self._finish(acct, o, "EXPIRED", ts_ms)
                    return
                lock[1] -= release
                lock[0] += release - notional
                acct.balances[base][0] += qty - commission
            else:
                commission, c_asset = float(fee_nb(notional, is_maker, self.fee_params)), quote
                lock[1] -= release
                acct.balances[quote][0] += notional - commission
        else:
            commission, c_asset = float(fee_nb(notional, is_maker, self.fee_params)), quote
            realized = acct.ledger.apply_fill(o.symbol, ts_ms * NS_PER_MS, o.side, qty, price, commission,
                                              is_maker, int(Reason.NONE), order_id=o.order_id)
        f = Fill(self._next_trade_id, o.order_id, o.symbol, o.side, price, qty, commission, c_asset, ts_ms,
                 is_maker, realized)
        self._next_trade_id += 1
        o.fills.append(f)
        acct.fills.append(f)
        rem0 = o.remaining
        o.executed = round(o.executed + qty, dec)
        if o.order_id in acct.open_orders:
            acct.open_margin -= o.im_per_unit * (rem0 - o.remaining)
        o.cum_quote += notional
        o.update_ms = ts_ms
        acct.update_ms = ts_ms
        done = o.executed >= o.qty - 1e-12
        if done:
            self._finish(acct, o, "FILLED", ts_ms)
        else:
            o.status = "PARTIALLY_FILLED"
        self._emit(acct, o, "TRADE", f, ts_ms)
        if not done and o.reduce_only and acct.ledger.position(o.symbol).qty == 0:
            self._finish(acct, o, "EXPIRED", ts_ms)

    def _finish(self, acct: Account, o: Order, status: str, ts_ms: int) -> None:
        """Final state: release what the order still holds (spot lock / usdm open-order margin)."""
        if self.market == Market.SPOT and o.lock_asset is not None:
            bal = acct.balances[o.lock_asset]
            left = o.lock_per_unit * o.remaining
            bal[1] -= left
            bal[0] += left
            if abs(bal[1]) < 1e-9:
                bal[1] = 0.0
        if acct.open_orders.pop(o.order_id, None) is not None:
            acct.open_margin -= o.im_per_unit * o.remaining
            if not acct.open_orders:
                acct.open_margin = 0.0  # nothing open: no rounding residue survives
        o.status = status
        o.update_ms = ts_ms
        acct.update_ms = ts_ms
        if status != "FILLED":  # a fill's own TRADE event carries FILLED
            self._emit(acct, o, status, None, ts_ms)

    def _emit(self, acct: Account, o: Order, kind: str, fill: Fill | None, ts_ms: int) -> None:
        if self.listener is not None:
            self.listener(acct, o, kind, fill, ts_ms)
