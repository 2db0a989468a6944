"""Strategy B, VWAP mean reversion: fade a stretch from the rolling VWAP once the push is exhausted.

Columns read (params select them; the feature config must produce them):
`vwap_deviation` (window = features.vwap_window, bound by the `vwap_window` param),
`ofi_ema{ofi_lookback}`, `realized_vol_{vol_window}`, `sell_volume`, `buy_volume`.

Definitions (row t; all comparisons strict; a NaN input makes its condition False):

- entry threshold e[t] = the `entry_quantile` quantile of |vwap_deviation| over the PREVIOUS
  `entry_window` rows t-W..t-1 (the current row excluded), linear interpolation between order
  statistics (Hyndman-Fan type 7, numpy's default estimator): with x the sorted window and
  h = (W-1)q, e = x[floor h] + (h - floor h) * (x[floor h + 1] - x[floor h]), evaluated in exactly
  this form. NaN until W previous rows exist and whenever one of them is NaN. Computed with polars
  `rolling_quantile(interpolation="linear")` shifted by one row, which evaluates exactly this
  expression (tested bit for bit against plain python; numpy.quantile evaluates the same estimator
  from the upper end for fractions >= 0.5 and can differ in the last bit).
- flow quiet: |ofi_ema| < ofi_band.
- volatility falling: realized_vol[t] < realized_vol[t - vol_fall_bars].
- side volume falling: the OLS slope of sell_volume (long) / buy_volume (short) against the bar
  index over rows t-n+1..t (n = flow_slope_bars) is < 0. Only its sign matters, so it is
  evaluated as sum_k (2k - n + 1) * v[t-n+1+k] < 0 (twice the slope's numerator: integer
  weights, no division).

enter_long: vwap_deviation < -e AND flow quiet AND volatility falling AND sell volume falling.
enter_short: vwap_deviation > e AND flow quiet AND volatility falling AND buy volume falling.
exit_long = exit_short = |vwap_deviation| < deviation_exit (reverted; stops are the engine's), except
that an entry row never carries the exit of its own direction.
strength = min(1.5, 0.5 + 0.5 * |vwap_deviation| / e) — above 1.0 on every entry, 1.5 from twice the
threshold on; confidence = strength - 0.5.
"""

from __future__ import annotations

from typing import Any

import polars as pl
from pydantic import Field

from strategies.base import (
    MAX_STRENGTH,
    Strategy,
    StrategyParams,
    nan_safe_gt,
    nan_safe_lt,
    no_entry_defaults,
)


class ReversionParams(StrategyParams):
    """Parameters of strategy B (see the module docstring)."""

    entry_window: int = Field(500, ge=2, le=100_000, description="previous bars of the |deviation| quantile")
    entry_quantile: float = Field(0.90, gt=0, lt=1, description="quantile of |vwap_deviation| that is a stretch")
    ofi_lookback: int = Field(10, ge=1, le=1000, description="span of the OFI EMA column ofi_ema{span}")
    ofi_band: float = Field(0.08, gt=0, lt=1, description="|EMA(OFI)| below this = flow quiet")
    vol_window: int = Field(20, ge=1, le=100_000, description="window of the realized_vol_{N} column")
    vol_fall_bars: int = Field(3, ge=1, le=1000, description="realized vol below its value this many bars ago")
    flow_slope_bars: int = Field(5, ge=2, le=200, description="bars of the side-volume OLS slope")
    deviation_exit: float = Field(0.0002, gt=0, lt=1, description="|vwap_deviation| below this = reverted, exit")
    vwap_window: int = Field(20, ge=1, le=100_000, description="features.vwap_window behind vwap_deviation")


def entry_threshold(deviation: pl.Expr, window: int, quantile: float) -> pl.Expr:
    """Causal rolling quantile of |deviation| over the previous `window` rows (see module docstring)."""
    absdev = deviation.abs()
    q = absdev.rolling_quantile(quantile, interpolation="linear", window_size=window, min_samples=window)
    # polars' rolling_quantile sorts NaN in as a large number instead of propagating it.
    nan_in_window = absdev.is_nan().cast(pl.Int64).rolling_sum(window_size=window, min_samples=window) > 0
    return pl.when(nan_in_window).then(float("nan")).otherwise(q).shift(1).fill_null(float("nan"))


def _slope_negative(volume: pl.Expr, n: int) -> pl.Expr:
    numerator = pl.sum_horizontal(*[(2 * k - n + 1) * volume.shift(n - 1 - k) for k in range(n)])
    # sum_horizontal skips nulls: the first n-1 rows must not pass as a full window.
    full = pl.int_range(pl.len()) >= n - 1
    return full & nan_safe_lt(numerator, 0.0)


class VwapReversion(Strategy):
    """Strategy B (registered as "vwap_reversion")."""

    name = "vwap_reversion"
    Params = ReversionParams

    def required_features(self, params: ReversionParams) -> list[str]:
        return ["vwap_deviation", f"ofi_ema{params.ofi_lookback}", f"realized_vol_{params.vol_window}",
                "sell_volume", "buy_volume"]

    def required_feature_settings(self, params: ReversionParams) -> dict[str, Any]:
        return {"vwap_window": params.vwap_window}

    def warmup_bars(self, params: ReversionParams) -> int:
        return max(params.vwap_window - 1 + params.entry_window, params.ofi_lookback - 1,
                   params.vol_window - 1 + params.vol_fall_bars, params.flow_slope_bars - 1)

    def lookback_bars(self, params: ReversionParams) -> int:
        return max(params.entry_window + 1, params.vol_fall_bars + 1, params.flow_slope_bars)

    def compute(self, features: pl.DataFrame, params: ReversionParams) -> pl.DataFrame:
        p = params
        dev = pl.col("vwap_deviation")
        rv = pl.col(f"realized_vol_{p.vol_window}")
        rv_then = rv.shift(p.vol_fall_bars).fill_null(float("nan"))
        common = nan_safe_lt(pl.col(f"ofi_ema{p.ofi_lookback}").abs(), p.ofi_band) & nan_safe_lt(rv, rv_then)
        staged = features.select(
            "ts_event",
            dev.alias("_dev"),
            entry_threshold(dev, p.entry_window, p.entry_quantile).alias("_e"),
            common.alias("_common"),
            _slope_negative(pl.col("sell_volume"), p.flow_slope_bars).alias("_sell_falling"),
            _slope_negative(pl.col("buy_volume"), p.flow_slope_bars).alias("_buy_falling"),
        )
        dev, e = pl.col("_dev"), pl.col("_e")
        enter_long = nan_safe_lt(dev, -e) & pl.col("_common") & pl.col("_sell_falling")
        enter_short = nan_safe_gt(dev, e) & pl.col("_common") & pl.col("_buy_falling")
        reverted = nan_safe_lt(dev.abs(), p.deviation_exit)
        strength = pl.min_horizontal(pl.lit(MAX_STRENGTH), 0.5 + 0.5 * dev.abs() / e)
        staged = staged.with_columns(enter_long.alias("enter_long"), enter_short.alias("enter_short"),
                                     reverted.alias("_reverted"))
        entered = pl.col("enter_long") | pl.col("enter_short")
        return staged.select(
            "ts_event",
            "enter_long",
            "enter_short",
            (pl.col("_reverted") & ~pl.col("enter_long")).alias("exit_long"),
            (pl.col("_reverted") & ~pl.col("enter_short")).alias("exit_short"),
            *no_entry_defaults(entered, strength, strength - 0.5),
        )
