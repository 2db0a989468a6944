"""Batch == streaming bit for bit, causality, honest warm-ups and bounded drift of running sums."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market.features import FeatureConfig, FeatureEngine, compute_features
from market.features.primitives import RollingOLSSlope, RollingSkew, RollingSum, RollingZScore
from tests.unit.test_features_bars import make_bars

SMALL = FeatureConfig(vwap_window=5, realized_vol_short=3, realized_vol_long=9, kyle_window=6, atr_periods=(4,),
                      ema_spans=(3, 7), sma_windows=(5,), rsi_period=4, adx_period=3, skew_window=5,
                      ofi_ema_spans=(2,), cum_delta_slope_window=4, duration_window=6,
                      zscore_windows=(4, 11), recompute_every=5)

BARS = make_bars(650, seed=5)
BATCH_DEFAULT = compute_features(BARS)
BATCH_SMALL = compute_features(BARS.head(200), SMALL)


def _bits(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    return {c: frame.get_column(c).to_numpy().view(np.int64) for c in frame.columns}


def assert_identical(a: pl.DataFrame, b: pl.DataFrame) -> None:
    assert a.columns == b.columns and a.schema == b.schema
    ba, bb = _bits(a), _bits(b)
    for c in a.columns:
        diff = np.flatnonzero(ba[c] != bb[c])
        assert diff.shape[0] == 0, f"{c} differs at rows {diff[:10]}"


def stream(bars: pl.DataFrame, sizes: list[int], cfg: FeatureConfig) -> pl.DataFrame:
    engine = FeatureEngine(cfg)
    parts, start = [], 0
    for size in sizes:
        parts.append(engine.update(bars.slice(start, size)))
        start += size
    parts.append(engine.update(bars.slice(start)))
    assert engine.bars_seen == bars.height
    return pl.concat(parts)


def test_one_bar_at_a_time_equals_batch_bit_for_bit():
    assert_identical(stream(BARS, [1] * BARS.height, FeatureConfig()), BATCH_DEFAULT)


def test_one_bar_at_a_time_equals_batch_small_windows():
    bars = BARS.head(200)
    assert_identical(stream(bars, [1] * bars.height, SMALL), BATCH_SMALL)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, 90), min_size=1, max_size=25))
def test_random_chunk_splits_equal_batch(sizes):
    assert_identical(stream(BARS, sizes, FeatureConfig()), BATCH_DEFAULT)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 13), min_size=1, max_size=30))
def test_random_chunk_splits_equal_batch_small_windows(sizes):
    assert_identical(stream(BARS.head(200), sizes, SMALL), BATCH_SMALL)


def _perturb_after(bars: pl.DataFrame, k: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = bars.height
    f = np.where(np.arange(n) > k, rng.uniform(0.5, 2.0, n), 1.0)
    g = np.where(np.arange(n) > k, rng.uniform(0.1, 3.0, n), 1.0)
    later = pl.Series(np.arange(n) > k)
    return bars.with_columns(
        *(pl.col(c) * pl.Series(f) for c in ("open", "high", "low", "close", "vwap", "buy_vwap", "sell_vwap")),
        *(pl.col(c) * pl.Series(g) for c in ("buy_volume", "realized_var", "large_volume")),
        duration_ns=pl.when(later).then(pl.col("duration_ns") * 3 + 7).otherwise(pl.col("duration_ns")),
        upticks=pl.when(later).then(pl.col("upticks") + 2).otherwise(pl.col("upticks")),
    ).with_columns(volume=pl.when(later).then(pl.col("buy_volume") + pl.col("sell_volume")).otherwise(pl.col("volume")),
                   quote_volume=pl.col("quote_volume") * pl.Series(f * g))


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 640), st.integers(0, 2**32 - 1))
def test_changing_the_future_does_not_move_the_past(k, seed):
    changed = compute_features(_perturb_after(BARS, k, seed))
    assert_identical(changed.head(k + 1), BATCH_DEFAULT.head(k + 1))
    if k + 1 < BARS.height:  # the perturbation is real: the next bar's features moved
        moved = [c for c in changed.columns
                 if changed.get_column(c)[k + 1] != BATCH_DEFAULT.get_column(c)[k + 1]]
        assert "close" not in moved and "price_impact" in moved and "ofi" in moved


def _first_valid(a: np.ndarray) -> int | None:
    idx = np.flatnonzero(~np.isnan(a))
    return int(idx[0]) if idx.shape[0] else None


@pytest.mark.parametrize("cfg,frame", [(FeatureConfig(), BATCH_DEFAULT), (SMALL, BATCH_SMALL)], ids=["default", "small"])
def test_warmup_bars_is_the_first_non_nan_index(cfg, frame):
    warm = FeatureEngine(cfg).warmup_bars()
    assert list(warm) == frame.columns[1:]
    for name, w in warm.items():
        a = frame.get_column(name).to_numpy()
        assert _first_valid(a) == w, name
        assert not np.isnan(a[w:]).any(), f"{name} has NaN after its warm-up"


@settings(max_examples=15, deadline=None)
@given(st.integers(2, 30), st.integers(3, 30), st.integers(1, 20), st.integers(2, 40))
def test_warmup_bars_honest_for_random_windows(kyle, skew, adx, zwin):
    cfg = FeatureConfig(kyle_window=kyle, skew_window=skew, adx_period=adx, atr_periods=(adx,),
                        zscore_features=("kyle_lambda", "return_skew", "adx", "ofi"), zscore_windows=(zwin,))
    out = compute_features(BARS.head(150), cfg)
    for name, w in FeatureEngine(cfg).warmup_bars().items():
        assert _first_valid(out.get_column(name).to_numpy()) == (w if w < out.height else None), name


# ------------------------------------------------- running sums stay close to fresh computations


def _exact_stats(win: np.ndarray) -> tuple[float, float, float]:
    """Sum, z-score of the last value (ddof=1) and bias-corrected skew, in exact rational
    arithmetic (one rounding at the end), so the reference has no cancellation error."""
    q = [Fraction(float(v)) for v in win]
    n = len(q)
    total = sum(q, Fraction(0))
    mean = total / n
    m2 = sum(((v - mean) ** 2 for v in q), Fraction(0))
    m3 = sum(((v - mean) ** 3 for v in q), Fraction(0))
    dev = q[-1] - mean
    z = math.copysign(math.sqrt(float(dev * dev * (n - 1) / m2)), float(dev))
    skew = math.nan
    if n >= 3:
        g = math.sqrt(float((m3 / n) ** 2 / (m2 / n) ** 3))
        skew = math.copysign(math.sqrt(n * (n - 1)) / (n - 2) * g, float(m3))
    return float(total), z, skew


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(3, 60), st.integers(1, 200),
       st.sampled_from([0.0, 1e3, -1e6, 1e9]), st.sampled_from([1e-6, 1.0, 1e4]))
def test_rolling_kernels_track_exact_window_statistics(seed, window, recompute_every, offset, scale):
    rng = np.random.default_rng(seed)
    n = 1500
    # heavy tails and level shifts every 100 bars make drift and cancellation visible
    x = offset + scale * (rng.standard_t(3, n) + np.repeat(rng.normal(0, 20, n // 100 + 1), 100)[:n])
    sums = RollingSum(window, recompute_every)(x)
    z = RollingZScore(window, recompute_every)(x)
    sk = RollingSkew(window, recompute_every)(x)
    rows = np.unique(np.concatenate([rng.integers(window - 1, n, 30), [n - 1]]))
    for i in rows:
        win = x[i - window + 1:i + 1]
        e_sum, e_z, e_skew = _exact_stats(win)
        assert abs(sums[i] - e_sum) <= 1e-12 * np.abs(win).sum()
        assert abs(z[i] - e_z) <= 1e-9 * max(1.0, abs(e_z))
        assert abs(sk[i] - e_skew) <= 1e-9 * max(1.0, abs(e_skew))


def test_constant_stretch_inside_moving_series_gives_nan_not_noise():
    x = np.concatenate([np.linspace(0.1, 7.3, 37), np.full(10, 0.3), [0.5]])
    z = RollingZScore(4, 128)(x)
    sk = RollingSkew(4, 128)(x)
    const_rows = np.arange(37 + 3, 47)  # windows fully inside the constant stretch
    assert np.isnan(z[const_rows]).all() and np.isnan(sk[const_rows]).all()
    assert not np.isnan(z[47]) and not np.isnan(z[39])


def test_spike_leaving_the_window_does_not_pollute_later_values():
    """Real trade-intensity series look like this: ~1e-3 with a rare 25 (25 trades in < 1 ms)."""
    rng = np.random.default_rng(4)
    x = rng.choice([0.001, 0.002, 0.003, 0.009], size=400)
    x[[50, 51, 230]] = [25.0, 13.0, 40.0]
    z = RollingZScore(20, 128)(x)
    for i in range(300, 400):
        assert abs(z[i] - _exact_stats(x[i - 19:i + 1])[1]) <= 1e-12 * max(1.0, abs(z[i]))


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 40), st.integers(1, 100), st.sampled_from([0.0, 1e4, -1e7]))
def test_rolling_ols_slope_tracks_exact_regression(seed, window, recompute_every, offset):
    rng = np.random.default_rng(seed)
    n = 800
    x = offset + rng.standard_t(3, n) * 50 + np.repeat(rng.normal(0, 500, n // 80 + 1), 80)[:n]
    y = 0.01 * (x - offset) + rng.normal(0, 1, n)
    out = RollingOLSSlope(window, recompute_every)(x, y)
    for i in np.unique(np.concatenate([rng.integers(window - 1, n, 25), [n - 1]])):
        qx = [Fraction(float(v)) for v in x[i - window + 1:i + 1]]
        qy = [Fraction(float(v)) for v in y[i - window + 1:i + 1]]
        mx, my = sum(qx, Fraction(0)) / window, sum(qy, Fraction(0)) / window
        var = sum(((a - mx) ** 2 for a in qx), Fraction(0))
        cov = sum(((a - mx) * (b - my) for a, b in zip(qx, qy)), Fraction(0))
        expected = float(cov / var)
        assert abs(out[i] - expected) <= 1e-9 * max(abs(expected), 1e-3)
