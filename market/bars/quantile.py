"""Exact quantile of a ring buffer of trade sizes, bit-identical to `np.quantile` (linear)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_SAMPLE = 512  # sample size for choosing the selection band
_SAMPLE_MIN_N = 4096  # below this a plain partition is as fast


@njit(cache=True)
def _two_smallest_from_nb(a, k):
    """(a_(k), a_(k+1)): the k-th and (k+1)-th order statistics (0-based) of `a`, k + 1 < len(a)."""
    part = np.partition(a, k)
    b = part[k + 1]
    for j in range(k + 2, part.shape[0]):
        if part[j] < b:
            b = part[j]
    return part[k], b


@njit(cache=True)
def _order_pair_nb(x, k):
    """(x_(k), x_(k+1)) of `x` (k + 1 < len(x)) in about one pass for large arrays.

    Floyd-Rivest style: order statistics of an evenly strided sample bracket the target ranks by a
    band [u, v]; one branch-free pass counts the values below u and gathers the values inside the
    band, and a small selection inside the band finishes. The result is exact whatever the sample:
    if the band misses the targets (rare), it falls back to a full partition.
    """
    n = x.shape[0]
    if n < _SAMPLE_MIN_N:
        return _two_smallest_from_nb(x, k)
    s = _SAMPLE
    stride = n // s
    sample = np.empty(s, dtype=np.float64)
    for j in range(s):
        sample[j] = x[j * stride]
    p = (k + 0.5) / n
    centre = p * s
    margin = 3.5 * math.sqrt(s * p * (1.0 - p)) + 2.0  # 3.5 sigma of the sample rank, plus slack
    iu = int(math.floor(centre - margin))
    iv = int(math.ceil(centre + margin))
    u = -np.inf if iu < 0 else np.partition(sample, iu)[iu]
    v = np.inf if iv >= s else np.partition(sample, iv)[iv]
    band = np.empty(n, dtype=np.float64)
    below = 0
    m = 0
    for j in range(n):
        xj = x[j]
        below += xj < u
        band[m] = xj
        m += (xj >= u) & (xj <= v)
    kb = k - below
    if kb < 0 or kb + 1 >= m:
        return _two_smallest_from_nb(x, k)
    return _two_smallest_from_nb(band[:m], kb)


@njit(cache=True)
def ring_quantile_nb(ring, q):
    """Exact quantile of `ring` with linear interpolation, bit-identical to `np.quantile(ring, q)`.

    O(n) selection instead of a sort; the interpolation replicates numpy's `_lerp` (which switches
    to interpolating from the upper neighbour when the weight is >= 0.5).
    """
    n = ring.shape[0]
    v = (n - 1) * q
    if v >= n - 1:
        return np.max(ring)
    lo = int(math.floor(v))
    g = v - lo
    a, b = _order_pair_nb(ring, lo)
    diff = b - a
    if g >= 0.5:
        return b - diff * (1.0 - g)
    return a + diff * g
