"""A small, explicit random number generator for the synthesis kernels: xoshiro256** seeded by splitmix64.

Why not numpy's or numba's global RNG: numba's `np.random` state is a per-thread global that any other
kernel in the process may advance, and its normal/exponential algorithms are not promised stable across
numba versions. Synthetic fixtures must be bit-identical for the same seed on every machine, and a
generator run in chunks must give the same stream as one run in one go. So the state lives in a
caller-owned `uint64[4]` array (plus a `float64[2]` cache for the spare normal of the polar method),
and every draw is a plain function of that state.

Reference: Blackman & Vigna, "Scrambled linear pseudorandom number generators" (2018).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_MASK64 = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_U30 = np.uint64(30)
_U27 = np.uint64(27)
_U31 = np.uint64(31)
_U11 = np.uint64(11)
_U17 = np.uint64(17)
_U5 = np.uint64(5)
_U9 = np.uint64(9)
_INV_2_53 = 1.0 / 9007199254740992.0


def seed_state(seed: int) -> np.ndarray:
    """xoshiro256** state (uint64[4]) from any non-negative integer seed, via splitmix64 (pure Python)."""
    x = int(seed) & _MASK64
    words = []
    for _ in range(4):
        x = (x + 0x9E3779B97F4A7C15) & _MASK64
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        words.append(z ^ (z >> 31))
    return np.array(words, dtype=np.uint64)


@njit(cache=True, inline="always")
def splitmix64_nb(x):
    """One splitmix64 output for the uint64 input `x` (used to derive independent per-item seeds)."""
    z = x + _GOLDEN
    z = (z ^ (z >> _U30)) * _MIX1
    z = (z ^ (z >> _U27)) * _MIX2
    return z ^ (z >> _U31)


@njit(cache=True)
def seed_state_nb(key, s):
    """Fill `s` (uint64[4]) from a uint64 key; same algorithm as `seed_state` (splitmix64 sequence)."""
    x = key
    for i in range(4):
        x = x + _GOLDEN
        z = x
        z = (z ^ (z >> _U30)) * _MIX1
        z = (z ^ (z >> _U27)) * _MIX2
        s[i] = z ^ (z >> _U31)


@njit(cache=True, inline="always")
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@njit(cache=True, inline="always")
def next_u64_nb(s):
    """Next raw 64-bit output of xoshiro256**; advances `s` in place."""
    s0 = s[0]
    s1 = s[1]
    s2 = s[2]
    s3 = s[3]
    result = _rotl(s1 * _U5, 7) * _U9
    t = s1 << _U17
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    s[0] = s0
    s[1] = s1
    s[2] = s2
    s[3] = s3
    return result


@njit(cache=True, inline="always")
def uniform_nb(s):
    """Uniform double in [0, 1) with 53 random bits."""
    return float(next_u64_nb(s) >> _U11) * _INV_2_53


@njit(cache=True, inline="always")
def uniform_pos_nb(s):
    """Uniform double in (0, 1]: safe to take the log of."""
    return 1.0 - uniform_nb(s)


@njit(cache=True, inline="always")
def exponential_nb(s):
    """Standard exponential (mean 1) by inversion."""
    return -math.log(uniform_pos_nb(s))


@njit(cache=True)
def normal_nb(s, spare):
    """Standard normal by Marsaglia's polar method; `spare` (float64[2]) caches the second variate.

    spare[0] = 1.0 when spare[1] holds an unused variate. Keeping it in caller-owned state (not a
    global) is what makes a chunked run identical to a single run.
    """
    if spare[0] != 0.0:
        spare[0] = 0.0
        return spare[1]
    while True:
        u = 2.0 * uniform_nb(s) - 1.0
        v = 2.0 * uniform_nb(s) - 1.0
        q = u * u + v * v
        if 0.0 < q < 1.0:
            f = math.sqrt(-2.0 * math.log(q) / q)
            spare[0] = 1.0
            spare[1] = v * f
            return u * f
