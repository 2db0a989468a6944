"""Causal robust outlier rule over a rolling window of past kept log prices.

The window is kept twice: a ring buffer in arrival order (to know which value leaves) and a
sorted copy (median in O(1), MAD in O(window) by merging the deviations on both sides of the
median). Replacing the oldest value shifts at most `window` floats (usually a few), so a trade costs
O(window) at worst and never a sort.
The MAD is only computed when the deviation already exceeds `min_jump`, which is rare.

Window state `wst` (int64[2]): [count, head]; `ring` and `srt` are float64[window].
"""

from __future__ import annotations

import numpy as np
from numba import njit

MAD_SCALE = 1.4826  # MAD -> standard deviation for normal data


@njit(cache=True)
def _lower_bound_nb(srt, n, x):
    lo = 0
    hi = n
    while lo < hi:
        mid = (lo + hi) >> 1
        if srt[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def window_push_nb(ring, srt, wst, x):
    """Append `x` to the window, evicting the oldest value when full."""
    w = ring.shape[0]
    n = wst[0]
    head = wst[1]
    if n == w:
        old = ring[head]
        ring[head] = x
        wst[1] = (head + 1) % w
        # Replace old by x in place: only the values between them move (few, as consecutive
        # prices are close), instead of a full remove + insert.
        i = _lower_bound_nb(srt, n, old)  # srt[i] == old: the value is stored exactly
        if x > old:
            while i + 1 < n and srt[i + 1] < x:
                srt[i] = srt[i + 1]
                i += 1
        else:
            while i > 0 and srt[i - 1] > x:
                srt[i] = srt[i - 1]
                i -= 1
        srt[i] = x
        return
    ring[(head + n) % w] = x
    q = _lower_bound_nb(srt, n, x)
    for i in range(n, q, -1):
        srt[i] = srt[i - 1]
    srt[q] = x
    wst[0] = n + 1


@njit(cache=True)
def window_clear_nb(wst):
    wst[0] = 0
    wst[1] = 0


@njit(cache=True)
def sorted_median_nb(srt, n):
    h = n >> 1
    if n & 1:
        return srt[h]
    return (srt[h - 1] + srt[h]) / 2.0


@njit(cache=True)
def sorted_mad_nb(srt, n, med):
    """Median of |srt[i] - med| for the sorted window srt[0:n] (med = its median)."""
    p = _lower_bound_nb(srt, n, med)
    i = p - 1  # left side: deviations grow as i decreases
    j = p  # right side: deviations grow as j increases
    h = n >> 1
    prev = 0.0
    cur = 0.0
    for step in range(h + 1):
        if i < 0:
            d = srt[j] - med
            j += 1
        elif j >= n:
            d = med - srt[i]
            i -= 1
        else:
            dl = med - srt[i]
            dr = srt[j] - med
            if dl <= dr:
                d = dl
                i -= 1
            else:
                d = dr
                j += 1
        prev = cur
        cur = d
    if n & 1:
        return cur
    return (prev + cur) / 2.0


@njit(cache=True)
def is_outlier_nb(srt, wst, logp, window, mad_k, min_jump):
    """The rule: full window and |logp - median| > max(mad_k * 1.4826 * MAD, min_jump)."""
    n = wst[0]
    if n < window:
        return False
    med = sorted_median_nb(srt, n)
    dev = abs(logp - med)
    if dev <= min_jump:  # the threshold is never below min_jump: no need for the MAD
        return False
    thr = mad_k * MAD_SCALE * sorted_mad_nb(srt, n, med)
    if thr < min_jump:
        thr = min_jump
    return dev > thr


def new_window(window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fresh (ring, sorted, state) arrays for a window of `window` values."""
    return np.zeros(window, np.float64), np.zeros(window, np.float64), np.zeros(2, np.int64)
