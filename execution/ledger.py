"""Ledger of a linear USDT-margined account: positions, wallet, fills and closed-trades journals.

Spot is the special case leverage 1, no shorting, no funding (`S_IS_PERP` = 0).

State (all preallocated, mutated in place by the `_nb` kernels):
- `pos`: float64 (n_symbols, N_POS), one row per symbol, slots `S_*`;
- `pos_ts`: int64 (n_symbols, N_POS_TS), timestamps (ns UTC do not fit float64 exactly), slots `TS_*`;
- `acc`: float64 (N_ACC,), account slots `ACC_*` (journal counters included);
- fills journal: `fills` float64 (capacity, N_FILL) slots `FL_*` + `fill_ts` int64 (capacity,);
- closed-trades journal: `trades` float64 (capacity, N_TRADE) slots `TR_*` + `trade_ts` int64 (capacity, 2);
- equity curve: `eq` float64 (n_bars, N_EQ) slots `EQ_*` + `eq_ts` int64 (n_bars,).

Accounting identity kept by every kernel (checked by property tests):
    wallet = initial + Σ realized − Σ fees − Σ funding;  equity = wallet + Σ unrealized.
Quantities are contracts (contract_size base units each); PnL = qty · contract_size · Δprice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from numba import njit

from core.enums import Market, Reason
from core.errors import ConfigError, RejectedError
from core.instrument import Instrument

# --- position row (float64) ------------------------------------------------------------------
S_QTY = 0  # signed contracts (+ long, − short)
S_AVG_PRICE = 1  # average entry price of the open position (0 when flat)
S_REALIZED = 2  # cumulative realized PnL of this symbol (quote)
S_FEES = 3  # cumulative fees of this symbol (quote, + paid)
S_FUNDING = 4  # cumulative funding of this symbol (quote, + paid)
S_MARK = 5  # last mark price (NaN until first marked)
S_UPNL = 6  # unrealized PnL at S_MARK
S_CONTRACT_SIZE = 7
S_LEVERAGE = 8
S_IS_PERP = 9  # 1 perpetual, 0 spot
S_ISO_MARGIN = 10  # isolated margin of the open position (quote); used in isolated mode
S_TRIP_SIDE = 11  # round trip in progress: side, accumulators written to the trades journal
S_TRIP_ENTRY_QTY = 12
S_TRIP_ENTRY_NOTIONAL = 13  # Σ qty·price of entry fills (price units × contracts)
S_TRIP_EXIT_QTY = 14
S_TRIP_EXIT_NOTIONAL = 15
S_TRIP_GROSS = 16
S_TRIP_FEES = 17
S_TRIP_FUNDING = 18
S_TRIP_ENTRY_REASON = 19
S_TRIP_ENTRY_BAR = 20
S_TRIP_SIGNAL_ID = 21
N_POS = 22

# --- position timestamps (int64) -------------------------------------------------------------
TS_ENTRY = 0  # ts of the fill that opened the current position (0 when flat)
TS_LAST_FILL = 1
N_POS_TS = 2

# --- account (float64) -----------------------------------------------------------------------
ACC_INITIAL = 0
ACC_WALLET = 1  # initial + realized − fees − funding (spot: cash + cost basis of holdings)
ACC_REALIZED = 2
ACC_FEES = 3
ACC_FUNDING = 4
ACC_N_FILLS = 5  # fills applied (rows written = min(this, capacity))
ACC_N_TRADES = 6
ACC_FILLS_DROPPED = 7  # fills applied but not journaled because the journal was full
ACC_TRADES_DROPPED = 8
N_ACC = 9

# --- fills journal (float64 columns; ts in fill_ts) ------------------------------------------
FL_SYMBOL = 0
FL_SIDE = 1
FL_QTY = 2
FL_PRICE = 3
FL_FEE = 4
FL_IS_MAKER = 5
FL_REASON = 6
FL_SIGNAL_ID = 7  # ids are integers; exact in float64 below 2**53
FL_ORDER_ID = 8
FL_REALIZED = 9
FL_POSITION_AFTER = 10
FL_BAR = 11
N_FILL = 12

# --- closed-trades journal (float64 columns; entry/exit ts in trade_ts[:, 0/1]) --------------
TR_SYMBOL = 0
TR_SIDE = 1
TR_QTY = 2  # total contracts entered (= total exited) over the round trip
TR_ENTRY_PRICE = 3  # qty-weighted average of entry fills
TR_EXIT_PRICE = 4  # qty-weighted average of exit fills
TR_GROSS_PNL = 5
TR_FEES = 6
TR_FUNDING = 7
TR_NET_PNL = 8  # gross − fees − funding
TR_ENTRY_REASON = 9
TR_EXIT_REASON = 10
TR_BARS_HELD = 11
TR_SIGNAL_ID = 12
N_TRADE = 13
TRADE_TS_ENTRY = 0
TRADE_TS_EXIT = 1

# --- equity curve ----------------------------------------------------------------------------
EQ_EQUITY = 0
EQ_WALLET = 1
EQ_UPNL = 2
EQ_REALIZED = 3
EQ_FEES = 4
EQ_FUNDING = 5
EQ_GROSS_EXPOSURE = 6  # Σ |qty|·cs·mark
EQ_NET_EXPOSURE = 7  # Σ qty·cs·mark
N_EQ = 8

# A remainder below this fraction of the larger of (position, fill) is float dust of step-grid
# quantities (0.1 + 0.2 − 0.3), not a position.
DUST_REL = 1e-9


def new_position_state(instruments: Sequence[Instrument], leverage: Sequence[float] | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(pos, pos_ts) for the symbols in order; `leverage` per symbol (default 1)."""
    n = len(instruments)
    if n == 0:
        raise RejectedError("a ledger needs at least one instrument")
    lev = [1.0] * n if leverage is None else [float(x) for x in leverage]
    if len(lev) != n:
        raise RejectedError(f"leverage has {len(lev)} values for {n} instruments")
    pos = np.zeros((n, N_POS), dtype=np.float64)
    for i, (inst, lv) in enumerate(zip(instruments, lev)):
        if not math.isfinite(lv) or lv < 1 or lv > inst.max_leverage:
            raise ConfigError(f"leverage for {inst.symbol} = {lv!r}: must be within 1..{inst.max_leverage} "
                              f"(the instrument's max_leverage)")
        pos[i, S_CONTRACT_SIZE] = inst.contract_size
        pos[i, S_LEVERAGE] = lv
        pos[i, S_IS_PERP] = 0.0 if inst.market == Market.SPOT else 1.0
        pos[i, S_MARK] = np.nan
    return pos, np.zeros((n, N_POS_TS), dtype=np.int64)


