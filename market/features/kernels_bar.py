"""Per-bar numba kernels: row-wise order-flow features, running flow state, checks and ratios.

Row-wise features depend on one bar only; `running_flow_nb` carries the previous close and the
cumulative delta between chunks. All arithmetic is done here rather than in polars/numpy
expressions because vectorised transcendental functions (log) may round differently from the
scalar path, which would break batch == streaming bit-identity.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# Order of the rows of the `out` matrix of `bar_row_features_nb`.
ROW_FEATURES = (
    "ofi",
    "delta",
    "buy_count",
    "sell_count",
    "avg_buy_size",
    "avg_sell_size",
    "large_trade_ratio",
    "buy_sell_vwap_diff",
    "trade_intensity",
    "price_impact",
    "uptick_ratio",
)

RUNNING_FLOW_FSTATE = 3  # prev_close, cum_delta, Neumaier compensation
RUNNING_FLOW_ISTATE = 1


@njit(cache=True)
def _div(a, b):
    return a / b if b != 0.0 else np.nan


@njit(cache=True)
def bar_row_features_nb(
    open_, close, volume, buy_volume, sell_volume, buy_count, sell_count, buy_vwap, sell_vwap,
    trade_count, duration_ns, upticks, downticks, large_volume, out, rows,
):
    """Write ROW_FEATURES[k] of bar i into `out[rows[k], i]` (ratios with a zero denominator are NaN)."""
    for i in range(close.shape[0]):
        b = buy_volume[i]
        s = sell_volume[i]
        out[rows[0], i] = _div(b - s, b + s)
        out[rows[1], i] = b - s
        out[rows[2], i] = float(buy_count[i])
        out[rows[3], i] = float(sell_count[i])
        out[rows[4], i] = _div(b, float(buy_count[i]))
        out[rows[5], i] = _div(s, float(sell_count[i]))
        out[rows[6], i] = _div(large_volume[i], volume[i])
        out[rows[7], i] = buy_vwap[i] - sell_vwap[i]
        out[rows[8], i] = trade_count[i] / max(duration_ns[i] / 1e6, 1.0)
        out[rows[9], i] = _div(close[i] - open_[i], volume[i])
        out[rows[10], i] = _div(float(upticks[i]), float(upticks[i] + downticks[i]))


@njit(cache=True)
def running_flow_nb(close, delta, fstate, istate, cum_delta, dclose, log_ret):
    """cum_delta since start (Neumaier-compensated sum), close change and log return vs the
    previous bar (NaN for the very first bar)."""
    count = istate[0]
    total = fstate[1]
    comp = fstate[2]
    for i in range(close.shape[0]):
        v = delta[i]
        t = total + v
        if abs(total) >= abs(v):
            comp += (total - t) + v
        else:
            comp += (v - t) + total
        total = t
        cum_delta[i] = total + comp
        c = close[i]
        if count == 0:
            dclose[i] = np.nan
            log_ret[i] = np.nan
        else:
            dclose[i] = c - fstate[0]
            log_ret[i] = math.log(c / fstate[0])
        fstate[0] = c
        count += 1
    istate[0] = count
    fstate[1] = total
    fstate[2] = comp


@njit(cache=True)
def ratio_nb(a, b, out):
    """out = a / b, NaN where b == 0 (NaN inputs propagate)."""
    for i in range(a.shape[0]):
        out[i] = _div(a[i], b[i])


@njit(cache=True)
def sqrt_mean_nb(s, n, out):
    """out = sqrt(s / n) (rolling mean of a variance to a volatility)."""
    for i in range(s.shape[0]):
        out[i] = math.sqrt(s[i] / n)


@njit(cache=True)
def first_invalid_bar_nb(
    ts_event, prev_ts, open_, high, low, close, volume, quote_volume, buy_volume, sell_volume,
    trade_count, buy_count, sell_count, upticks, downticks, duration_ns, realized_var, large_volume,
):
    """Index and reason code of the first bar breaking an invariant the features rely on, or
    (-1, 0). Codes are explained by `market.features.inputs.INVALID_BAR_REASONS`."""
    last = prev_ts
    for i in range(ts_event.shape[0]):
        if ts_event[i] < last:
            return i, 1
        last = ts_event[i]
        o = open_[i]
        h = high[i]
        lo = low[i]
        c = close[i]
        if not (math.isfinite(o) and math.isfinite(h) and math.isfinite(lo) and math.isfinite(c)):
            return i, 2
        if not (lo > 0.0 and lo <= h and lo <= o and lo <= c and h >= o and h >= c):
            return i, 3
        if not (math.isfinite(volume[i]) and volume[i] > 0.0):
            return i, 4
        if not (math.isfinite(quote_volume[i]) and quote_volume[i] > 0.0):
            return i, 5
        b = buy_volume[i]
        s = sell_volume[i]
        if not (math.isfinite(b) and math.isfinite(s) and b >= 0.0 and s >= 0.0 and b + s > 0.0):
            return i, 6
        if trade_count[i] < 1 or buy_count[i] < 0 or sell_count[i] < 0:
            return i, 7
        if upticks[i] < 0 or downticks[i] < 0:
            return i, 8
        if duration_ns[i] < 0:
            return i, 9
        if not (math.isfinite(realized_var[i]) and realized_var[i] >= 0.0):
            return i, 10
        if not (math.isfinite(large_volume[i]) and large_volume[i] >= 0.0):
            return i, 11
    return -1, 0
