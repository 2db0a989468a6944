"""Strategy A, order-flow momentum: follow persistent aggressive flow that is confirmed by activity.

Every condition reads the current row only (plus the previous row for the exit cross), so the
strategy is causal by construction. Params name the feature columns it reads:

| param | column | feature config that must produce it |
|---|---|---|
| `ofi_lookback` = 10 | `ofi_ema{ofi_lookback}` | `ofi_ema_spans` contains it |
| `delta_lookback` = 20 | `cum_delta_slope` | `cum_delta_slope_window` equals it (the name does not show it) |
| `zscore_window` = 20 | `trade_intensity_z{w}`, `large_trade_ratio_z{w}` | `zscore_windows` contains it, `zscore_features` has both |
| — | `avg_buy_size`, `avg_sell_size` | always produced |

Long entry on row t (all comparisons strict; a NaN input makes its condition False):
  gates (both): ofi_ema > ofi_threshold, cum_delta_slope > 0;
  confirmations (at least `min_confirmations`): trade_intensity_z > intensity_z, large_trade_ratio_z >
  large_trade_z, avg_buy_size > size_ratio * avg_sell_size.
Short entry mirrors the gates (ofi_ema < -ofi_threshold, slope < 0) and the size confirmation
(avg_sell_size > size_ratio * avg_buy_size). The two z-score confirmations keep the SAME positive
thresholds for shorts: they measure activity (how busy the tape is, how much of it is large
trades), not direction; the direction comes from the gates and the size asymmetry.

strength = 0.5 + n/3 where n is the number of confirmations met in the entry's direction
(so 7/6 with two, 1.5 with three); confidence = n/3. Rows without an entry: 1.0 / 0.0.

Exits (events): exit_long when the short entry condition holds, or when ofi_ema crosses back
through zero (ofi_ema[t] < 0 and ofi_ema[t-1] >= 0); exit_short mirrors it (> 0 after <= 0).
"""

from __future__ import annotations

from typing import Any

import polars as pl
from pydantic import Field

from strategies.base import (
    Strategy,
    StrategyParams,
    nan_safe_gt,
    nan_safe_lt,
    no_entry_defaults,
)


class MomentumParams(StrategyParams):
    """Parameters of strategy A (see the module docstring for the columns they select)."""

    ofi_lookback: int = Field(10, ge=1, le=1000, description="span of the OFI EMA column ofi_ema{span}")
    ofi_threshold: float = Field(0.15, gt=0, lt=1, description="|EMA(OFI)| gate; OFI lies in [-1, 1]")
    delta_lookback: int = Field(20, ge=2, le=10_000, description="window of cum_delta_slope (feature config)")
    zscore_window: int = Field(20, ge=2, le=10_000, description="window of the z-score columns")
    intensity_z: float = Field(1.5, ge=0, le=10, description="trade-intensity z-score confirmation")
    large_trade_z: float = Field(1.0, ge=0, le=10, description="large-trade-ratio z-score confirmation")
    size_ratio: float = Field(1.2, ge=1, le=10, description="avg size of the entry side vs the other side")
    min_confirmations: int = Field(2, ge=1, le=3, description="confirmations needed out of 3")


class OrderflowMomentum(Strategy):
    """Strategy A (registered as "orderflow_momentum")."""

    name = "orderflow_momentum"
    Params = MomentumParams

    def _columns(self, p: MomentumParams) -> dict[str, str]:
        return {
            "ofi": f"ofi_ema{p.ofi_lookback}",
            "slope": "cum_delta_slope",
            "intensity": f"trade_intensity_z{p.zscore_window}",
            "large": f"large_trade_ratio_z{p.zscore_window}",
            "buy_size": "avg_buy_size",
            "sell_size": "avg_sell_size",
        }

    def required_features(self, params: MomentumParams) -> list[str]:
        return list(self._columns(params).values())

    def required_feature_settings(self, params: MomentumParams) -> dict[str, Any]:
        return {"cum_delta_slope_window": params.delta_lookback}

    def warmup_bars(self, params: MomentumParams) -> int:
        return max(params.ofi_lookback - 1, params.delta_lookback - 1, params.zscore_window - 1)

    def lookback_bars(self, params: MomentumParams) -> int:
        return 2

    def compute(self, features: pl.DataFrame, params: MomentumParams) -> pl.DataFrame:
        c = {k: pl.col(v) for k, v in self._columns(params).items()}
        p = params
        activity = [nan_safe_gt(c["intensity"], p.intensity_z), nan_safe_gt(c["large"], p.large_trade_z)]
        n_long = pl.sum_horizontal(*activity, nan_safe_gt(c["buy_size"], p.size_ratio * c["sell_size"]))
        n_short = pl.sum_horizontal(*activity, nan_safe_gt(c["sell_size"], p.size_ratio * c["buy_size"]))
        long_gates = nan_safe_gt(c["ofi"], p.ofi_threshold) & nan_safe_gt(c["slope"], 0.0)
        short_gates = nan_safe_lt(c["ofi"], -p.ofi_threshold) & nan_safe_lt(c["slope"], 0.0)
        prev_ofi = c["ofi"].shift(1)
        out = features.select(
            "ts_event",
            (long_gates & (n_long >= p.min_confirmations)).alias("enter_long"),
            (short_gates & (n_short >= p.min_confirmations)).alias("enter_short"),
            n_long.cast(pl.Float64).alias("_n_long"),
            n_short.cast(pl.Float64).alias("_n_short"),
            (nan_safe_lt(c["ofi"], 0.0) & (prev_ofi >= 0.0).fill_null(False) & prev_ofi.is_not_nan().fill_null(False))
            .alias("_cross_down"),
            (nan_safe_gt(c["ofi"], 0.0) & (prev_ofi <= 0.0).fill_null(False) & prev_ofi.is_not_nan().fill_null(False))
            .alias("_cross_up"),
        )
        n = pl.when(pl.col("enter_long")).then(pl.col("_n_long")).otherwise(pl.col("_n_short"))
        entered = pl.col("enter_long") | pl.col("enter_short")
        return out.select(
            "ts_event",
            "enter_long",
            "enter_short",
            (pl.col("enter_short") | pl.col("_cross_down")).alias("exit_long"),
            (pl.col("enter_long") | pl.col("_cross_up")).alias("exit_short"),
            *no_entry_defaults(entered, 0.5 + n / 3.0, n / 3.0),
        )
