"""Bad inputs: typed errors naming the problem and where it is; a rejected chunk leaves state intact."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from core.config import build_config
from core.errors import ConfigError, DataError, SchemaError
from market.features import FeatureConfig, FeatureEngine, compute_features
from tests.unit.test_features_bars import make_bars

BARS = make_bars(60, seed=9)


def test_missing_column_is_a_schema_error_naming_it():
    with pytest.raises(SchemaError, match=r"missing bar columns \['buy_volume'\]"):
        compute_features(BARS.drop("buy_volume"))


def test_wrong_dtype_is_a_schema_error_naming_it():
    with pytest.raises(SchemaError, match=r"trade_count: Int32 \(expected Int64\)"):
        compute_features(BARS.with_columns(pl.col("trade_count").cast(pl.Int32)))
    with pytest.raises(SchemaError, match="close: String"):
        compute_features(BARS.with_columns(pl.col("close").cast(pl.String)))


def test_nulls_are_a_schema_error():
    with pytest.raises(SchemaError, match=r"contain nulls: \['sell_vwap'\]"):
        compute_features(BARS.with_columns(sell_vwap=pl.when(pl.int_range(pl.len()) == 3).then(None)
                                           .otherwise(pl.col("sell_vwap"))))


def test_not_a_dataframe():
    with pytest.raises(SchemaError, match="polars DataFrame"):
        compute_features(BARS.to_pandas())  # type: ignore[arg-type]


def test_decreasing_ts_event_names_the_row():
    ts = BARS.get_column("ts_event").to_list()
    ts[7] = ts[6] - 1
    with pytest.raises(DataError, match="ts_event decreases") as info:
        compute_features(BARS.with_columns(ts_event=pl.Series(ts)))
    assert info.value.line == 8


def test_bars_sharing_a_close_time_are_accepted():
    # trade-driven bars closed by trades of the same millisecond share ts_event
    ts = BARS.get_column("ts_event").to_list()
    ts[7] = ts[6]
    tied = BARS.with_columns(ts_event=pl.Series(ts))
    out = compute_features(tied)
    assert out.get_column("ts_event").to_list() == ts
    assert out.drop("ts_event").equals(compute_features(BARS).drop("ts_event"))
    engine = FeatureEngine()
    engine.update(tied.head(7))
    engine.update(tied.slice(7, 1))  # same ts_event as the last bar of the previous chunk


def test_non_increasing_ts_across_chunks_is_rejected_and_state_is_unchanged():
    engine = FeatureEngine()
    first = engine.update(BARS.head(30))
    with pytest.raises(DataError, match="ts_event decreases") as info:
        engine.update(BARS.slice(28, 10))  # starts before the last bar already consumed
    assert info.value.line == 1
    assert engine.bars_seen == 30
    rest = engine.update(BARS.slice(30))
    batch = compute_features(BARS)
    assert pl.concat([first, rest]).equals(batch)


@pytest.mark.parametrize("column,value,reason", [
    ("close", math.nan, "must be finite"),
    ("low", -1.0, "0 < low"),
    ("high", 1.0, "low <= open, close <= high"),
    ("volume", 0.0, "volume must be finite and > 0"),
    ("quote_volume", math.inf, "quote_volume"),
    ("buy_volume", -0.5, "buy_volume and sell_volume"),
    ("trade_count", 0, "trade_count must be >= 1"),
    ("sell_count", -1, "buy_count, sell_count >= 0"),
    ("upticks", -2, "upticks and downticks"),
    ("duration_ns", -5, "duration_ns must be >= 0"),
    ("realized_var", math.nan, "realized_var"),
    ("large_volume", -1.0, "large_volume"),
])
def test_invalid_bar_values_raise_data_error_with_row(column, value, reason):
    col = BARS.get_column(column).to_list()
    col[12] = value
    engine = FeatureEngine()
    with pytest.raises(DataError, match=reason) as info:
        engine.update(BARS.with_columns(pl.Series(column, col, dtype=BARS.schema[column])))
    assert info.value.line == 13
    assert engine.bars_seen == 0


def test_zero_buy_and_sell_volume_is_rejected():
    bars = BARS.with_columns(buy_volume=pl.lit(0.0), sell_volume=pl.lit(0.0))
    with pytest.raises(DataError, match="buy_volume \\+ sell_volume > 0"):
        compute_features(bars)


def test_extra_columns_are_ignored_and_empty_chunks_are_fine():
    out = compute_features(BARS.with_columns(symbol=pl.lit("BTCUSDT")))
    assert out.equals(compute_features(BARS))
    engine = FeatureEngine()
    empty = engine.update(BARS.clear())
    assert empty.columns == engine.columns and empty.height == 0
    assert empty.schema["ts_event"] == pl.Int64 and empty.schema["ofi"] == pl.Float64


def test_unknown_zscore_feature_is_a_config_error_listing_valid_names():
    with pytest.raises(ConfigError, match=r"unknown feature\(s\) \['ofii'\]; valid names: \['ofi', 'delta'"):
        FeatureConfig(zscore_features=("ofi", "ofii"))
    with pytest.raises(ConfigError, match="ofii"):
        build_config(FeatureConfig, {"zscore_features": ["ofii"]}, "features.yaml")
    # names follow the configured spans: ema12 exists by default, ema13 does not
    FeatureConfig(zscore_features=("ema12",))
    with pytest.raises(ConfigError, match="ema13"):
        FeatureConfig(zscore_features=("ema13",))


@pytest.mark.parametrize("kwargs,message", [
    ({"vwap_window": 0}, "vwap_window must be >= 1"),
    ({"skew_window": 2}, "skew_window must be >= 3"),
    ({"zscore_windows": (20, 1)}, "zscore_windows values must be >= 2"),
    ({"ema_spans": (12, 12)}, "ema_spans has duplicates"),
    ({"realized_vol_short": 200, "realized_vol_long": 20}, "must be < realized_vol_long"),
    ({"zscore_features": ("ofi", "ofi")}, "zscore_features has duplicates"),
    ({"atr_window": 14}, "unknown key"),
    ({"kyle_window": "fifty"}, "kyle_window"),
])
def test_invalid_config_values_are_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        FeatureConfig(**kwargs)


def test_config_is_frozen_and_hashable():
    cfg = FeatureConfig()
    with pytest.raises(Exception):
        cfg.vwap_window = 3  # type: ignore[misc]
    assert cfg.config_hash() == FeatureConfig().config_hash() != FeatureConfig(vwap_window=21).config_hash()


def test_columns_property_lists_ts_event_then_features():
    cfg = FeatureConfig(zscore_features=("delta",), zscore_windows=(20, 100))
    cols = FeatureEngine(cfg).columns
    assert cols[0] == "ts_event" and cols[-2:] == ["delta_z20", "delta_z100"]
    assert len(cols) == len(set(cols))
    assert np.all([c in cols for c in ("realized_vol_20", "realized_vol_200", "atr14", "atr100", "ofi_ema5",
                                       "ofi_ema10", "ema12", "ema48", "sma20", "plus_di", "minus_di", "adx")])
