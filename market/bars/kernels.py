"""Numba kernels of the bar builder: one pass over a chunk of trades with a carried state.

Batch and streaming are the same code: `build_bars_nb` consumes a chunk of trade arrays, reads the
open bar and every other piece of memory it needs from the state arrays, emits the bars that close
inside the chunk and writes the state back. Building over all trades at once or over any split of
them into chunks therefore performs the same floating-point operations in the same order and gives
bit-identical bars.

State layout (`market.bars.layout`): `state_i` (int64) and `state_f` (float64) hold scalars at
the `I_*` / `F_*` indices; `ring` holds the last `window` trade sizes for the large-trade quantile;
`hist_day` / `hist_vol` hold the (UTC day, volume) of recent trading days for dynamic bars.
Parameters are in `params_i` / `params_f` at the `P_*` indices. Output bars are written
column-major into `out_i` (int64 columns `OI_*`) and `out_f` (float64 columns `OF_*`), whose
capacity must be >= the number of trades in the chunk + 1 (a trade closes at most one bar).

Inputs must be validated first (`validate_trades_nb`): the build kernel assumes sorted
timestamps, finite positive prices and sizes, and the dynamic-threshold history being available.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from market.bars.layout import (
    NS_PER_DAY, NO_DAY, MODE_TIME, MODE_TICK, MODE_VOLUME, MODE_DOLLAR, MODE_DYNAMIC, P_MODE, P_TICKS,
    P_EVERY, P_LOOKBACK, P_TARGET, P_LARGE_WINDOW, P_LARGE_REFRESH, P_HAS_INITIAL, P_THRESHOLD,
    P_INITIAL, P_QUANTILE, I_TRADES, I_COUNT, I_TS_OPEN, I_TS_CLOSE, I_FIRST_ID, I_LAST_ID, I_BUY_COUNT,
    I_SELL_COUNT, I_UP, I_DOWN, I_LARGE_COUNT, I_PREV_CLOSE, I_HAS_PREV, I_TICK_DIR, I_LAST_TS,
    I_BUCKET_END, I_CLOSED_END, I_RING_POS, I_NEXT_REFRESH, I_CUR_DAY, I_DAY_END, I_LAST_HIST_DAY,
    F_OPEN, F_HIGH, F_LOW, F_CLOSE, F_VOL, F_QUOTE, F_BUY_VOL, F_SELL_VOL, F_BUY_QUOTE, F_SELL_QUOTE,
    F_RV, F_LARGE_VOL, F_LAST_PRICE, F_LARGE_THR, F_DYN_THR, F_DAY_VOL, OI_TS_EVENT, OI_TS_OPEN,
    OI_TS_CLOSE, OI_DURATION, OI_FIRST_ID, OI_LAST_ID, OI_COUNT, OI_BUY_COUNT, OI_SELL_COUNT, OI_UP,
    OI_DOWN, OI_LARGE_COUNT, OF_OPEN, OF_HIGH, OF_LOW, OF_CLOSE, OF_VOL, OF_QUOTE, OF_BUY_VOL,
    OF_SELL_VOL, OF_VWAP, OF_BUY_VWAP, OF_SELL_VWAP, OF_RV, OF_LARGE_VOL, OF_THRESHOLD, OK, ERR_TS_ORDER,
    ERR_PRICE, ERR_QTY, ERR_NO_HISTORY,
)
from market.bars.quantile import ring_quantile_nb


@njit(cache=True)
def _write_bar_nb(out_i, out_f, row, ts_event, ts_open, ts_close, prev_close, has_prev, first_id, last_id,
                  count, buy_count, sell_count, up, down, large_count, o, h, lo, c, vol, quote, buy_vol,
                  sell_vol, buy_quote, sell_quote, rv, large_vol, threshold):
    out_i[OI_TS_EVENT, row] = ts_event
    out_i[OI_TS_OPEN, row] = ts_open
    out_i[OI_TS_CLOSE, row] = ts_close
    out_i[OI_DURATION, row] = ts_close - (prev_close if has_prev else ts_open)
    out_i[OI_FIRST_ID, row] = first_id
    out_i[OI_LAST_ID, row] = last_id
    out_i[OI_COUNT, row] = count
    out_i[OI_BUY_COUNT, row] = buy_count
    out_i[OI_SELL_COUNT, row] = sell_count
    out_i[OI_UP, row] = up
    out_i[OI_DOWN, row] = down
    out_i[OI_LARGE_COUNT, row] = large_count
    out_f[OF_OPEN, row] = o
    out_f[OF_HIGH, row] = h
    out_f[OF_LOW, row] = lo
    out_f[OF_CLOSE, row] = c
    out_f[OF_VOL, row] = vol
    out_f[OF_QUOTE, row] = quote
    out_f[OF_BUY_VOL, row] = buy_vol
    out_f[OF_SELL_VOL, row] = sell_vol
    out_f[OF_VWAP, row] = quote / vol
    out_f[OF_BUY_VWAP, row] = buy_quote / buy_vol if buy_count > 0 else np.nan
    out_f[OF_SELL_VWAP, row] = sell_quote / sell_vol if sell_count > 0 else np.nan
    out_f[OF_RV, row] = rv
    out_f[OF_LARGE_VOL, row] = large_vol
    out_f[OF_THRESHOLD, row] = threshold


@njit(cache=True)
def _day_threshold_nb(day, hist_day, hist_vol, lookback, target, has_initial, initial):
    # Days are summed oldest first so that the mean is reproducible to the bit.
    total = 0.0
    n = 0
    for d in range(day - lookback, day):
        j = d % lookback
        if hist_day[j] == d:
            total += hist_vol[j]
            n += 1
    if n == 0:
        return initial if has_initial else np.nan
    return (total / n) / target


@njit(cache=True)
def build_bars_nb(ids, ts, price, qty, is_buyer_maker, params_i, params_f, state_i, state_f, ring,
                  hist_day, hist_vol, out_i, out_f):
    """Consume one chunk of trades; write the bars it closes to out_i/out_f; return their number."""
    mode = params_i[P_MODE]
    ticks = params_i[P_TICKS]
    every = params_i[P_EVERY]
    lookback = params_i[P_LOOKBACK]
    target = params_i[P_TARGET]
    window = params_i[P_LARGE_WINDOW]
    refresh = params_i[P_LARGE_REFRESH]
    has_initial = params_i[P_HAS_INITIAL] != 0
    fixed_thr = params_f[P_THRESHOLD]
    initial = params_f[P_INITIAL]
    quantile = params_f[P_QUANTILE]

    k = state_i[I_TRADES]
    count = state_i[I_COUNT]
    ts_open = state_i[I_TS_OPEN]
    ts_close = state_i[I_TS_CLOSE]
    first_id = state_i[I_FIRST_ID]
    last_id = state_i[I_LAST_ID]
    buy_count = state_i[I_BUY_COUNT]
    sell_count = state_i[I_SELL_COUNT]
    up = state_i[I_UP]
    down = state_i[I_DOWN]
    large_count = state_i[I_LARGE_COUNT]
    prev_close = state_i[I_PREV_CLOSE]
    has_prev = state_i[I_HAS_PREV]
    tick_dir = state_i[I_TICK_DIR]
    bucket_end = state_i[I_BUCKET_END]
    ring_pos = state_i[I_RING_POS]
    next_refresh = state_i[I_NEXT_REFRESH]
    cur_day = state_i[I_CUR_DAY]
    day_end = state_i[I_DAY_END]
    last_hist_day = state_i[I_LAST_HIST_DAY]
    o = state_f[F_OPEN]
    h = state_f[F_HIGH]
    lo = state_f[F_LOW]
    c = state_f[F_CLOSE]
    vol = state_f[F_VOL]
    quote = state_f[F_QUOTE]
    buy_vol = state_f[F_BUY_VOL]
    sell_vol = state_f[F_SELL_VOL]
    buy_quote = state_f[F_BUY_QUOTE]
    sell_quote = state_f[F_SELL_QUOTE]
    rv = state_f[F_RV]
    large_vol = state_f[F_LARGE_VOL]
    last_price = state_f[F_LAST_PRICE]
    large_thr = state_f[F_LARGE_THR]
    dyn_thr = state_f[F_DYN_THR]
    day_vol = state_f[F_DAY_VOL]

    n_out = 0
    n = ts.shape[0]
    for j in range(n):
        t = ts[j]
        p = price[j]
        q = qty[j]

        if mode == MODE_TIME:
            if t >= bucket_end:
                if count > 0:
                    _write_bar_nb(out_i, out_f, n_out, bucket_end, ts_open, ts_close, prev_close, has_prev,
                                  first_id, last_id, count, buy_count, sell_count, up, down, large_count,
                                  o, h, lo, c, vol, quote, buy_vol, sell_vol, buy_quote, sell_quote, rv,
                                  large_vol, np.nan)
                    n_out += 1
                    prev_close = ts_close
                    has_prev = 1
                    count = 0
                bucket_end = (t // every) * every + every
        elif mode == MODE_DYNAMIC:
            if t >= day_end:
                if cur_day != NO_DAY:
                    hist_day[cur_day % lookback] = cur_day
                    hist_vol[cur_day % lookback] = day_vol
                    last_hist_day = cur_day
                cur_day = t // NS_PER_DAY
                day_end = (cur_day + 1) * NS_PER_DAY
                day_vol = 0.0
                dyn_thr = _day_threshold_nb(cur_day, hist_day, hist_vol, lookback, target, has_initial, initial)
            day_vol += q

        is_large = False
        if window > 0:
            if k == next_refresh:
                large_thr = ring_quantile_nb(ring, quantile)
                next_refresh += refresh
            is_large = q >= large_thr
            ring[ring_pos] = q
            ring_pos += 1
            if ring_pos == window:
                ring_pos = 0

        r2 = 0.0
        if k > 0:
            if p > last_price:
                tick_dir = 1
            elif p < last_price:
                tick_dir = -1
            if p != last_price:
                r = math.log(p / last_price)
                r2 = r * r
        last_price = p
        k += 1

        if count == 0:
            ts_open = t
            first_id = ids[j]
            o = p
            h = p
            lo = p
            vol = 0.0
            quote = 0.0
            buy_vol = 0.0
            sell_vol = 0.0
            buy_quote = 0.0
            sell_quote = 0.0
            rv = 0.0
            large_vol = 0.0
            buy_count = 0
            sell_count = 0
            up = 0
            down = 0
            large_count = 0
        else:
            if p > h:
                h = p
            if p < lo:
                lo = p
        count += 1
        ts_close = t
        last_id = ids[j]
        c = p
        notional = p * q
        vol += q
        quote += notional
        if is_buyer_maker[j]:
            sell_vol += q
            sell_quote += notional
            sell_count += 1
        else:
            buy_vol += q
            buy_quote += notional
            buy_count += 1
        if tick_dir > 0:  # 0 until the first price change: the first trade ever is unclassified
            up += 1
        elif tick_dir < 0:
            down += 1
        rv += r2
        if is_large:
            large_vol += q
            large_count += 1

        if mode == MODE_TIME:
            continue
        if mode == MODE_TICK:
            closes = count >= ticks
            thr = float(ticks)
        elif mode == MODE_VOLUME:
            closes = vol >= fixed_thr
            thr = fixed_thr
        elif mode == MODE_DOLLAR:
            closes = quote >= fixed_thr
            thr = fixed_thr
        else:
            closes = vol >= dyn_thr
            thr = dyn_thr
        if closes:
            _write_bar_nb(out_i, out_f, n_out, t, ts_open, ts_close, prev_close, has_prev, first_id, last_id,
                          count, buy_count, sell_count, up, down, large_count, o, h, lo, c, vol, quote,
                          buy_vol, sell_vol, buy_quote, sell_quote, rv, large_vol, thr)
            n_out += 1
            prev_close = ts_close
            has_prev = 1
            count = 0

    state_i[I_TRADES] = k
    state_i[I_COUNT] = count
    state_i[I_TS_OPEN] = ts_open
    state_i[I_TS_CLOSE] = ts_close
    state_i[I_FIRST_ID] = first_id
    state_i[I_LAST_ID] = last_id
    state_i[I_BUY_COUNT] = buy_count
    state_i[I_SELL_COUNT] = sell_count
    state_i[I_UP] = up
    state_i[I_DOWN] = down
    state_i[I_LARGE_COUNT] = large_count
    state_i[I_PREV_CLOSE] = prev_close
    state_i[I_HAS_PREV] = has_prev
    state_i[I_TICK_DIR] = tick_dir
    if n > 0:
        state_i[I_LAST_TS] = ts[n - 1]
    state_i[I_BUCKET_END] = bucket_end
    state_i[I_RING_POS] = ring_pos
    state_i[I_NEXT_REFRESH] = next_refresh
    state_i[I_CUR_DAY] = cur_day
    state_i[I_DAY_END] = day_end
    state_i[I_LAST_HIST_DAY] = last_hist_day
    state_f[F_OPEN] = o
    state_f[F_HIGH] = h
    state_f[F_LOW] = lo
    state_f[F_CLOSE] = c
    state_f[F_VOL] = vol
    state_f[F_QUOTE] = quote
    state_f[F_BUY_VOL] = buy_vol
    state_f[F_SELL_VOL] = sell_vol
    state_f[F_BUY_QUOTE] = buy_quote
    state_f[F_SELL_QUOTE] = sell_quote
    state_f[F_RV] = rv
    state_f[F_LARGE_VOL] = large_vol
    state_f[F_LAST_PRICE] = last_price
    state_f[F_LARGE_THR] = large_thr
    state_f[F_DYN_THR] = dyn_thr
    state_f[F_DAY_VOL] = day_vol
    return n_out


@njit(cache=True)
def write_open_bar_nb(params_i, params_f, state_i, state_f, out_i, out_f, row):
    """Write the open bar (state unchanged) at `row`; return 1, or 0 when no bar is open."""
    if state_i[I_COUNT] == 0:
        return 0
    mode = params_i[P_MODE]
    if mode == MODE_TIME:
        ts_event = state_i[I_BUCKET_END]
        thr = np.nan
    else:
        ts_event = state_i[I_TS_CLOSE]
        if mode == MODE_TICK:
            thr = float(params_i[P_TICKS])
        elif mode == MODE_DYNAMIC:
            thr = state_f[F_DYN_THR]
        else:
            thr = params_f[P_THRESHOLD]
    _write_bar_nb(out_i, out_f, row, ts_event, state_i[I_TS_OPEN], state_i[I_TS_CLOSE], state_i[I_PREV_CLOSE],
                  state_i[I_HAS_PREV], state_i[I_FIRST_ID], state_i[I_LAST_ID], state_i[I_COUNT],
                  state_i[I_BUY_COUNT], state_i[I_SELL_COUNT], state_i[I_UP], state_i[I_DOWN],
                  state_i[I_LARGE_COUNT], state_f[F_OPEN], state_f[F_HIGH], state_f[F_LOW], state_f[F_CLOSE],
                  state_f[F_VOL], state_f[F_QUOTE], state_f[F_BUY_VOL], state_f[F_SELL_VOL],
                  state_f[F_BUY_QUOTE], state_f[F_SELL_QUOTE], state_f[F_RV], state_f[F_LARGE_VOL], thr)
    return 1


@njit(cache=True)
def close_time_bar_nb(ts_ns, params_i, params_f, state_i, state_f, out_i, out_f):
    """Time bars: close the open bar if its bucket ended at or before `ts_ns`; return bars written."""
    if params_i[P_MODE] != MODE_TIME or state_i[I_COUNT] == 0 or state_i[I_BUCKET_END] > ts_ns:
        return 0
    write_open_bar_nb(params_i, params_f, state_i, state_f, out_i, out_f, 0)
    state_i[I_PREV_CLOSE] = state_i[I_TS_CLOSE]
    state_i[I_HAS_PREV] = 1
    state_i[I_COUNT] = 0
    state_i[I_CLOSED_END] = state_i[I_BUCKET_END]
    return 1


@njit(cache=True)
def validate_trades_nb(ts, price, qty, min_ts, check_history, last_day, lookback):
    """First invalid row of a chunk as (code, row), or (OK, -1).

    Checks, row by row: ts >= the previous ts (`min_ts` for row 0); price and quantity finite and
    > 0; and with `check_history`, that each new UTC day has a trading day (the previous trade's
    day, or `last_day` before the chunk) within its `lookback`-day window.
    """
    prev = min_ts
    day = last_day
    day_end = NO_DAY if last_day == NO_DAY else (last_day + 1) * NS_PER_DAY
    for j in range(ts.shape[0]):
        t = ts[j]
        if t < prev:
            return ERR_TS_ORDER, j
        prev = t
        p = price[j]
        if not (p > 0.0 and p < np.inf):
            return ERR_PRICE, j
        q = qty[j]
        if not (q > 0.0 and q < np.inf):
            return ERR_QTY, j
        if check_history and t >= day_end:
            new_day = t // NS_PER_DAY
            if day == NO_DAY or day < new_day - lookback:
                return ERR_NO_HISTORY, j
            day = new_day
            day_end = (new_day + 1) * NS_PER_DAY
    return OK, -1
