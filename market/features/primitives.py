"""Stateful wrappers around the numba kernels: each owns its state arrays and maps a chunk of
input to a chunk of output. The feature engine is a composition of these objects.

Inputs are passed to kernels as read-only C-contiguous float64 views (`as_input`) and outputs
are fresh writable arrays, so every kernel is compiled for exactly one signature whether the
data came from polars (read-only, zero-copy) or from another kernel.
"""

from __future__ import annotations

import numpy as np

from market.features import kernels as rk
from market.features import kernels_recursive as ck
from market.features import kernels_regression as gk


def as_input(a: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """Read-only C-contiguous view (copy only when dtype/layout require it)."""
    out = np.ascontiguousarray(a, dtype=dtype).view()
    out.flags.writeable = False
    return out


def _out(n: int, out: np.ndarray | None) -> np.ndarray:
    """`out` when the caller supplies a destination (a row of the engine's output matrix)."""
    return np.empty(n) if out is None else out


def _period(window: int, recompute_every: int) -> int:
    """Sums are re-derived at least once per window length, so the shift K used for the power
    sums is never older than one window and drift never spans more than one window of updates."""
    return max(1, min(window, recompute_every))


class RollingSum:
    """Rolling sum over `window` bars (pandas min_periods=window semantics)."""

    def __init__(self, window: int, recompute_every: int):
        self.ring = np.zeros(window)
        self.fstate = np.zeros(rk.ROLLING_SUM_FSTATE)
        self.istate = np.zeros(rk.ROLLING_SUM_ISTATE, dtype=np.int64)
        self.recompute_every = _period(window, recompute_every)

    def __call__(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        out = _out(x.shape[0], out)
        rk.rolling_sum_nb(as_input(x), self.ring, self.fstate, self.istate, self.recompute_every, out)
        return out


class _RollingMoments:
    _mode = -1

    def __init__(self, window: int, recompute_every: int):
        self.ring = np.zeros(window)
        self.fstate = np.zeros(rk.ROLLING_MOMENTS_FSTATE)
        self.istate = np.zeros(rk.ROLLING_MOMENTS_ISTATE, dtype=np.int64)
        self.recompute_every = _period(window, recompute_every)

    def __call__(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        out = _out(x.shape[0], out)
        rk.rolling_moments_nb(as_input(x), self.ring, self.fstate, self.istate, self.recompute_every, self._mode, out)
        return out


class RollingZScore(_RollingMoments):
    """(x - rolling mean) / rolling std (ddof=1), window including the current bar."""

    _mode = rk.MODE_ZSCORE


class RollingSkew(_RollingMoments):
    """Bias-corrected rolling skewness (pandas' definition)."""

    _mode = rk.MODE_SKEW


class RollingOLSSlope:
    """Rolling OLS slope of y on x: cov(x, y) / var(x)."""

    def __init__(self, window: int, recompute_every: int):
        self.rx = np.zeros(window)
        self.ry = np.zeros(window)
        self.fstate = np.zeros(gk.ROLLING_OLS_FSTATE)
        self.istate = np.zeros(gk.ROLLING_OLS_ISTATE, dtype=np.int64)
        self.recompute_every = _period(window, recompute_every)

    def __call__(self, x: np.ndarray, y: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        out = _out(x.shape[0], out)
        gk.rolling_ols_slope_nb(as_input(x), as_input(y), self.rx, self.ry, self.fstate, self.istate,
                                self.recompute_every, out)
        return out


class RollingIndexSlope:
    """Rolling OLS slope of x against the bar index."""

    def __init__(self, window: int, recompute_every: int):
        self.ring = np.zeros(window)
        self.fstate = np.zeros(gk.INDEX_SLOPE_FSTATE)
        self.istate = np.zeros(gk.INDEX_SLOPE_ISTATE, dtype=np.int64)
        self.recompute_every = _period(window, recompute_every)

    def __call__(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        out = _out(x.shape[0], out)
        gk.rolling_index_slope_nb(as_input(x), self.ring, self.fstate, self.istate, self.recompute_every, out)
        return out


class EMA:
    """pandas ewm(span, adjust=False, min_periods=span).mean()."""

    def __init__(self, span: int):
        self.span = span
        self.alpha = 2.0 / (span + 1.0)
        self.fstate = np.zeros(ck.EMA_FSTATE)
        self.istate = np.zeros(ck.EMA_ISTATE, dtype=np.int64)

    def __call__(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        out = _out(x.shape[0], out)
        ck.ema_nb(as_input(x), self.alpha, self.span, self.fstate, self.istate, out)
        return out


class WilderATR:
    """Wilder average true range."""

    def __init__(self, period: int):
        self.period = period
        self.fstate = np.zeros(ck.ATR_FSTATE)
        self.istate = np.zeros(ck.ATR_ISTATE, dtype=np.int64)

    def __call__(self, high: np.ndarray, low: np.ndarray, close: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        out = _out(high.shape[0], out)
        ck.wilder_atr_nb(as_input(high), as_input(low), as_input(close), self.period, self.fstate, self.istate, out)
        return out


class WilderRSI:
    """Wilder relative strength index."""

    def __init__(self, period: int):
        self.period = period
        self.fstate = np.zeros(ck.RSI_FSTATE)
        self.istate = np.zeros(ck.RSI_ISTATE, dtype=np.int64)

    def __call__(self, close: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        out = _out(close.shape[0], out)
        ck.wilder_rsi_nb(as_input(close), self.period, self.fstate, self.istate, out)
        return out


class WilderADX:
    """Wilder +DI, -DI and ADX."""

    def __init__(self, period: int):
        self.period = period
        self.fstate = np.zeros(ck.ADX_FSTATE)
        self.istate = np.zeros(ck.ADX_ISTATE, dtype=np.int64)

    def __call__(self, high: np.ndarray, low: np.ndarray, close: np.ndarray, plus_di: np.ndarray | None = None,
                 minus_di: np.ndarray | None = None, adx: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        n = high.shape[0]
        plus_di, minus_di, adx = _out(n, plus_di), _out(n, minus_di), _out(n, adx)
        ck.wilder_adx_nb(as_input(high), as_input(low), as_input(close), self.period, self.fstate, self.istate,
                         plus_di, minus_di, adx)
        return plus_di, minus_di, adx
