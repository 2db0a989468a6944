"""Filter C, volatility regime: which family sources may open positions, and at what size.

Reads `vol_ratio` (= realized_vol_short / realized_vol_long, features.realized_vol_short/long),
`duration_ratio` (features.duration_window) and `price_impact_z{impact_z_window}`; row-wise only.

Classification, checked in this order (all comparisons strict: a value equal to a threshold does
not meet it):

1. EXTREME if vol_ratio > extreme_vol_ratio (3) OR price_impact_z > extreme_impact_z (3): no new
   positions, flatten. One finite extreme reading is enough even while the other input is NaN:
   NaN never proves calm, but an extreme value proves danger.
2. UNKNOWN if any of the three inputs is NaN (warm-up, or a ratio with a zero denominator): no
   entries, no flatten.
3. HIGH_VOL (expansion) if vol_ratio > high_vol_ratio (1.8) AND duration_ratio < high_vol_duration_ratio
   (0.5; bars closing fast): source A only.
4. LOW_VOL (contraction) if vol_ratio < low_vol_ratio (0.6) AND duration_ratio > low_vol_duration_ratio
   (2.0; bars closing slowly): source B only, with the family's looser entry quantile.
5. NORMAL otherwise: A and B.

regime_factor (a sizing multiplier for the engine): NORMAL `normal_factor` (1.0), HIGH_VOL
`high_vol_factor` (0.5), LOW_VOL `low_vol_factor` (0.7), EXTREME and UNKNOWN 0.0.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import polars as pl
from pydantic import Field, model_validator

from strategies.base import StrategyParams, nan_safe_gt, nan_safe_lt, prepare_features


class Regime(IntEnum):
    """Regime codes of the `regime` signal column (numba kernels store the int)."""

    UNKNOWN = 0
    NORMAL = 1
    HIGH_VOL = 2
    LOW_VOL = 3
    EXTREME = 4


REGIME_SCHEMA: dict[str, pl.DataType] = {
    "ts_event": pl.Int64,
    "regime": pl.Int64,
    "regime_factor": pl.Float64,
    "flatten": pl.Boolean,
}


class RegimeParams(StrategyParams):
    """Thresholds and sizing factors of filter C (see the module docstring)."""

    extreme_vol_ratio: float = Field(3.0, gt=0, le=100)
    extreme_impact_z: float = Field(3.0, gt=0, le=100)
    high_vol_ratio: float = Field(1.8, gt=0, le=100)
    high_vol_duration_ratio: float = Field(0.5, gt=0, le=100)
    low_vol_ratio: float = Field(0.6, gt=0, le=100)
    low_vol_duration_ratio: float = Field(2.0, gt=0, le=100)
    normal_factor: float = Field(1.0, gt=0, le=1)
    high_vol_factor: float = Field(0.5, gt=0, le=1)
    low_vol_factor: float = Field(0.7, gt=0, le=1)
    impact_z_window: int = Field(100, ge=2, le=100_000, description="window of price_impact_z{N}")
    vol_short_window: int = Field(20, ge=1, le=100_000, description="features.realized_vol_short")
    vol_long_window: int = Field(200, ge=2, le=100_000, description="features.realized_vol_long")
    duration_window: int = Field(50, ge=1, le=100_000, description="features.duration_window")

    @model_validator(mode="after")
    def _ordered(self) -> RegimeParams:
        if not self.low_vol_ratio < self.high_vol_ratio < self.extreme_vol_ratio:
            raise ValueError(
                f"need low_vol_ratio < high_vol_ratio < extreme_vol_ratio, got {self.low_vol_ratio}, "
                f"{self.high_vol_ratio}, {self.extreme_vol_ratio}"
            )
        if not self.high_vol_duration_ratio < self.low_vol_duration_ratio:
            raise ValueError(
                f"need high_vol_duration_ratio < low_vol_duration_ratio, got {self.high_vol_duration_ratio}, "
                f"{self.low_vol_duration_ratio}"
            )
        if self.vol_short_window >= self.vol_long_window:
            raise ValueError(f"need vol_short_window < vol_long_window, got {self.vol_short_window}, "
                             f"{self.vol_long_window}")
        return self


def regime_columns(params: RegimeParams) -> list[str]:
    """Feature columns filter C reads."""
    return ["vol_ratio", "duration_ratio", f"price_impact_z{params.impact_z_window}"]


def regime_feature_settings(params: RegimeParams) -> dict[str, Any]:
    """FeatureConfig values the regime params assume (see `check_feature_config`)."""
    return {"realized_vol_short": params.vol_short_window, "realized_vol_long": params.vol_long_window,
            "duration_window": params.duration_window}


def regime_warmup_bars(params: RegimeParams) -> int:
    """First row with every input defined on clean input."""
    return max(params.vol_long_window - 1, params.duration_window - 1, params.impact_z_window - 1)


def classify_regimes(features: pl.DataFrame, params: RegimeParams) -> pl.DataFrame:
    """`REGIME_SCHEMA` frame, one row per feature row (raises `SchemaError` on missing columns)."""
    clean = prepare_features(features, regime_columns(params), where="vol_regime input")
    return regime_frame(clean, params)


def regime_frame(clean: pl.DataFrame, params: RegimeParams) -> pl.DataFrame:
    """`classify_regimes` on a frame already checked by `prepare_features`."""
    p = params
    vr, dr, iz = (pl.col(c) for c in regime_columns(p))
    extreme = nan_safe_gt(vr, p.extreme_vol_ratio) | nan_safe_gt(iz, p.extreme_impact_z)
    unknown = vr.is_nan() | dr.is_nan() | iz.is_nan()
    high = nan_safe_gt(vr, p.high_vol_ratio) & nan_safe_lt(dr, p.high_vol_duration_ratio)
    low = nan_safe_lt(vr, p.low_vol_ratio) & nan_safe_gt(dr, p.low_vol_duration_ratio)
    regime = (
        pl.when(extreme).then(int(Regime.EXTREME))
        .when(unknown).then(int(Regime.UNKNOWN))
        .when(high).then(int(Regime.HIGH_VOL))
        .when(low).then(int(Regime.LOW_VOL))
        .otherwise(int(Regime.NORMAL))
        .cast(pl.Int64)
    )
    factor = (
        pl.when(pl.col("regime") == int(Regime.NORMAL)).then(p.normal_factor)
        .when(pl.col("regime") == int(Regime.HIGH_VOL)).then(p.high_vol_factor)
        .when(pl.col("regime") == int(Regime.LOW_VOL)).then(p.low_vol_factor)
        .otherwise(0.0)
        .cast(pl.Float64)
    )
    return (
        clean.select("ts_event", regime.alias("regime"))
        .with_columns(factor.alias("regime_factor"), (pl.col("regime") == int(Regime.EXTREME)).alias("flatten"))
    )
