"""EMA crossover (long only): the reference "custom Python strategy" and the benchmark strategy.

It plugs in exactly like a user's own strategy would: subclass `Strategy`, declare `Params`,
implement `compute`, `registry.register(EmaCross())` (done in `strategies/__init__.py`).

The EMAs are computed here from `close` (not taken from the feature columns), because the
benchmark compares against vectorbt / pandas, whose arithmetic is reproduced bit for bit:
alpha = 1 / (1 + (span - 1)/2) (= 2/(span+1)), seeded with the first close, then
  y[t] = ((1 - alpha) * y[t-1] + alpha * x[t]) / ((1 - alpha) + alpha)   unless y[t-1] == x[t],
i.e. pandas `ewm(span, adjust=False, min_periods=span).mean()`: NaN on the first span-1 rows.
Because the recursion is seeded at the first row of the frame, the signals depend on the whole
history (`lookback_bars` is None).

enter_long[t] = fast[t] > slow[t] and fast[t-1] <= slow[t-1]; exit_long[t] = fast[t] < slow[t] and
fast[t-1] >= slow[t-1]; False where any of the four values is NaN, so the first possible cross is
row `slow_span`. (vectorbt's `crossed_above` differs only on exact ties: it needs fast < slow
strictly at some earlier bar.) Entries: strength 1.0, confidence 1.0 (a binary rule).
"""

from __future__ import annotations

import numpy as np
import polars as pl
from numba import njit
from pydantic import Field, model_validator

from core.errors import DataError
from strategies.base import Strategy, StrategyParams, no_entry_defaults


@njit(cache=True)
def ema_adjust_false_nb(x: np.ndarray, span: int) -> np.ndarray:
    """pandas `Series.ewm(span=span, adjust=False, min_periods=span).mean()` for finite `x`."""
    n = x.shape[0]
    out = np.empty(n, dtype=np.float64)
    if n == 0:
        return out
    alpha = 1.0 / (1.0 + (span - 1) / 2.0)
    old_wt_factor = 1.0 - alpha
    y = x[0]
    out[0] = y if span <= 1 else np.nan
    for i in range(1, n):
        cur = x[i]
        if y != cur:
            y = (old_wt_factor * y + alpha * cur) / (old_wt_factor + alpha)
        out[i] = y if i + 1 >= span else np.nan
    return out


class EmaCrossParams(StrategyParams):
    """Fast and slow EMA spans (bars) of close."""

    fast_span: int = Field(12, ge=1, le=100_000)
    slow_span: int = Field(48, ge=2, le=100_000)

    @model_validator(mode="after")
    def _ordered(self) -> EmaCrossParams:
        if self.fast_span >= self.slow_span:
            raise ValueError(f"fast_span ({self.fast_span}) must be < slow_span ({self.slow_span})")
        return self


class EmaCross(Strategy):
    """Long-only EMA crossover (registered as "ema_cross")."""

    name = "ema_cross"
    Params = EmaCrossParams

    def required_features(self, params: EmaCrossParams) -> list[str]:
        return ["close"]

    def warmup_bars(self, params: EmaCrossParams) -> int:
        return params.slow_span

    def lookback_bars(self, params: EmaCrossParams) -> None:
        return None

    def compute(self, features: pl.DataFrame, params: EmaCrossParams) -> pl.DataFrame:
        close = features.get_column("close").to_numpy()
        if not np.isfinite(close).all():
            row = int(np.flatnonzero(~np.isfinite(close))[0])
            raise DataError(f"close is not finite ({close[row]!r})", source="strategy 'ema_cross' input",
                            line=row + 1)
        close = np.ascontiguousarray(close, dtype=np.float64)
        emas = features.select("ts_event").with_columns(
            pl.Series("_fast", ema_adjust_false_nb(close, params.fast_span)),
            pl.Series("_slow", ema_adjust_false_nb(close, params.slow_span)),
        )
        f, s = pl.col("_fast"), pl.col("_slow")
        fp, sp = f.shift(1), s.shift(1)
        defined = (f.is_not_nan() & s.is_not_nan() & fp.is_not_nan() & sp.is_not_nan()).fill_null(False)
        up = (defined & (f > s) & (fp <= sp)).fill_null(False)
        down = (defined & (f < s) & (fp >= sp)).fill_null(False)
        return emas.select(
            "ts_event",
            up.alias("enter_long"),
            pl.lit(False).alias("enter_short"),
            down.alias("exit_long"),
            pl.lit(False).alias("exit_short"),
            *no_entry_defaults(up, pl.lit(1.0), pl.lit(1.0)),
        )
