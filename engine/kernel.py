"""The decision kernel: one bar step of position, stops, sizing, risk and (simulated) fills.

`step_nb` processes bar i in this fixed order (docs/engine.md explains each choice):

1. *Orders due* — a market order decided at an earlier close fills at this bar's open once
   decision ts + latency has passed, at most the participation cap of the bar's volume (the rest
   waits for the next bar).
2. *Protective stops and liquidation* — the stop level held before the bar (L1 or the trailing
   take-profit) is checked against the bar's range and filled at the level or the gapped open;
   then the liquidation price (the stop normally sits well inside it).
3. *Mark, funding, equity* — mark at the close, book funding stamps in (previous close, close],
   record the equity row.
4. *Risk at the close* — the account rules and the trading state see the new equity; L2 (order
   flow) and L3 (time) stops are evaluated on the closed bar.
5. *Decisions at the close* — exits (flatten, reduce, signal exits, L2/L3) or an entry sized by
   the risk layer; the resulting market order executes in step 1 of a later bar.

Nothing at bar i reads bar i+1: fills of a decision taken at bar i happen at bar ≥ i+1 prices.
The backtest loop (`run_nb`) calls `step_nb` for every bar; paper trading calls the same
function per closed bar; live trading calls `decide_nb` (steps 3-5) and lets the venue fill.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# The kernel functions allocate nothing, and with numba's runtime (NRT) on, every call between them
# increments and decrements the reference counts of ~55 arrays: 1.6 µs per bar, 10x the work
# itself. `_nrt=False` compiles them without it (numba pinned < 0.70 in pyproject; the engine
# tests and golden backtests exercise every function compiled this way).

from core.enums import Reason, TradingState
from execution.fees import fee_nb
from execution.fill_model import (I_CONTRACT_SIZE, I_IS_PERP, I_MIN_QTY, I_TICK, fillable_qty_nb, limit_fill_nb,
                                  market_eligible_nb, market_fill_price_nb, round_qty_down_nb, stop_fill_nb)
from execution.funding import funding_step_constant_nb, funding_step_series_nb
from execution.ledger import (ACC_N_TRADES, ACC_WALLET, N_EQ, S_QTY, TR_ENTRY_PRICE, TR_NET_PNL, TR_QTY,
                              apply_fill_nb, mark_nb, record_equity_nb)
from execution.margin import liquidation_check_nb, margin_ratio_nb
from risk.gate import on_bar_nb, on_entry_nb, on_trade_closed_nb, size_entry_nb
from risk.kelly import SIGNAL_A, SIGNAL_B, SIGNAL_CUSTOM
from risk.stops import stops_on_bar_nb, stops_on_entry_nb, stops_reset_nb

# ---- engine parameters (float64 vector) ---------------------------------------------------------
P_SIZING_MODE = 0  # 0 = risk layer sizing; 1 = fixed fraction of the wallet (research / benchmarks)
P_FRACTION = 1  # fraction of the wallet for sizing mode 1 (fee included: qty = f·wallet / (price·(1+fee)))
P_ROUND_QTY = 2  # 1 = round quantities down to the lot step and enforce min qty / notional; 0 = fractional
P_CAP_BY_VOLUME = 3  # 1 = market orders capped by participation of bar volume; 0 = fill whole at the open
P_RISK = 4  # 1 = account rules, trading state and Kelly on; 0 = off (sizing mode 1 only)
P_STOPS = 5  # 1 = L1/L2/L3 stops and the trailing take-profit on
P_ALLOW_SHORT = 6  # 0 on spot
P_REDUCE_FRACTION = 7  # share of the position closed per bar while REDUCING
P_EXIT_SOURCE_MATCH = 8  # 1 = a signal exit closes a position only if its source bits overlap the entry's
P_MIN_NOTIONAL = 9
P_FUNDING = 10  # 0 none, 1 constant rate, 2 rate series
P_TAKER_FEE = 11  # the account's taker rate (risk sizing and the fee hurdle need it)
P_ENTRY_LIMIT = 12  # 1 = entries are post-only limit orders, 0 = market orders
P_LIMIT_OFFSET_TICKS = 13  # buy limit at close − offset·tick, sell at close + offset·tick
P_LIMIT_TTL_BARS = 14  # bars a limit entry rests before it is cancelled
N_PARAMS = 15

# ---- engine state: float64 vector ---------------------------------------------------------------
E_PENDING = 0  # 1 while a market order waits to (finish) filling
E_SIDE = 1  # order side +1 buy / −1 sell
E_REMAINING = 2  # contracts left to fill
E_REASON = 3
E_SIGNAL = 4  # source bitmask carried by the order's fills
E_IS_ENTRY = 5
E_ATR = 6  # ATR at the decision (sets the stops at the first entry fill)
E_POS_SOURCE = 7  # source bits of the open position
E_KELLY_ID = 8  # Kelly statistics id of the open position
E_TRADES_SEEN = 9  # closed round trips already reported to the risk layer
E_LIMIT = 10  # 1 when the pending order is a resting limit (entries only)
E_LIMIT_PRICE = 11
E_BARS_THROUGH = 12  # bars that traded through the limit (queue model)
E_TTL = 13  # bars left before a resting limit is cancelled
N_ESTATE = 14
# ---- engine state: int64 vector -----------------------------------------------------------------
EI_DECISION_TS = 0
EI_ORDER_ID = 1  # last order id used
EI_FUND_CURSOR = 2
EI_PREV_TS = 3  # previous bar's ts_event (funding window start); −1 before the first bar
EI_N_DECISIONS = 4
N_EISTATE = 5

# decisions journal (float64 rows; timestamps in a parallel int64 array)
D_BAR = 0
D_SIDE = 1
D_QTY = 2
D_REASON = 3
D_SIGNAL = 4
D_IS_ENTRY = 5
N_DECISION = 6

_ACTIVE = int(TradingState.ACTIVE)
_REDUCING = int(TradingState.REDUCING)
_FLATTEN = int(TradingState.FLATTEN)
_NONE = int(Reason.NONE)
_CUSTOM = int(Reason.SIGNAL_CUSTOM)
_FLATTEN_REGIME = int(Reason.FLATTEN_REGIME)
_REDUCE = int(Reason.REDUCE_MARGIN)
_L1 = int(Reason.STOP_L1)
_TRAIL = int(Reason.TAKE_PROFIT_TRAIL)
_L2 = int(Reason.STOP_L2)
_L3 = int(Reason.STOP_L3)
_END = int(Reason.END_OF_DATA)

SYM = 0  # single-symbol kernel: the ledger row of the traded symbol


def new_engine_state() -> tuple[np.ndarray, np.ndarray]:
    es = np.zeros(N_ESTATE, dtype=np.float64)
    ei = np.zeros(N_EISTATE, dtype=np.int64)
    ei[EI_PREV_TS] = -1
    return es, ei


@njit(cache=True, _nrt=False)
def signal_reason_nb(source):
    """Reason of a signal entry/exit from its source bitmask (1 A, 2 B, 3 both; 0 = another strategy)."""
    if source >= 1 and source <= 3:
        return source
    return _CUSTOM


@njit(cache=True, _nrt=False)
def kelly_id_nb(source):
    if source == 1:
        return SIGNAL_A
    if source == 2:
        return SIGNAL_B
    return SIGNAL_CUSTOM


@njit(cache=True, _nrt=False)
def recent_impact_nb(price_impact, i):
    """The price impact known before bar i's open (the previous bar's); 0 when unknown, so data
    without order flow (klines) pays the fixed slippage only."""
    if i == 0:
        return 0.0
    v = price_impact[i - 1]
    return v if np.isfinite(v) else 0.0


@njit(cache=True, _nrt=False)
def _journal_decision(dec, dec_ts, ei, i, ts, side, qty, reason, signal, is_entry):
    k = ei[EI_N_DECISIONS]
    if k < dec.shape[0]:
        dec[k, D_BAR] = i
        dec[k, D_SIDE] = side
        dec[k, D_QTY] = qty
        dec[k, D_REASON] = reason
        dec[k, D_SIGNAL] = signal
        dec[k, D_IS_ENTRY] = is_entry
        dec_ts[k] = ts
    ei[EI_N_DECISIONS] = k + 1


@njit(cache=True, _nrt=False)
def _place_market(es, ei, ts, side, qty, reason, signal, is_entry, atr):
    es[E_LIMIT] = 0.0
    es[E_PENDING] = 1.0
    es[E_SIDE] = side
    es[E_REMAINING] = qty
    es[E_REASON] = reason
    es[E_SIGNAL] = signal
    es[E_IS_ENTRY] = is_entry
    es[E_ATR] = atr
    ei[EI_DECISION_TS] = ts
    ei[EI_ORDER_ID] += 1


@njit(cache=True, _nrt=False)
def _report_closed_trades(ep, es, rp, rs_daily, rs_losses, rs_kelly, rs_sm, rs_sm_log, stop_state,
                          acc, trades, ts, equity):
    """Tell the risk layer about round trips the ledger closed since the last call."""
    n = int(acc[ACC_N_TRADES])
    while es[E_TRADES_SEEN] < n:
        k = int(es[E_TRADES_SEEN])
        if k < trades.shape[0]:
            pnl = trades[k, TR_NET_PNL]
            notional = trades[k, TR_ENTRY_PRICE] * trades[k, TR_QTY]
            ret = pnl / notional if notional > 0.0 else 0.0
            if ep[P_RISK] != 0.0:
                on_trade_closed_nb(rp, rs_daily, rs_losses, rs_kelly, rs_sm, rs_sm_log, ts, pnl, ret,
                                   int(es[E_KELLY_ID]), equity)
        es[E_TRADES_SEEN] = k + 1
    stops_reset_nb(stop_state)


@njit(cache=True, _nrt=False)
def fill_orders_nb(i, ts_event, ts_open, open_, high, low, volume, price_impact, ep, fee_p, fill_p, inst,
                   es, ei, stop_p, stop_state, pos, pos_ts, acc, fills, fill_ts, trades, trade_ts):
    """Step 1: the pending market order at bar i's open (participation-capped), or a resting limit
    entry that the bar trades through (filled at the limit, maker fee, stamped at the bar's close
    because the moment inside the bar is unknown)."""
    if es[E_PENDING] == 0.0 or not market_eligible_nb(fill_p, ei[EI_DECISION_TS], ts_open[i]):
        return
    if es[E_LIMIT] != 0.0:
        _fill_limit_nb(i, ts_event, high, low, volume, ep, fee_p, fill_p, inst, es, ei, stop_p, stop_state, pos,
                       pos_ts, acc, fills, fill_ts, trades, trade_ts)
        return
    side = int(es[E_SIDE])
    if es[E_IS_ENTRY] != 0.0 and ep[P_SIZING_MODE] == 1.0 and pos[SYM, S_QTY] == 0.0:
        # fraction sizing resolves the quantity at the fill: what the wallet buys at this open
        # (fixed slippage included), not at the decision close a gap ago
        ref = market_fill_price_nb(fill_p, side, 0.0, open_[i], 0.0)
        q0 = ep[P_FRACTION] * acc[ACC_WALLET] / (ref * (1.0 + ep[P_TAKER_FEE]) * inst[I_CONTRACT_SIZE])
        es[E_REMAINING] = round_qty_down_nb(q0, inst) if ep[P_ROUND_QTY] != 0.0 else q0
    remaining = es[E_REMAINING]
    if es[E_IS_ENTRY] == 0.0:  # an exit never exceeds what is still open
        remaining = min(remaining, abs(pos[SYM, S_QTY]))
    qty = remaining
    if ep[P_CAP_BY_VOLUME] != 0.0:
        qty = fillable_qty_nb(fill_p, inst, remaining, volume[i])
    if qty <= 0.0:
        if es[E_IS_ENTRY] == 0.0 and remaining <= 0.0:
            es[E_PENDING] = 0.0
        return
    impact = recent_impact_nb(price_impact, i)
    price = market_fill_price_nb(fill_p, side, qty * inst[I_CONTRACT_SIZE], open_[i], impact)
    if inst[I_IS_PERP] == 0.0 and side == 1:
        # spot buys are paid in cash: never spend more than the wallet holds (fee included)
        afford = acc[ACC_WALLET] / (price * (1.0 + ep[P_TAKER_FEE]) * inst[I_CONTRACT_SIZE])
        if qty > afford:
            qty = round_qty_down_nb(afford, inst) if ep[P_ROUND_QTY] != 0.0 else afford
            if qty <= 0.0:
                es[E_PENDING] = 0.0
                es[E_REMAINING] = 0.0
                return
            price = market_fill_price_nb(fill_p, side, qty * inst[I_CONTRACT_SIZE], open_[i], impact)
            remaining = qty  # what cannot be paid for is not bought later either
    fee = fee_nb(qty * inst[I_CONTRACT_SIZE] * price, False, fee_p)
    was_flat = pos[SYM, S_QTY] == 0.0
    apply_fill_nb(pos, pos_ts, acc, fills, fill_ts, trades, trade_ts, SYM, ts_open[i], i, side, qty, price, fee,
                  False, int(es[E_REASON]), int(es[E_SIGNAL]), ei[EI_ORDER_ID])
    if es[E_IS_ENTRY] != 0.0 and was_flat and ep[P_STOPS] != 0.0:
        stops_on_entry_nb(stop_p, stop_state, side, price, es[E_ATR])
    es[E_REMAINING] = remaining - qty
    if es[E_REMAINING] <= 1e-12 * max(1.0, qty) or (es[E_IS_ENTRY] == 0.0 and pos[SYM, S_QTY] == 0.0):
        es[E_PENDING] = 0.0
        es[E_REMAINING] = 0.0


@njit(cache=True, _nrt=False)
def _fill_limit_nb(i, ts_event, high, low, volume, ep, fee_p, fill_p, inst, es, ei, stop_p, stop_state, pos, pos_ts,
                   acc, fills, fill_ts, trades, trade_ts):
    side = int(es[E_SIDE])
    filled, through = limit_fill_nb(fill_p, side, es[E_LIMIT_PRICE], low[i], high[i], int(es[E_BARS_THROUGH]))
    es[E_BARS_THROUGH] = through
    if filled:
        remaining = es[E_REMAINING]
        qty = fillable_qty_nb(fill_p, inst, remaining, volume[i]) if ep[P_CAP_BY_VOLUME] != 0.0 else remaining
        if qty > 0.0:
            price = es[E_LIMIT_PRICE]
            fee = fee_nb(qty * inst[I_CONTRACT_SIZE] * price, True, fee_p)
            was_flat = pos[SYM, S_QTY] == 0.0
            apply_fill_nb(pos, pos_ts, acc, fills, fill_ts, trades, trade_ts, SYM, ts_event[i], i, side, qty, price,
                          fee, True, int(es[E_REASON]), int(es[E_SIGNAL]), ei[EI_ORDER_ID])
            if was_flat and ep[P_STOPS] != 0.0:
                stops_on_entry_nb(stop_p, stop_state, side, price, es[E_ATR])
            es[E_REMAINING] = remaining - qty
            if es[E_REMAINING] <= 1e-12 * max(1.0, qty):
                es[E_PENDING] = 0.0
                es[E_REMAINING] = 0.0
                es[E_LIMIT] = 0.0
                return
    es[E_TTL] -= 1.0
    if es[E_TTL] <= 0.0:  # expired: what filled stays, the rest is cancelled
        es[E_PENDING] = 0.0
        es[E_REMAINING] = 0.0
        es[E_LIMIT] = 0.0


@njit(cache=True, _nrt=False)
def decide_nb(i, ts_event, close, atr, ofi_ema5, cum_delta_slope, trade_intensity, high, low, open_,
              price_impact, enter_long, enter_short, exit_long, exit_short, strength, source, regime_factor,
              flatten, ep, fee_p, fill_p, inst, margin_p, brackets, fund_p, fund_ts, fund_rate, fund_mark,
              es, ei, rp, rs_daily, rs_losses, rs_drawdown, rs_liquidity, rs_entries, rs_kelly, rs_sm, rs_sm_log,
              stop_p, stop_state, pos, pos_ts, acc, fills, fill_ts, trades, trade_ts, eq, eq_ts, dec, dec_ts,
              simulate):
    """Steps 2-5 for bar i. `simulate` = 1: stops and liquidation fill here (backtest, paper);
    0: live, where resting stop orders and liquidations happen at the venue."""
    ts = ts_event[i]
    q = pos[SYM, S_QTY]
    # 2. protective stop level held before this bar, then liquidation, then L2/L3 at the close
    close_exit = _NONE
    if q != 0.0 and ep[P_STOPS] != 0.0:
        reason, level = stops_on_bar_nb(stop_p, stop_state, high[i], low[i], close[i], atr[i], ofi_ema5[i],
                                        cum_delta_slope[i])
        if (reason == _L1 or reason == _TRAIL) and simulate != 0:
            side = -1 if q > 0.0 else 1
            hit, price = stop_fill_nb(fill_p, side, level, abs(q) * inst[I_CONTRACT_SIZE], open_[i], low[i],
                                      high[i], recent_impact_nb(price_impact, i))
            if hit:
                fee = fee_nb(abs(q) * inst[I_CONTRACT_SIZE] * price, False, fee_p)
                ei[EI_ORDER_ID] += 1
                apply_fill_nb(pos, pos_ts, acc, fills, fill_ts, trades, trade_ts, SYM, ts, i, side, abs(q), price,
                              fee, False, reason, int(es[E_POS_SOURCE]), ei[EI_ORDER_ID])
                es[E_PENDING] = 0.0  # a pending exit has nothing left to close
        elif reason == _L2 or reason == _L3:
            close_exit = reason
    if simulate != 0 and pos[SYM, S_QTY] != 0.0 and inst[I_IS_PERP] != 0.0:
        liquidation_check_nb(margin_p, brackets, pos, pos_ts, acc, fills, fill_ts, trades, trade_ts, SYM, ts, i,
                             open_[i], low[i], high[i])
        if pos[SYM, S_QTY] == 0.0:
            es[E_PENDING] = 0.0
    # 3. mark, funding, equity row
    mark_nb(pos, acc, SYM, close[i])
    if ep[P_FUNDING] != 0.0 and ei[EI_PREV_TS] >= 0 and pos[SYM, S_QTY] != 0.0 and inst[I_IS_PERP] != 0.0:
        if ep[P_FUNDING] == 1.0:
            funding_step_constant_nb(fund_p, pos, acc, SYM, ei[EI_PREV_TS], ts, close[i])
        else:
            cur, _paid = funding_step_series_nb(fund_ts, fund_rate, fund_mark, ei[EI_FUND_CURSOR], pos, acc, SYM,
                                                ei[EI_PREV_TS], ts, close[i])
            ei[EI_FUND_CURSOR] = cur
    ei[EI_PREV_TS] = ts
    _upnl, equity = mark_nb(pos, acc, SYM, close[i])
    record_equity_nb(pos, acc, eq, eq_ts, i, ts)
    # 4. risk at the close
    if pos[SYM, S_QTY] == 0.0 and es[E_TRADES_SEEN] < acc[ACC_N_TRADES]:
        _report_closed_trades(ep, es, rp, rs_daily, rs_losses, rs_kelly, rs_sm, rs_sm_log, stop_state, acc,
                              trades, ts, equity)
    state = _ACTIVE
    mr = 0.0
    if pos[SYM, S_QTY] != 0.0 and inst[I_IS_PERP] != 0.0:
        mr = margin_ratio_nb(margin_p, brackets, pos, acc, SYM)
    if eq.shape[1] > N_EQ:  # the runner's curve carries one more column: the margin ratio per bar
        eq[i, N_EQ] = mr
    if ep[P_RISK] != 0.0:
        state = on_bar_nb(rp, rs_daily, rs_drawdown, rs_liquidity, rs_sm, rs_sm_log, ts, equity,
                          trade_intensity[i], mr, flatten[i])
    # 5. decisions at the close
    q = pos[SYM, S_QTY]
    if q != 0.0:
        exiting = es[E_PENDING] != 0.0 and es[E_IS_ENTRY] == 0.0
        if not exiting:
            side = -1 if q > 0.0 else 1
            reason = _NONE
            qty = abs(q)
            if flatten[i] or state == _FLATTEN:
                reason = _FLATTEN_REGIME
            elif (exit_long[i] and q > 0.0) or (exit_short[i] and q < 0.0):
                pos_src = int(es[E_POS_SOURCE])
                src = source[i]
                if ep[P_EXIT_SOURCE_MATCH] == 0.0 or pos_src == 0 or src == 0 or (src & pos_src) != 0:
                    reason = signal_reason_nb(src if src != 0 else pos_src)
            if reason == _NONE and close_exit != _NONE:
                reason = close_exit
            if reason == _NONE and state == _REDUCING:
                reason = _REDUCE
                qty = abs(q) * ep[P_REDUCE_FRACTION]
                if ep[P_ROUND_QTY] != 0.0:
                    qty = round_qty_down_nb(qty, inst)
                    if qty <= 0.0:
                        qty = abs(q)
            if reason != _NONE:
                # an entry still filling (participation cap) is abandoned at the first exit decision
                _place_market(es, ei, ts, side, qty, reason, es[E_POS_SOURCE], 0.0, atr[i])
                _journal_decision(dec, dec_ts, ei, i, ts, side, qty, reason, es[E_POS_SOURCE], 0.0)
        return
    if es[E_PENDING] != 0.0:
        # an entry still waiting for its latency is cancelled once entries are no longer allowed
        if es[E_IS_ENTRY] != 0.0 and (flatten[i] or state != _ACTIVE):
            es[E_PENDING] = 0.0
            es[E_REMAINING] = 0.0
        return
    side = 0
    if enter_long[i] and not enter_short[i]:
        side = 1
    elif enter_short[i] and not enter_long[i] and ep[P_ALLOW_SHORT] != 0.0:
        side = -1
    if side == 0 or state != _ACTIVE or flatten[i]:  # the regime flag blocks entries even with the rules off
        return
    price = close[i]
    src = source[i]
    kid = kelly_id_nb(src)
    if ep[P_SIZING_MODE] == 0.0:
        qty_base, _why = size_entry_nb(rp, rs_daily, rs_losses, rs_drawdown, rs_liquidity, rs_entries, rs_kelly,
                                       rs_sm, ts, kid, side, equity, price, atr[i], regime_factor[i], strength[i],
                                       0.0, 0.0, ep[P_TAKER_FEE])
    else:
        qty_base = ep[P_FRACTION] * acc[ACC_WALLET] / (price * (1.0 + ep[P_TAKER_FEE]))
    qty = qty_base / inst[I_CONTRACT_SIZE]
    if ep[P_ROUND_QTY] != 0.0:
        qty = round_qty_down_nb(qty, inst)
        if qty < inst[I_MIN_QTY] or qty * inst[I_CONTRACT_SIZE] * price < ep[P_MIN_NOTIONAL]:
            return
    if not qty > 0.0:
        return
    if ep[P_RISK] != 0.0:
        on_entry_nb(rp, rs_entries, ts)
    reason = signal_reason_nb(src)
    es[E_POS_SOURCE] = src
    es[E_KELLY_ID] = kid
    _place_market(es, ei, ts, side, qty, reason, src, 1.0, atr[i])
    if ep[P_ENTRY_LIMIT] != 0.0:
        tick = inst[I_TICK]
        es[E_LIMIT] = 1.0
        es[E_LIMIT_PRICE] = round((price - side * ep[P_LIMIT_OFFSET_TICKS] * tick) / tick) * tick
        es[E_BARS_THROUGH] = 0.0
        es[E_TTL] = ep[P_LIMIT_TTL_BARS]
    _journal_decision(dec, dec_ts, ei, i, ts, side, qty, reason, src, 1.0)


@njit(cache=True, _nrt=False)
def run_nb(start, stop, ts_event, ts_open, open_, high, low, close, volume, atr, price_impact, ofi_ema5,
           cum_delta_slope, trade_intensity, enter_long, enter_short, exit_long, exit_short, strength, source,
           regime_factor, flatten, ep, fee_p, fill_p, inst, margin_p, brackets, fund_p, fund_ts, fund_rate,
           fund_mark, es, ei, rp, rs_daily, rs_losses, rs_drawdown, rs_liquidity, rs_entries, rs_kelly, rs_sm,
           rs_sm_log, stop_p, stop_state, pos, pos_ts, acc, fills, fill_ts, trades, trade_ts, eq, eq_ts, dec,
           dec_ts):
    """The backtest loop: `step` for bars [start, stop) with simulated fills."""
    for i in range(start, stop):
        if es[E_PENDING] != 0.0:
            fill_orders_nb(i, ts_event, ts_open, open_, high, low, volume, price_impact, ep, fee_p, fill_p, inst, es, ei,
                           stop_p, stop_state, pos, pos_ts, acc, fills, fill_ts, trades, trade_ts)
        decide_nb(i, ts_event, close, atr, ofi_ema5, cum_delta_slope, trade_intensity, high, low, open_,
                  price_impact, enter_long, enter_short, exit_long, exit_short, strength, source, regime_factor,
                  flatten, ep, fee_p, fill_p, inst, margin_p, brackets, fund_p, fund_ts, fund_rate, fund_mark,
                  es, ei, rp, rs_daily, rs_losses, rs_drawdown, rs_liquidity, rs_entries, rs_kelly, rs_sm,
                  rs_sm_log, stop_p, stop_state, pos, pos_ts, acc, fills, fill_ts, trades, trade_ts, eq, eq_ts,
                  dec, dec_ts, 1)
