"""Rolling regression numba kernels with carried state: OLS slope of y on x (Kyle's lambda) and
OLS slope against the bar index (cum_delta slope).

Same conventions as `market.features.kernels`: caller-owned state, pandas min_periods=window
semantics, exact re-summation on the bar-counter schedule, shifted Neumaier-compensated sums.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from market.features.kernels import SLOT_BAD, SLOT_COUNT, SLOT_KSET, SLOT_RUN, RECENTER, neumaier_add_nb

ROLLING_OLS_ISTATE = 4
ROLLING_OLS_FSTATE = 10  # Kx, Ky, Sx, Sy, Sxx, Sxy and the compensations of the four sums
INDEX_SLOPE_ISTATE = 4
INDEX_SLOPE_FSTATE = 3  # K, S, W


@njit(cache=True)
def _recompute_ols(rx, ry, n, fstate):
    """Exact shifted sums of the finite pairs in the first n ring slots; K becomes their means."""
    tx = 0.0
    ty = 0.0
    m = 0
    for j in range(n):
        if math.isfinite(rx[j]) and math.isfinite(ry[j]):
            tx += rx[j]
            ty += ry[j]
            m += 1
    if m > 0:
        fstate[0] = tx / m
        fstate[1] = ty / m
    kx = fstate[0]
    ky = fstate[1]
    sx = 0.0
    sy = 0.0
    sxx = 0.0
    sxy = 0.0
    for j in range(n):
        if math.isfinite(rx[j]) and math.isfinite(ry[j]):
            dx = rx[j] - kx
            dy = ry[j] - ky
            sx += dx
            sy += dy
            sxx += dx * dx
            sxy += dx * dy
    fstate[2] = sx
    fstate[3] = sy
    fstate[4] = sxx
    fstate[5] = sxy
    for j in range(6, 10):
        fstate[j] = 0.0


@njit(cache=True)
def rolling_ols_slope_nb(x, y, rx, ry, fstate, istate, recompute_every, out):
    """Rolling OLS slope of y on x (cov(x, y) / var(x)) over `len(rx)` bars.

    A bar whose x or y is non-finite counts as non-finite for the window. NaN until full, while
    a non-finite pair is inside, or when x is constant over the window (var(x) = 0).
    """
    w = rx.shape[0]
    n = float(w)
    count = istate[SLOT_COUNT]
    bad = istate[SLOT_BAD]
    run = istate[SLOT_RUN]
    kset = istate[SLOT_KSET]
    kx, ky = fstate[0], fstate[1]
    sx, sy, sxx, sxy = fstate[2], fstate[3], fstate[4], fstate[5]
    cx, cy, cxx, cxy = fstate[6], fstate[7], fstate[8], fstate[9]
    pos = count % w
    phase = count % recompute_every
    prev = rx[(count - 1) % w] if count > 0 else np.nan
    for i in range(x.shape[0]):
        if count >= w:
            ox = rx[pos]
            oy = ry[pos]
            if math.isfinite(ox) and math.isfinite(oy):
                dx = ox - kx
                dy = oy - ky
                sx, cx = neumaier_add_nb(sx, cx, -dx)
                sy, cy = neumaier_add_nb(sy, cy, -dy)
                sxx, cxx = neumaier_add_nb(sxx, cxx, -(dx * dx))
                sxy, cxy = neumaier_add_nb(sxy, cxy, -(dx * dy))
            else:
                bad -= 1
        vx = x[i]
        vy = y[i]
        rx[pos] = vx
        ry[pos] = vy
        if math.isfinite(vx) and math.isfinite(vy):
            if kset == 0:
                kx = vx
                ky = vy
                kset = 1
            dx = vx - kx
            dy = vy - ky
            sx, cx = neumaier_add_nb(sx, cx, dx)
            sy, cy = neumaier_add_nb(sy, cy, dy)
            sxx, cxx = neumaier_add_nb(sxx, cxx, dx * dx)
            sxy, cxy = neumaier_add_nb(sxy, cxy, dx * dy)
            run = run + 1 if (vx == prev and run > 0) else 1
        else:
            bad += 1
            run = 0
        prev = vx
        count += 1
        pos += 1
        if pos == w:
            pos = 0
        phase += 1
        valid = count >= w and bad == 0 and run < w
        recompute = phase == recompute_every
        if recompute:
            phase = 0
        elif valid:
            # var(x) is the denominator: re-centre when its cancellation grows (y's shift only
            # scales the error of cov by |mean(y) - Ky| / std(y), which Δclose keeps small)
            mx = (sx + cx) / n
            if mx * mx > RECENTER * ((sxx + cxx) / n - mx * mx):
                recompute = True
        if recompute:
            fstate[0], fstate[1] = kx, ky
            _recompute_ols(rx, ry, min(count, w), fstate)
            kx, ky = fstate[0], fstate[1]
            sx, sy, sxx, sxy = fstate[2], fstate[3], fstate[4], fstate[5]
            cx, cy, cxx, cxy = 0.0, 0.0, 0.0, 0.0
        if not valid:
            out[i] = np.nan
            continue
        tx = sx + cx
        var = (sxx + cxx) - tx * tx / n
        cov = (sxy + cxy) - tx * (sy + cy) / n
        out[i] = cov / var if var > 0.0 else np.nan
    istate[SLOT_COUNT] = count
    istate[SLOT_BAD] = bad
    istate[SLOT_RUN] = run
    istate[SLOT_KSET] = kset
    fstate[0], fstate[1] = kx, ky
    fstate[2], fstate[3], fstate[4], fstate[5] = sx, sy, sxx, sxy
    fstate[6], fstate[7], fstate[8], fstate[9] = cx, cy, cxx, cxy


@njit(cache=True)
def _recompute_index_slope(ring, count, fstate):
    """Exact S = sum(d_j), W = sum(j * d_j) over the window in time order (oldest j = 0)."""
    w = ring.shape[0]
    n = min(count, w)
    start = count % w if count >= w else 0
    total = 0.0
    m = 0
    for j in range(n):
        v = ring[(start + j) % w]
        if math.isfinite(v):
            total += v
            m += 1
    if m > 0:
        fstate[0] = total / m
    k = fstate[0]
    s = 0.0
    wsum = 0.0
    for j in range(n):
        v = ring[(start + j) % w]
        if math.isfinite(v):
            d = v - k
            s += d
            wsum += j * d
    fstate[1] = s
    fstate[2] = wsum


@njit(cache=True)
def rolling_index_slope_nb(x, ring, fstate, istate, recompute_every, out):
    """Rolling OLS slope of x against the bar index over the last `len(ring)` bars.

    slope = sum((j - jbar) * x_j) / sum((j - jbar)^2), j = 0..n-1 oldest to newest. The slope is
    shift invariant, so sums are kept of d = x - K. Sliding by one bar maps
    W = sum(j d_j) to W - (S - d_oldest) + (n - 1) d_new. NaN until full or while a non-finite
    value is inside.
    """
    w = ring.shape[0]
    nf = float(w)
    jbar = (nf - 1.0) / 2.0
    denom = nf * (nf * nf - 1.0) / 12.0
    count = istate[SLOT_COUNT]
    for i in range(x.shape[0]):
        pos = count % w
        v = x[i]
        finite = math.isfinite(v)
        if finite and istate[SLOT_KSET] == 0:
            fstate[0] = v
            istate[SLOT_KSET] = 1
        k = fstate[0]
        d_new = v - k if finite else 0.0
        if not finite:
            istate[SLOT_BAD] += 1
        if count >= w:
            old = ring[pos]
            if math.isfinite(old):
                d_old = old - k
            else:
                d_old = 0.0
                istate[SLOT_BAD] -= 1
            fstate[2] = fstate[2] - (fstate[1] - d_old) + (w - 1) * d_new
            fstate[1] = fstate[1] - d_old + d_new
        else:
            fstate[2] += count * d_new
            fstate[1] += d_new
        ring[pos] = v
        count += 1
        istate[SLOT_COUNT] = count
        if count % recompute_every == 0:
            _recompute_index_slope(ring, count, fstate)
        if count < w or istate[SLOT_BAD] > 0:
            out[i] = np.nan
        else:
            out[i] = (fstate[2] - jbar * fstate[1]) / denom
