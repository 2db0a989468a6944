"""End to end: trades → bars → features → higher-timeframe join, streamed in random chunks, equals the
batch computation bit for bit; and nothing at or before time t moves when trades after t change.

Runs on every real trade sample in ../shared/data and on seeded synthetic markets (plain and
kline-conditioned)."""

from __future__ import annotations

import zlib

import numpy as np
import polars as pl
import pytest

from market.bars.spec import DynamicVolumeBars, TickBars, TimeBars, VolumeBars
from market.config import HigherTimeframe, PipelineConfig
from market.features.config import FeatureConfig
from market.ingest import read_binance_klines, read_tardis_trades, read_ws_capture
from market.pipeline import StreamingPipeline, batch_bars_features
from market.synth import SynthConfig, generate_trades, synthesize_from_klines
from tests.conftest import shared_data_path

CAPTURES = ["usdm_btcusdt_20240808.gz", "spot_btcusdt_20240808.gz", "spot_ethusdt_20240809.gz",
            "usdm_btcusdt_20240719.gz", "usdm_btcusdt_20230405.dat.gz"]
SMALL_FEATURES = FeatureConfig(zscore_windows=(20, 100), realized_vol_long=60, duration_window=20)


def _config(bars, every="1m") -> PipelineConfig:
    return PipelineConfig(bars=bars, features=SMALL_FEATURES,
                          higher_timeframe=HigherTimeframe(every=every, prefix="htf_"))


def _stream(trades: pl.DataFrame, cfg: PipelineConfig, rng: np.random.Generator) -> pl.DataFrame:
    n = trades.height
    cuts = np.sort(rng.choice(np.arange(1, n), size=min(60, n - 1), replace=False))
    # also some single-trade chunks and an empty chunk
    bounds = [0, *cuts.tolist(), n]
    sp = StreamingPipeline(cfg)
    out = [sp.update(trades.slice(0, 0))]
    for a, b in zip(bounds[:-1], bounds[1:]):
        if b - a > 3 and rng.random() < 0.2:
            out += [sp.update(trades.slice(a, 1)), sp.update(trades.slice(a + 1, b - a - 1))]
        else:
            out.append(sp.update(trades.slice(a, b - a)))
    return pl.concat(out)


def _assert_identical(a: pl.DataFrame, b: pl.DataFrame) -> None:
    assert a.columns == b.columns and a.height == b.height
    for c in a.columns:
        x, y = a[c], b[c]
        assert x.dtype == y.dtype, c
        if x.dtype == pl.Float64:
            xv, yv = x.to_numpy(), y.to_numpy()
            same = (xv == yv) | (np.isnan(xv) & np.isnan(yv))
            same &= x.is_null().to_numpy() == y.is_null().to_numpy()
            assert same.all(), f"column {c} differs at rows {np.flatnonzero(~same)[:5]}"
        else:
            assert x.equals(y, check_names=False, null_equal=True), c


def _real_trades(name: str) -> pl.DataFrame:
    cap = read_ws_capture(shared_data_path("binance", "ws", name))
    assert len(cap.trades) == 1  # one symbol per capture file
    return next(iter(cap.trades.values()))


@pytest.mark.parametrize("name", CAPTURES)
def test_real_capture_streaming_equals_batch(name):
    trades = _real_trades(name)
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    vol = float(trades["quantity"].sum()) / 150
    for bars in (VolumeBars(threshold=vol), TickBars(trades=97), TimeBars(every="5s")):
        cfg = _config(bars, every="1m")
        batch = batch_bars_features(trades, cfg)
        assert batch.height > 20
        _assert_identical(_stream(trades, cfg, rng), batch)


def test_tardis_sample_streaming_equals_batch():
    trades = read_tardis_trades(shared_data_path("binance", "trades", "tardis_BTCUSDT-usdm-trades-2020-02-22.csv")).frame
    cfg = _config(VolumeBars(threshold=float(trades["quantity"].sum()) / 200), every="15m")
    _assert_identical(_stream(trades, cfg, np.random.default_rng(3)), batch_bars_features(trades, cfg))


def test_synthetic_multi_day_dynamic_bars_streaming_equals_batch():
    trades = generate_trades(SynthConfig(seed=5, symbol="SYNUSDT", start="2024-01-01", duration="3d", base_rate=1.5))
    cfg = _config(DynamicVolumeBars(target_bars_per_day=300, initial_threshold=100.0), every="1h")
    batch = batch_bars_features(trades, cfg)
    assert batch.height > 600 and batch["threshold"].n_unique() >= 3  # one threshold per day
    _assert_identical(_stream(trades, cfg, np.random.default_rng(8)), batch)


def test_kline_conditioned_trades_streaming_equals_batch():
    klines = read_binance_klines(shared_data_path("binance", "klines_1m", "FILUSDT-1m-2023-08.csv")).frame.head(600)
    trades = synthesize_from_klines(klines, seed=4).trades
    cfg = _config(VolumeBars(threshold=float(trades["quantity"].sum()) / 400), every="1h")
    _assert_identical(_stream(trades, cfg, np.random.default_rng(9)), batch_bars_features(trades, cfg))


@pytest.mark.parametrize("name", CAPTURES[:2])
def test_perturbing_the_future_changes_nothing_before(name):
    trades = _real_trades(name)
    cfg = _config(VolumeBars(threshold=float(trades["quantity"].sum()) / 150), every="1m")
    base = batch_bars_features(trades, cfg)
    t = int(trades["ts_event"][trades.height * 2 // 3])
    rng = np.random.default_rng(1)
    future = trades["ts_event"] > t
    k = int(future.sum())
    changed = trades.with_columns(
        pl.when(future).then(pl.col("price") * pl.Series(np.exp(rng.normal(0, 0.01, trades.height))))
        .otherwise(pl.col("price")).alias("price"),
        pl.when(future).then(pl.col("quantity") * 3.0).otherwise(pl.col("quantity")).alias("quantity"),
        pl.when(future).then(~pl.col("is_buyer_maker")).otherwise(pl.col("is_buyer_maker")).alias("is_buyer_maker"),
    )
    assert k > 100
    after = batch_bars_features(changed, cfg)
    past_a = base.filter(pl.col("ts_event") <= t)
    past_b = after.filter(pl.col("ts_event") <= t)
    assert past_a.height > 20
    _assert_identical(past_b, past_a)
    assert not after.filter(pl.col("ts_event") > t).equals(base.filter(pl.col("ts_event") > t))
