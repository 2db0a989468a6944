"""Rolling-window numba kernels with carried state (the primitives of the feature engine).

Every kernel processes one chunk of a series and carries everything it needs between chunks in
caller-owned state arrays (a ring buffer of the last `window` values, running sums in
`fstate`, counters in `istate`). The per-bar arithmetic depends only on that state and the
bar's input, never on where a chunk starts, so feeding a series in one call or in any split of
calls yields bit-identical outputs.

Window semantics follow pandas `rolling(window, min_periods=window)`: NaN until `window` values
have been seen, NaN while any non-finite value (NaN, ±inf) is inside the window.

Running sums drift in floating point. Each kernel therefore recomputes its sums exactly from the
ring buffer whenever its bar counter is a multiple of `recompute_every` (the wrappers in
`primitives` pass min(window, FeatureConfig.recompute_every)); the counter is the number of bars
the kernel has processed since the engine started, so the schedule is the same in batch and in
streaming. Between recomputes the sums are Neumaier-compensated: a value leaving the window
subtracts exactly the term it added, so a spike that has left no longer pollutes the sums.
Moment sums are kept about a shift `K` (the window mean at the last recompute, initially the
first finite value); when the window mean has moved so far from `K` that the variance would
suffer cancellation ((mean - K)^2 > RECENTER * variance), the kernel recomputes at once. That
trigger depends only on the state and the data, so it too fires at the same bars in batch and
streaming.

A window whose values are all identical is detected exactly (run length of equal consecutive
values), so "variance 0" never depends on rounding noise.

State layouts (`istate` int64, `fstate` float64) are private to each kernel; allocate them with
the `*_STATE` sizes below, zero-filled. Regression kernels (OLS slopes) are in
`kernels_regression`, built on the same conventions.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# istate slots shared by the rolling kernels
SLOT_COUNT = 0  # bars processed since start (global bar counter of this kernel)
SLOT_BAD = 1  # non-finite values currently inside the window
SLOT_RUN = 2  # length of the current run of identical finite values (x series)
SLOT_KSET = 3  # 1 once the shift K has been initialised

ROLLING_SUM_ISTATE = 2
ROLLING_SUM_FSTATE = 2  # sum, compensation
ROLLING_MOMENTS_ISTATE = 4
ROLLING_MOMENTS_FSTATE = 7  # K, S1, S2, S3 and their compensations

MODE_ZSCORE = 0
MODE_SKEW = 1
RECENTER = 1e3


@njit(cache=True)
def neumaier_add_nb(s, c, x):
    """Neumaier step: returns the new (sum, compensation) after adding x."""
    t = s + x
    if abs(s) >= abs(x):
        c += (s - t) + x
    else:
        c += (x - t) + s
    return t, c


@njit(cache=True)
def rolling_sum_nb(x, ring, fstate, istate, recompute_every, out):
    """Rolling sum of `x` over `len(ring)` bars, written to `out` (NaN until full / non-finite inside)."""
    w = ring.shape[0]
    count = istate[SLOT_COUNT]
    bad = istate[SLOT_BAD]
    s = fstate[0]
    c = fstate[1]
    pos = count % w
    phase = count % recompute_every
    for i in range(x.shape[0]):
        if count >= w:
            old = ring[pos]
            if math.isfinite(old):
                s, c = neumaier_add_nb(s, c, -old)
            else:
                bad -= 1
        v = x[i]
        ring[pos] = v
        if math.isfinite(v):
            s, c = neumaier_add_nb(s, c, v)
        else:
            bad += 1
        count += 1
        pos += 1
        if pos == w:
            pos = 0
        phase += 1
        if phase == recompute_every:
            phase = 0
            s = 0.0
            c = 0.0
            for j in range(min(count, w)):
                if math.isfinite(ring[j]):
                    s, c = neumaier_add_nb(s, c, ring[j])
        if count >= w and bad == 0:
            out[i] = s + c
        else:
            out[i] = np.nan
    istate[SLOT_COUNT] = count
    istate[SLOT_BAD] = bad
    fstate[0] = s
    fstate[1] = c


@njit(cache=True)
def _recompute_moments(ring, n, fstate):
    """Exact shifted power sums of the finite values in ring[:n]; K becomes their mean."""
    total = 0.0
    m = 0
    for j in range(n):
        if math.isfinite(ring[j]):
            total += ring[j]
            m += 1
    k = total / m if m > 0 else fstate[0]
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    for j in range(n):
        if math.isfinite(ring[j]):
            d = ring[j] - k
            s1 += d
            s2 += d * d
            s3 += d * d * d
    fstate[0] = k
    fstate[1] = s1
    fstate[2] = s2
    fstate[3] = s3
    fstate[4] = 0.0
    fstate[5] = 0.0
    fstate[6] = 0.0


@njit(cache=True)
def rolling_moments_nb(x, ring, fstate, istate, recompute_every, mode, out):
    """Rolling z-score (mode 0) or skewness (mode 1) over `len(ring)` bars.

    z = (x - mean) / std (ddof=1) of the window including the current bar.
    skew = sqrt(n(n-1))/(n-2) * m3 / m2^1.5 with central population moments (pandas' bias-
    corrected definition). NaN until full, while a non-finite value is inside, when the window
    is constant (exact run-length test) or its computed variance is not positive.
    """
    w = ring.shape[0]
    n = float(w)
    corr = math.sqrt(n * (n - 1.0)) / (n - 2.0) if w > 2 else np.nan
    skew = mode == MODE_SKEW
    count = istate[SLOT_COUNT]
    bad = istate[SLOT_BAD]
    run = istate[SLOT_RUN]
    kset = istate[SLOT_KSET]
    k, s1, s2, s3, c1, c2, c3 = fstate[0], fstate[1], fstate[2], fstate[3], fstate[4], fstate[5], fstate[6]
    pos = count % w
    phase = count % recompute_every
    prev = ring[(count - 1) % w] if count > 0 else np.nan
    for i in range(x.shape[0]):
        if count >= w:
            old = ring[pos]
            if math.isfinite(old):
                d = old - k
                s1, c1 = neumaier_add_nb(s1, c1, -d)
                s2, c2 = neumaier_add_nb(s2, c2, -(d * d))
                if skew:
                    s3, c3 = neumaier_add_nb(s3, c3, -(d * d * d))
            else:
                bad -= 1
        v = x[i]
        ring[pos] = v
        if math.isfinite(v):
            if kset == 0:
                k = v
                kset = 1
            d = v - k
            s1, c1 = neumaier_add_nb(s1, c1, d)
            s2, c2 = neumaier_add_nb(s2, c2, d * d)
            if skew:
                s3, c3 = neumaier_add_nb(s3, c3, d * d * d)
            run = run + 1 if v == prev else 1
        else:
            bad += 1
            run = 0
        prev = v
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
            mean_d = (s1 + c1) / n
            if mean_d * mean_d > RECENTER * ((s2 + c2) / n - mean_d * mean_d):
                recompute = True
        if recompute:
            fstate[0] = k
            _recompute_moments(ring, min(count, w), fstate)
            k, s1, s2, s3, c1, c2, c3 = fstate[0], fstate[1], fstate[2], fstate[3], 0.0, 0.0, 0.0
        if not valid:
            out[i] = np.nan
            continue
        t1 = s1 + c1
        t2 = s2 + c2
        if skew:
            a = t1 / n
            b = t2 / n
            c = (s3 + c3) / n
            m2 = b - a * a
            m3 = c - 3.0 * a * b + 2.0 * a * a * a
            out[i] = corr * m3 / (m2 * math.sqrt(m2)) if m2 > 0.0 else np.nan
        else:
            mean_d = t1 / n
            var = (t2 - t1 * mean_d) / (n - 1.0)
            out[i] = (v - k - mean_d) / math.sqrt(var) if var > 0.0 else np.nan
    istate[SLOT_COUNT] = count
    istate[SLOT_BAD] = bad
    istate[SLOT_RUN] = run
    istate[SLOT_KSET] = kset
    fstate[0], fstate[1], fstate[2], fstate[3], fstate[4], fstate[5], fstate[6] = k, s1, s2, s3, c1, c2, c3