def new_account_state(initial_wallet: float) -> np.ndarray:
    """Account vector with the wallet at `initial_wallet` (quote currency, > 0)."""
    w = float(initial_wallet)
    if not math.isfinite(w) or w <= 0:
        raise RejectedError(f"initial_wallet must be a finite amount > 0, got {initial_wallet!r}")
    acc = np.zeros(N_ACC, dtype=np.float64)
    acc[ACC_INITIAL] = w
    acc[ACC_WALLET] = w
    return acc


def new_fills_journal(capacity: int) -> tuple[np.ndarray, np.ndarray]:
    if capacity < 1:
        raise RejectedError(f"fills journal capacity must be >= 1, got {capacity}")
    return np.zeros((capacity, N_FILL), dtype=np.float64), np.zeros(capacity, dtype=np.int64)


def new_trades_journal(capacity: int) -> tuple[np.ndarray, np.ndarray]:
    if capacity < 1:
        raise RejectedError(f"trades journal capacity must be >= 1, got {capacity}")
    return np.zeros((capacity, N_TRADE), dtype=np.float64), np.zeros((capacity, 2), dtype=np.int64)


def new_equity_curve(n_bars: int) -> tuple[np.ndarray, np.ndarray]:
    if n_bars < 1:
        raise RejectedError(f"equity curve length must be >= 1, got {n_bars}")
    return np.full((n_bars, N_EQ), np.nan), np.zeros(n_bars, dtype=np.int64)


