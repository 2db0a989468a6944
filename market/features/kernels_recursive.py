"""Recursive-filter numba kernels with carried state: EMA, Wilder ATR, RSI and ADX.

Like the rolling kernels, each processes one chunk and keeps its whole state in caller-owned
arrays, so any split of the input into chunks gives bit-identical output. Inputs are finite by
the bar validation in `market.features.inputs` (prices > 0, OFI defined); the kernels do not
special-case NaN.
"""

from __future__ import annotations

import numpy as np
from numba import njit

EMA_FSTATE = 1
EMA_ISTATE = 1
ATR_FSTATE = 3  # prev_close, atr, tr_sum
ATR_ISTATE = 1
RSI_FSTATE = 5  # prev_close, avg_gain, avg_loss, sum_gain, sum_loss
RSI_ISTATE = 1
ADX_FSTATE = 11  # prev h/l/c, smoothed tr/+dm/-dm, sums tr/+dm/-dm, adx, dx_sum
ADX_ISTATE = 1


@njit(cache=True)
def ema_nb(x, alpha, span, fstate, istate, out):
    """pandas `ewm(span, adjust=False, min_periods=span).mean()`: seeded with the first value,
    y = (1 - alpha) * y + alpha * x, NaN for the first span - 1 bars."""
    count = istate[0]
    y = fstate[0]
    for i in range(x.shape[0]):
        if count == 0:
            y = x[i]
        else:
            y = (1.0 - alpha) * y + alpha * x[i]
        count += 1
        out[i] = y if count >= span else np.nan
    istate[0] = count
    fstate[0] = y


@njit(cache=True)
def _true_range(h, lo, prev_close):
    return max(h - lo, abs(h - prev_close), abs(lo - prev_close))


@njit(cache=True)
def wilder_atr_nb(high, low, close, n, fstate, istate, out):
    """Wilder ATR(n). TR of the first bar = high - low; first value at bar n-1 = mean of the first
    n TRs; then atr = (atr * (n - 1) + tr) / n."""
    count = istate[0]
    for i in range(high.shape[0]):
        if count == 0:
            tr = high[i] - low[i]
        else:
            tr = _true_range(high[i], low[i], fstate[0])
        fstate[0] = close[i]
        if count < n:
            fstate[2] += tr
            if count == n - 1:
                fstate[1] = fstate[2] / n
        else:
            fstate[1] = (fstate[1] * (n - 1) + tr) / n
        out[i] = fstate[1] if count >= n - 1 else np.nan
        count += 1
    istate[0] = count


@njit(cache=True)
def wilder_rsi_nb(close, n, fstate, istate, out):
    """Wilder RSI(n) = 100 * avg_gain / (avg_gain + avg_loss); 50 when both averages are 0.

    Averages start at bar n as the mean of the first n gains/losses (bars 1..n), then
    avg = (avg * (n - 1) + x) / n.
    """
    count = istate[0]
    for i in range(close.shape[0]):
        c = close[i]
        if count == 0:
            out[i] = np.nan
        else:
            diff = c - fstate[0]
            gain = diff if diff > 0.0 else 0.0
            loss = -diff if diff < 0.0 else 0.0
            if count <= n:
                fstate[3] += gain
                fstate[4] += loss
                if count == n:
                    fstate[1] = fstate[3] / n
                    fstate[2] = fstate[4] / n
            else:
                fstate[1] = (fstate[1] * (n - 1) + gain) / n
                fstate[2] = (fstate[2] * (n - 1) + loss) / n
            if count >= n:
                total = fstate[1] + fstate[2]
                out[i] = 100.0 * fstate[1] / total if total > 0.0 else 50.0
            else:
                out[i] = np.nan
        fstate[0] = c
        count += 1
    istate[0] = count


@njit(cache=True)
def wilder_adx_nb(high, low, close, n, fstate, istate, plus_di, minus_di, adx):
    """Wilder +DI(n), -DI(n) and ADX(n).

    From bar 1: TR with the previous close, +DM = up if up > down and up > 0 else 0 (-DM
    symmetric). Smoothed TR/DM start at bar n as means of bars 1..n, then Wilder smoothing.
    DI = 100 * smoothed DM / smoothed TR (0 when smoothed TR = 0); DX = 100 * |+DI - -DI| /
    (+DI + -DI) (0 when the sum is 0). ADX starts at bar 2n - 1 as the mean of the first n DX,
    then adx = (adx * (n - 1) + dx) / n.
    """
    count = istate[0]
    for i in range(high.shape[0]):
        h = high[i]
        lo = low[i]
        plus_di[i] = np.nan
        minus_di[i] = np.nan
        adx[i] = np.nan
        if count > 0:
            tr = _true_range(h, lo, fstate[2])
            up = h - fstate[0]
            down = fstate[1] - lo
            pdm = up if (up > down and up > 0.0) else 0.0
            mdm = down if (down > up and down > 0.0) else 0.0
            if count <= n:
                fstate[6] += tr
                fstate[7] += pdm
                fstate[8] += mdm
                if count == n:
                    fstate[3] = fstate[6] / n
                    fstate[4] = fstate[7] / n
                    fstate[5] = fstate[8] / n
            else:
                fstate[3] = (fstate[3] * (n - 1) + tr) / n
                fstate[4] = (fstate[4] * (n - 1) + pdm) / n
                fstate[5] = (fstate[5] * (n - 1) + mdm) / n
            if count >= n:
                if fstate[3] > 0.0:
                    pdi = 100.0 * fstate[4] / fstate[3]
                    mdi = 100.0 * fstate[5] / fstate[3]
                else:
                    pdi = 0.0
                    mdi = 0.0
                plus_di[i] = pdi
                minus_di[i] = mdi
                di_sum = pdi + mdi
                dx = 100.0 * abs(pdi - mdi) / di_sum if di_sum > 0.0 else 0.0
                j = count - n  # index of this DX value
                if j < n:
                    fstate[10] += dx
                    if j == n - 1:
                        fstate[9] = fstate[10] / n
                else:
                    fstate[9] = (fstate[9] * (n - 1) + dx) / n
                if j >= n - 1:
                    adx[i] = fstate[9]
        fstate[0] = h
        fstate[1] = lo
        fstate[2] = close[i]
        count += 1
    istate[0] = count
