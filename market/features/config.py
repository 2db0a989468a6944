"""Configuration of the feature engine and the layout it implies (column names, warm-ups).

Every window/span is a parameter. Column names embed the parameter only for list-valued
parameters (`ema12`, `atr100`, `ofi_ema5`, `realized_vol_200`, `ofi_z100`); single-window
features keep a fixed name (`rvwap`, `kyle_lambda`, `rsi`, `adx`, ...).
"""

from __future__ import annotations


from pydantic import model_validator

from core.config import FrozenConfig

_IntTuple = tuple[int, ...]


class FeatureConfig(FrozenConfig):
    """Windows and spans of every feature (in bars). Invalid values raise `ConfigError`."""

    vwap_window: int = 20
    realized_vol_short: int = 20
    realized_vol_long: int = 200
    kyle_window: int = 50
    atr_periods: _IntTuple = (14, 100)
    ema_spans: _IntTuple = (12, 48)
    sma_windows: _IntTuple = (20,)
    rsi_period: int = 14
    adx_period: int = 14
    skew_window: int = 50
    ofi_ema_spans: _IntTuple = (5, 10)
    cum_delta_slope_window: int = 20
    duration_window: int = 50
    zscore_features: tuple[str, ...] = ("ofi", "trade_intensity", "large_trade_ratio", "price_impact", "delta")
    zscore_windows: _IntTuple = (20, 100, 500)
    # Running window sums are recomputed exactly from their ring buffers every min(window, this)
    # bars of each kernel's global bar counter: bounds floating-point drift, same in batch and streaming.
    recompute_every: int = 128

    @model_validator(mode="after")
    def _check(self) -> FeatureConfig:
        minimum = {
            "vwap_window": 1, "realized_vol_short": 1, "realized_vol_long": 1, "kyle_window": 2,
            "rsi_period": 1, "adx_period": 1, "skew_window": 3, "cum_delta_slope_window": 2,
            "duration_window": 1, "recompute_every": 1,
        }
        for name, lo in minimum.items():
            if getattr(self, name) < lo:
                raise ValueError(f"{name} must be >= {lo}, got {getattr(self, name)}")
        tuple_minimum = {"atr_periods": 1, "ema_spans": 1, "sma_windows": 1, "ofi_ema_spans": 1, "zscore_windows": 2}
        for name, lo in tuple_minimum.items():
            values = getattr(self, name)
            if any(v < lo for v in values):
                raise ValueError(f"{name} values must be >= {lo}, got {values}")
            if len(set(values)) != len(values):
                raise ValueError(f"{name} has duplicates: {values}")
        if self.realized_vol_short >= self.realized_vol_long:
            raise ValueError(
                f"realized_vol_short ({self.realized_vol_short}) must be < realized_vol_long ({self.realized_vol_long})"
            )
        valid = list(base_feature_warmups(self))
        unknown = [f for f in self.zscore_features if f not in valid]
        if unknown:
            raise ValueError(f"zscore_features: unknown feature(s) {unknown}; valid names: {valid}")
        if len(set(self.zscore_features)) != len(self.zscore_features):
            raise ValueError(f"zscore_features has duplicates: {self.zscore_features}")
        return self


def base_feature_warmups(cfg: FeatureConfig) -> dict[str, int]:
    """Every non-z-score column in output order -> index of its first non-NaN value on clean input."""
    w: dict[str, int] = {}
    for name in ("ofi", "delta", "cum_delta", "buy_count", "sell_count", "avg_buy_size", "avg_sell_size",
                 "large_trade_ratio"):
        w[name] = 0
    w["rvwap"] = cfg.vwap_window - 1
    w["vwap_deviation"] = cfg.vwap_window - 1
    for name in ("buy_sell_vwap_diff", "trade_intensity", "price_impact", "uptick_ratio"):
        w[name] = 0
    w[f"realized_vol_{cfg.realized_vol_short}"] = cfg.realized_vol_short - 1
    w[f"realized_vol_{cfg.realized_vol_long}"] = cfg.realized_vol_long - 1
    w["vol_ratio"] = cfg.realized_vol_long - 1
    w["kyle_lambda"] = cfg.kyle_window  # needs window close changes; the first bar has none
    for n in cfg.atr_periods:
        w[f"atr{n}"] = n - 1
    for s in cfg.ema_spans:
        w[f"ema{s}"] = s - 1
    for s in cfg.sma_windows:
        w[f"sma{s}"] = s - 1
    w["rsi"] = cfg.rsi_period
    w["plus_di"] = cfg.adx_period
    w["minus_di"] = cfg.adx_period
    w["adx"] = 2 * cfg.adx_period - 1
    w["return_skew"] = cfg.skew_window  # log returns start at bar 1
    for s in cfg.ofi_ema_spans:
        w[f"ofi_ema{s}"] = s - 1
    w["cum_delta_slope"] = cfg.cum_delta_slope_window - 1
    w["duration_ratio"] = cfg.duration_window - 1
    return w


def zscore_column(feature: str, window: int) -> str:
    return f"{feature}_z{window}"


def feature_warmups(cfg: FeatureConfig) -> dict[str, int]:
    """All output feature columns in order -> warm-up length in bars (first non-NaN index)."""
    w = base_feature_warmups(cfg)
    for feature in cfg.zscore_features:
        for window in cfg.zscore_windows:
            w[zscore_column(feature, window)] = w[feature] + window - 1
    return w