@njit(cache=True)
def _start_trip_nb(pos, pos_ts, sym, ts, bar, side, qty, price, fee, reason, signal_id):
    pos[sym, S_TRIP_SIDE] = side
    pos[sym, S_TRIP_ENTRY_QTY] = qty
    pos[sym, S_TRIP_ENTRY_NOTIONAL] = qty * price
    pos[sym, S_TRIP_EXIT_QTY] = 0.0
    pos[sym, S_TRIP_EXIT_NOTIONAL] = 0.0
    pos[sym, S_TRIP_GROSS] = 0.0
    pos[sym, S_TRIP_FEES] = fee
    pos[sym, S_TRIP_FUNDING] = 0.0
    pos[sym, S_TRIP_ENTRY_REASON] = reason
    pos[sym, S_TRIP_ENTRY_BAR] = bar
    pos[sym, S_TRIP_SIGNAL_ID] = signal_id
    pos_ts[sym, TS_ENTRY] = ts


@njit(cache=True)
def _close_trip_nb(pos, pos_ts, acc, trades, trade_ts, sym, ts, bar, reason):
    k = np.int64(acc[ACC_N_TRADES])
    acc[ACC_N_TRADES] += 1.0
    if k >= trades.shape[0]:
        acc[ACC_TRADES_DROPPED] += 1.0
        return
    eq = pos[sym, S_TRIP_ENTRY_QTY]
    xq = pos[sym, S_TRIP_EXIT_QTY]
    gross = pos[sym, S_TRIP_GROSS]
    fees = pos[sym, S_TRIP_FEES]
    funding = pos[sym, S_TRIP_FUNDING]
    trades[k, TR_SYMBOL] = sym
    trades[k, TR_SIDE] = pos[sym, S_TRIP_SIDE]
    trades[k, TR_QTY] = eq
    trades[k, TR_ENTRY_PRICE] = pos[sym, S_TRIP_ENTRY_NOTIONAL] / eq if eq > 0.0 else np.nan
    trades[k, TR_EXIT_PRICE] = pos[sym, S_TRIP_EXIT_NOTIONAL] / xq if xq > 0.0 else np.nan
    trades[k, TR_GROSS_PNL] = gross
    trades[k, TR_FEES] = fees
    trades[k, TR_FUNDING] = funding
    trades[k, TR_NET_PNL] = gross - fees - funding
    trades[k, TR_ENTRY_REASON] = pos[sym, S_TRIP_ENTRY_REASON]
    trades[k, TR_EXIT_REASON] = reason
    trades[k, TR_BARS_HELD] = bar - pos[sym, S_TRIP_ENTRY_BAR]
    trades[k, TR_SIGNAL_ID] = pos[sym, S_TRIP_SIGNAL_ID]
    trade_ts[k, TRADE_TS_ENTRY] = pos_ts[sym, TS_ENTRY]
    trade_ts[k, TRADE_TS_EXIT] = ts


@njit(cache=True)
def fill_allowed_nb(pos, sym, side, qty):
    """False when the fill would leave a spot symbol short (spot cannot short). Perps: always True."""
    if pos[sym, S_IS_PERP] != 0.0:
        return True
    after = pos[sym, S_QTY] + side * qty
    return after >= -DUST_REL * max(abs(pos[sym, S_QTY]), qty)


@njit(cache=True)
def apply_fill_nb(pos, pos_ts, acc, fills, fill_ts, trades, trade_ts,
                  sym, ts, bar, side, qty, price, fee, is_maker, reason, signal_id, order_id):
    """Apply one fill: open, add, reduce, close or flip; returns the fill's realized PnL (quote).

    Arguments: `sym` symbol index; `ts` fill time (int64 ns); `bar` bar index (for bars held);
    `side` ±1; `qty` contracts (> 0); `price` fill price; `fee` quote (charged to the wallet, may be
    negative for a rebate); `is_maker` bool; `reason` a `core.enums.Reason` int; `signal_id`,
    `order_id` integers carried into the journal.

    A flip closes the position at `price` (one closed-trade row) and opens the remainder at the same
    price; the fee is split pro rata between the closing and the opening part. Isolated margin:
    entries add qty·cs·price/leverage, reductions release it pro rata, a close releases the rest.
    Preconditions (checked by the Python layer, not here): qty > 0, price > 0, finite numbers,
    `fill_allowed_nb` for spot symbols.
    """
    cs = pos[sym, S_CONTRACT_SIZE]
    q0 = pos[sym, S_QTY]
    realized = 0.0
    acc[ACC_WALLET] -= fee
    acc[ACC_FEES] += fee
    pos[sym, S_FEES] += fee
    if q0 == 0.0:
        pos[sym, S_QTY] = side * qty
        pos[sym, S_AVG_PRICE] = price
        pos[sym, S_ISO_MARGIN] = qty * cs * price / pos[sym, S_LEVERAGE]
        _start_trip_nb(pos, pos_ts, sym, ts, bar, side, qty, price, fee, reason, signal_id)
    elif (q0 > 0.0) == (side > 0):
        a0 = abs(q0)
        new_abs = a0 + qty
        pos[sym, S_AVG_PRICE] = (a0 * pos[sym, S_AVG_PRICE] + qty * price) / new_abs
        pos[sym, S_QTY] = side * new_abs
        pos[sym, S_ISO_MARGIN] += qty * cs * price / pos[sym, S_LEVERAGE]
        pos[sym, S_TRIP_ENTRY_QTY] += qty
        pos[sym, S_TRIP_ENTRY_NOTIONAL] += qty * price
        pos[sym, S_TRIP_FEES] += fee
    else:
        a0 = abs(q0)
        pside = 1.0 if q0 > 0.0 else -1.0
        closes_all = qty >= a0 - DUST_REL * max(a0, qty)
        close_qty = a0 if closes_all else qty
        open_qty = qty - close_qty
        if open_qty <= DUST_REL * max(a0, qty):
            open_qty = 0.0
        fee_close = fee * (close_qty / qty) if open_qty > 0.0 else fee
        realized = pside * close_qty * cs * (price - pos[sym, S_AVG_PRICE])
        pos[sym, S_TRIP_EXIT_QTY] += close_qty
        pos[sym, S_TRIP_EXIT_NOTIONAL] += close_qty * price
        pos[sym, S_TRIP_GROSS] += realized
        pos[sym, S_TRIP_FEES] += fee_close
        if closes_all:
            pos[sym, S_QTY] = 0.0
            pos[sym, S_AVG_PRICE] = 0.0
            pos[sym, S_ISO_MARGIN] = 0.0
            pos[sym, S_UPNL] = 0.0
            _close_trip_nb(pos, pos_ts, acc, trades, trade_ts, sym, ts, bar, reason)
            pos_ts[sym, TS_ENTRY] = 0
            pos[sym, S_TRIP_SIDE] = 0.0
            if open_qty > 0.0:
                pos[sym, S_QTY] = side * open_qty
                pos[sym, S_AVG_PRICE] = price
                pos[sym, S_ISO_MARGIN] = open_qty * cs * price / pos[sym, S_LEVERAGE]
                _start_trip_nb(pos, pos_ts, sym, ts, bar, side, open_qty, price, fee - fee_close,
                               reason, signal_id)
        else:
            pos[sym, S_ISO_MARGIN] -= pos[sym, S_ISO_MARGIN] * (close_qty / a0)
            pos[sym, S_QTY] = pside * (a0 - close_qty)
    acc[ACC_WALLET] += realized
    acc[ACC_REALIZED] += realized
    pos[sym, S_REALIZED] += realized
    pos_ts[sym, TS_LAST_FILL] = ts
    if pos[sym, S_QTY] != 0.0 and not math.isnan(pos[sym, S_MARK]):
        pos[sym, S_UPNL] = pos[sym, S_QTY] * cs * (pos[sym, S_MARK] - pos[sym, S_AVG_PRICE])
    k = np.int64(acc[ACC_N_FILLS])
    acc[ACC_N_FILLS] += 1.0
    if k < fills.shape[0]:
        fills[k, FL_SYMBOL] = sym
        fills[k, FL_SIDE] = side
        fills[k, FL_QTY] = qty
        fills[k, FL_PRICE] = price
        fills[k, FL_FEE] = fee
        fills[k, FL_IS_MAKER] = 1.0 if is_maker else 0.0
        fills[k, FL_REASON] = reason
        fills[k, FL_SIGNAL_ID] = signal_id
        fills[k, FL_ORDER_ID] = order_id
        fills[k, FL_REALIZED] = realized
        fills[k, FL_POSITION_AFTER] = pos[sym, S_QTY]
        fills[k, FL_BAR] = bar
        fill_ts[k] = ts
    else:
        acc[ACC_FILLS_DROPPED] += 1.0
    return realized


@njit(cache=True)
def book_funding_nb(pos, acc, sym, payment):
    """Book a funding payment (quote, + paid by us, − received) to the wallet, the symbol, the round
    trip in progress and, in isolated mode, the position's isolated margin."""
    acc[ACC_WALLET] -= payment
    acc[ACC_FUNDING] += payment
    pos[sym, S_FUNDING] += payment
    pos[sym, S_TRIP_FUNDING] += payment
    pos[sym, S_ISO_MARGIN] -= payment


@njit(cache=True)
def equity_nb(pos, acc):
    """wallet + Σ unrealized PnL at each symbol's last mark."""
    e = acc[ACC_WALLET]
    for i in range(pos.shape[0]):
        e += pos[i, S_UPNL]
    return e


@njit(cache=True)
def mark_nb(pos, acc, sym, price):
    """Mark `sym` at `price`; returns (unrealized PnL of sym, account equity)."""
    pos[sym, S_MARK] = price
    q = pos[sym, S_QTY]
    u = q * pos[sym, S_CONTRACT_SIZE] * (price - pos[sym, S_AVG_PRICE]) if q != 0.0 else 0.0
    pos[sym, S_UPNL] = u
    return u, equity_nb(pos, acc)


@njit(cache=True)
def mark_all_nb(pos, acc, prices):
    """Mark every symbol at prices[sym] (NaN = leave that symbol's mark); returns equity."""
    for i in range(pos.shape[0]):
        if not math.isnan(prices[i]):
            mark_nb(pos, acc, i, prices[i])
    return equity_nb(pos, acc)


@njit(cache=True)
def record_equity_nb(pos, acc, eq, eq_ts, i, ts):
    """Write row i of the equity curve (call once per bar after marking). False if i is out of range."""
    if i < 0 or i >= eq.shape[0]:
        return False
    upnl = 0.0
    gross = 0.0
    net = 0.0
    for s in range(pos.shape[0]):
        q = pos[s, S_QTY]
        upnl += pos[s, S_UPNL]
        if q != 0.0:
            n = q * pos[s, S_CONTRACT_SIZE] * pos[s, S_MARK]
            net += n
            gross += abs(n)
    eq[i, EQ_WALLET] = acc[ACC_WALLET]
    eq[i, EQ_UPNL] = upnl
    eq[i, EQ_EQUITY] = acc[ACC_WALLET] + upnl
    eq[i, EQ_REALIZED] = acc[ACC_REALIZED]
    eq[i, EQ_FEES] = acc[ACC_FEES]
    eq[i, EQ_FUNDING] = acc[ACC_FUNDING]
    eq[i, EQ_GROSS_EXPOSURE] = gross
    eq[i, EQ_NET_EXPOSURE] = net
    eq_ts[i] = ts
    return True


# --- polars views ----------------------------------------------------------------------------
def _reason_names(codes: np.ndarray) -> list[str]:
    names = {int(r): r.name for r in Reason}
    return [names.get(int(c), f"UNKNOWN_{int(c)}") for c in codes]


def _symbol_names(idx: np.ndarray, symbols: Sequence[str] | None) -> pl.Series | None:
    if symbols is None:
        return None
    return pl.Series("symbol", [symbols[int(i)] for i in idx], dtype=pl.Utf8)


def fills_frame(fills: np.ndarray, fill_ts: np.ndarray, acc: np.ndarray,
                symbols: Sequence[str] | None = None) -> pl.DataFrame:
    """The journaled fills as a polars frame. Raises `RejectedError` if fills were dropped (journal full)."""
    if acc[ACC_FILLS_DROPPED] > 0:
        raise RejectedError(f"fills journal overflow: {int(acc[ACC_FILLS_DROPPED])} fills were applied but not "
                            f"journaled (capacity {fills.shape[0]}); allocate a larger journal")
    n = int(acc[ACC_N_FILLS])
    f = fills[:n]
    cols = [
        pl.Series("ts", fill_ts[:n].copy(), dtype=pl.Int64),
        pl.Series("symbol_index", f[:, FL_SYMBOL].astype(np.int32)),
    ]
    names = _symbol_names(f[:, FL_SYMBOL], symbols)
    if names is not None:
        cols.append(names)
    cols += [
        pl.Series("side", f[:, FL_SIDE].astype(np.int8)),
        pl.Series("qty", f[:, FL_QTY].copy()),
        pl.Series("price", f[:, FL_PRICE].copy()),
        pl.Series("fee", f[:, FL_FEE].copy()),
        pl.Series("is_maker", f[:, FL_IS_MAKER] != 0.0),
        pl.Series("reason", f[:, FL_REASON].astype(np.int16)),
        pl.Series("reason_name", _reason_names(f[:, FL_REASON]), dtype=pl.Utf8),
        pl.Series("signal_id", f[:, FL_SIGNAL_ID].astype(np.int64)),
        pl.Series("order_id", f[:, FL_ORDER_ID].astype(np.int64)),
        pl.Series("realized_pnl", f[:, FL_REALIZED].copy()),
        pl.Series("position_after", f[:, FL_POSITION_AFTER].copy()),
        pl.Series("bar", f[:, FL_BAR].astype(np.int64)),
    ]
    return pl.DataFrame(cols)


def trades_frame(trades: np.ndarray, trade_ts: np.ndarray, acc: np.ndarray,
                 symbols: Sequence[str] | None = None) -> pl.DataFrame:
    """The closed round trips as a polars frame. Raises `RejectedError` if rows were dropped."""
    if acc[ACC_TRADES_DROPPED] > 0:
        raise RejectedError(f"trades journal overflow: {int(acc[ACC_TRADES_DROPPED])} round trips not journaled "
                            f"(capacity {trades.shape[0]}); allocate a larger journal")
    n = int(acc[ACC_N_TRADES])
    t = trades[:n]
    cols = [pl.Series("symbol_index", t[:, TR_SYMBOL].astype(np.int32))]
    names = _symbol_names(t[:, TR_SYMBOL], symbols)
    if names is not None:
        cols.append(names)
    cols += [
        pl.Series("side", t[:, TR_SIDE].astype(np.int8)),
        pl.Series("entry_ts", trade_ts[:n, TRADE_TS_ENTRY].copy(), dtype=pl.Int64),
        pl.Series("entry_price", t[:, TR_ENTRY_PRICE].copy()),
        pl.Series("exit_ts", trade_ts[:n, TRADE_TS_EXIT].copy(), dtype=pl.Int64),
        pl.Series("exit_price", t[:, TR_EXIT_PRICE].copy()),
        pl.Series("qty", t[:, TR_QTY].copy()),
        pl.Series("gross_pnl", t[:, TR_GROSS_PNL].copy()),
        pl.Series("fees", t[:, TR_FEES].copy()),
        pl.Series("funding", t[:, TR_FUNDING].copy()),
        pl.Series("net_pnl", t[:, TR_NET_PNL].copy()),
        pl.Series("entry_reason", t[:, TR_ENTRY_REASON].astype(np.int16)),
        pl.Series("entry_reason_name", _reason_names(t[:, TR_ENTRY_REASON]), dtype=pl.Utf8),
        pl.Series("exit_reason", t[:, TR_EXIT_REASON].astype(np.int16)),
        pl.Series("exit_reason_name", _reason_names(t[:, TR_EXIT_REASON]), dtype=pl.Utf8),
        pl.Series("bars_held", t[:, TR_BARS_HELD].astype(np.int64)),
        pl.Series("signal_id", t[:, TR_SIGNAL_ID].astype(np.int64)),
    ]
    return pl.DataFrame(cols)


def equity_frame(eq: np.ndarray, eq_ts: np.ndarray, n: int | None = None) -> pl.DataFrame:
    """Equity curve rows [0, n) as a polars frame (n defaults to every row)."""
    n = eq.shape[0] if n is None else int(n)
    e = eq[:n]
    return pl.DataFrame([
        pl.Series("ts", eq_ts[:n].copy(), dtype=pl.Int64),
        pl.Series("equity", e[:, EQ_EQUITY].copy()),
        pl.Series("wallet", e[:, EQ_WALLET].copy()),
        pl.Series("unrealized_pnl", e[:, EQ_UPNL].copy()),
        pl.Series("realized_pnl", e[:, EQ_REALIZED].copy()),
        pl.Series("fees", e[:, EQ_FEES].copy()),
        pl.Series("funding", e[:, EQ_FUNDING].copy()),
        pl.Series("gross_exposure", e[:, EQ_GROSS_EXPOSURE].copy()),
        pl.Series("net_exposure", e[:, EQ_NET_EXPOSURE].copy()),
    ])


# --- Python face -----------------------------------------------------------------------------
@dataclass(frozen=True)
class PositionView:
    """Read-only snapshot of one symbol's position."""

    symbol: str
    qty: float
    avg_price: float
    realized_pnl: float
    fees: float
    funding: float
    unrealized_pnl: float
    mark_price: float
    entry_ts: int
    isolated_margin: float
    leverage: float


_VALID_REASONS = frozenset(int(r) for r in Reason)


class Ledger:
    """Wraps the ledger state and calls the kernels; validates inputs and grows journals as needed.

    The backtest engine uses the arrays (`pos`, `pos_ts`, `acc`, journals) directly with the `_nb`
    functions; live and paper code use this class. Both run the same kernels.
    """

    def __init__(self, instruments: Sequence[Instrument], initial_wallet: float,
                 leverage: Sequence[float] | None = None, fills_capacity: int = 1024, trades_capacity: int = 256):
        self.instruments = list(instruments)
        self.symbols = [i.symbol for i in self.instruments]
        self.pos, self.pos_ts = new_position_state(self.instruments, leverage)
        self.acc = new_account_state(initial_wallet)
        self.fills, self.fill_ts = new_fills_journal(fills_capacity)
        self.trades, self.trade_ts = new_trades_journal(trades_capacity)

    def index(self, symbol: str) -> int:
        try:
            return self.symbols.index(symbol)
        except ValueError:
            raise RejectedError(f"unknown symbol {symbol!r}; ledger has {self.symbols}") from None

    def _sym(self, sym: int | str) -> int:
        if isinstance(sym, str):
            return self.index(sym)
        if not 0 <= int(sym) < len(self.symbols):
            raise RejectedError(f"symbol index {sym} outside 0..{len(self.symbols) - 1}")
        return int(sym)

    def _grow(self) -> None:
        if int(self.acc[ACC_N_FILLS]) >= self.fills.shape[0]:
            self.fills = np.concatenate([self.fills, np.zeros_like(self.fills)])
            self.fill_ts = np.concatenate([self.fill_ts, np.zeros_like(self.fill_ts)])
        if int(self.acc[ACC_N_TRADES]) + 2 > self.trades.shape[0]:  # a flip may close one trip
            self.trades = np.concatenate([self.trades, np.zeros_like(self.trades)])
            self.trade_ts = np.concatenate([self.trade_ts, np.zeros_like(self.trade_ts)])

    def apply_fill(self, sym: int | str, ts: int, side: int, qty: float, price: float, fee: float,
                   is_maker: bool, reason: int, signal_id: int = 0, order_id: int = 0, bar: int = 0) -> float:
        """Validate and apply one fill (see `apply_fill_nb`); returns its realized PnL."""
        s = self._sym(sym)
        if side not in (1, -1):
            raise RejectedError(f"side must be +1 or -1, got {side!r}")
        for name, v in (("qty", qty), ("price", price)):
            if not (isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(v) and v > 0):
                raise RejectedError(f"fill {name} must be a finite number > 0, got {v!r}")
        if not math.isfinite(fee):
            raise RejectedError(f"fill fee must be finite, got {fee!r}")
        if int(reason) not in _VALID_REASONS:
            raise RejectedError(f"reason {reason!r} is not a core.enums.Reason value")
        if not fill_allowed_nb(self.pos, s, side, float(qty)):
            raise RejectedError(f"{self.symbols[s]} is spot: selling {qty} from a position of "
                                f"{self.pos[s, S_QTY]} would go short")
        self._grow()
        return float(apply_fill_nb(self.pos, self.pos_ts, self.acc, self.fills, self.fill_ts, self.trades,
                                   self.trade_ts, s, np.int64(ts), np.int64(bar), float(side), float(qty),
                                   float(price), float(fee), bool(is_maker), float(int(reason)),
                                   float(signal_id), float(order_id)))

    def mark(self, sym: int | str, price: float) -> tuple[float, float]:
        """Mark a symbol; returns (its unrealized PnL, account equity)."""
        if not (math.isfinite(price) and price > 0):
            raise RejectedError(f"mark price must be a finite number > 0, got {price!r}")
        u, e = mark_nb(self.pos, self.acc, self._sym(sym), float(price))
        return float(u), float(e)

    @property
    def equity(self) -> float:
        return float(equity_nb(self.pos, self.acc))

    @property
    def wallet(self) -> float:
        return float(self.acc[ACC_WALLET])

    def position(self, sym: int | str) -> PositionView:
        s = self._sym(sym)
        p = self.pos[s]
        return PositionView(self.symbols[s], float(p[S_QTY]), float(p[S_AVG_PRICE]), float(p[S_REALIZED]),
                            float(p[S_FEES]), float(p[S_FUNDING]), float(p[S_UPNL]), float(p[S_MARK]),
                            int(self.pos_ts[s, TS_ENTRY]), float(p[S_ISO_MARGIN]), float(p[S_LEVERAGE]))

    def fills_frame(self) -> pl.DataFrame:
        return fills_frame(self.fills, self.fill_ts, self.acc, self.symbols)

    def trades_frame(self) -> pl.DataFrame:
        return trades_frame(self.trades, self.trade_ts, self.acc, self.symbols)


class EquityCurve:
    """Preallocated per-bar equity recorder around `record_equity_nb`."""

    def __init__(self, n_bars: int):
        self.eq, self.eq_ts = new_equity_curve(n_bars)
        self.n = 0

    def record(self, ledger: Ledger, ts: int) -> None:
        if not record_equity_nb(ledger.pos, ledger.acc, self.eq, self.eq_ts, self.n, np.int64(ts)):
            raise RejectedError(f"equity curve full ({self.eq.shape[0]} rows)")
        self.n += 1

    def frame(self) -> pl.DataFrame:
        return equity_frame(self.eq, self.eq_ts, self.n)
