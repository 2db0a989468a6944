"""Every feature column against a plain pandas / python-loop reference written here, on a few
thousand random bars, plus hand-computed tiny cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import polars as pl
import pytest

from market.features import FeatureConfig, FeatureEngine, compute_features
from market.features.primitives import RollingIndexSlope, RollingOLSSlope, WilderATR, WilderRSI
from market.schema import BAR_SCHEMA
from tests.conftest import shared_data_path
from tests.unit.test_features_bars import bars_from_trades, make_bars


def _wilder_loop(values: list[float], n: int, start: int) -> list[float]:
    """Wilder smoothing of values[start:], first value = mean of the first n, output aligned."""
    out = [math.nan] * len(values)
    avg = math.nan
    for i in range(start, len(values)):
        k = i - start
        if k == n - 1:
            avg = sum(values[start:i + 1]) / n
        elif k >= n:
            avg = (avg * (n - 1) + values[i]) / n
        if k >= n - 1:
            out[i] = avg
    return out


def ref_atr(h, lo, c, n):
    tr = [h[0] - lo[0]] + [max(h[i] - lo[i], abs(h[i] - c[i - 1]), abs(lo[i] - c[i - 1])) for i in range(1, len(h))]
    return np.array(_wilder_loop(tr, n, 0))


def ref_rsi(c, n):
    gains = [math.nan] + [max(c[i] - c[i - 1], 0.0) for i in range(1, len(c))]
    losses = [math.nan] + [max(c[i - 1] - c[i], 0.0) for i in range(1, len(c))]
    ag, al = _wilder_loop(gains, n, 1), _wilder_loop(losses, n, 1)
    out = []
    for g, lo in zip(ag, al):
        if math.isnan(g):
            out.append(math.nan)
        elif lo == 0.0:
            out.append(100.0 if g > 0 else 50.0)
        else:
            out.append(100.0 - 100.0 / (1.0 + g / lo))
    return np.array(out)


def ref_adx(h, lo, c, n):
    m = len(h)
    tr, pdm, mdm = [math.nan], [math.nan], [math.nan]
    for i in range(1, m):
        tr.append(max(h[i] - lo[i], abs(h[i] - c[i - 1]), abs(lo[i] - c[i - 1])))
        up, down = h[i] - h[i - 1], lo[i - 1] - lo[i]
        pdm.append(up if up > down and up > 0 else 0.0)
        mdm.append(down if down > up and down > 0 else 0.0)
    s_tr, s_p, s_m = _wilder_loop(tr, n, 1), _wilder_loop(pdm, n, 1), _wilder_loop(mdm, n, 1)
    pdi = [100 * p / t if t > 0 else (0.0 if not math.isnan(t) else math.nan) for p, t in zip(s_p, s_tr)]
    mdi = [100 * q / t if t > 0 else (0.0 if not math.isnan(t) else math.nan) for q, t in zip(s_m, s_tr)]
    dx = [100 * abs(p - q) / (p + q) if (p + q) > 0 else (0.0 if not math.isnan(p) else math.nan)
          for p, q in zip(pdi, mdi)]
    adx = _wilder_loop(dx, n, n)
    return np.array(pdi), np.array(mdi), np.array(adx)


def ref_skew(x: np.ndarray) -> float:
    n = len(x)
    if np.isnan(x).any():
        return math.nan
    d = x - x.mean()
    m2, m3 = (d**2).mean(), (d**3).mean()
    if m2 == 0:
        return math.nan
    return math.sqrt(n * (n - 1)) / (n - 2) * m3 / m2**1.5


def ref_zscore_last(x: np.ndarray) -> float:
    """Two-pass z-score of the window's last value (pandas' online rolling std loses ~1e-8
    relative accuracy after spikes leave the window, so the reference does a fresh computation)."""
    d = x - x.mean()
    var = (d**2).sum() / (len(x) - 1)
    return math.nan if var == 0 else d[-1] / math.sqrt(var)


def ref_ols_slope(x: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    out = np.full(len(x), math.nan)
    for i in range(n - 1, len(x)):
        wx, wy = x[i - n + 1:i + 1], y[i - n + 1:i + 1]
        if np.isnan(wx).any() or np.isnan(wy).any():
            continue
        dx = wx - wx.mean()
        var = (dx**2).sum()
        if var > 0:
            out[i] = (dx * (wy - wy.mean())).sum() / var
    return out


def ref_index_slope(y: np.ndarray) -> float:
    return float(np.polyfit(np.arange(len(y), dtype=float), y, 1)[0])


def reference_features(bars: pl.DataFrame, cfg: FeatureConfig) -> dict[str, np.ndarray]:
    b = bars.to_pandas()
    h, lo, c = b["high"].tolist(), b["low"].tolist(), b["close"].tolist()
    close = b["close"]
    buy, sell = b["buy_volume"], b["sell_volume"]
    r: dict[str, pd.Series | np.ndarray] = {}
    r["ofi"] = (buy - sell) / (buy + sell)
    r["delta"] = buy - sell
    r["cum_delta"] = r["delta"].cumsum()
    r["buy_count"] = b["buy_count"].astype(float)
    r["sell_count"] = b["sell_count"].astype(float)
    r["avg_buy_size"] = buy / b["buy_count"].replace(0, np.nan)
    r["avg_sell_size"] = sell / b["sell_count"].replace(0, np.nan)
    r["large_trade_ratio"] = b["large_volume"] / b["volume"]
    n = cfg.vwap_window
    rv = b["quote_volume"].rolling(n).sum() / b["volume"].rolling(n).sum()
    r["rvwap"] = rv
    r["vwap_deviation"] = (close - rv) / rv
    r["buy_sell_vwap_diff"] = b["buy_vwap"] - b["sell_vwap"]
    r["trade_intensity"] = b["trade_count"] / np.maximum(b["duration_ns"] / 1e6, 1.0)
    r["price_impact"] = (close - b["open"]) / b["volume"]
    r["uptick_ratio"] = b["upticks"] / (b["upticks"] + b["downticks"])
    vs = np.sqrt(b["realized_var"].rolling(cfg.realized_vol_short).mean())
    vl = np.sqrt(b["realized_var"].rolling(cfg.realized_vol_long).mean())
    r[f"realized_vol_{cfg.realized_vol_short}"] = vs
    r[f"realized_vol_{cfg.realized_vol_long}"] = vl
    r["vol_ratio"] = vs / vl
    r["kyle_lambda"] = ref_ols_slope(np.asarray(r["delta"], dtype=float), close.diff().to_numpy(), cfg.kyle_window)
    for p in cfg.atr_periods:
        r[f"atr{p}"] = ref_atr(h, lo, c, p)
    for s in cfg.ema_spans:
        r[f"ema{s}"] = close.ewm(span=s, adjust=False, min_periods=s).mean()
    for s in cfg.sma_windows:
        r[f"sma{s}"] = close.rolling(s).mean()
    r["rsi"] = ref_rsi(c, cfg.rsi_period)
    r["plus_di"], r["minus_di"], r["adx"] = ref_adx(h, lo, c, cfg.adx_period)
    logret = np.log(close / close.shift(1))
    r["return_skew"] = logret.rolling(cfg.skew_window).apply(ref_skew, raw=True)
    for s in cfg.ofi_ema_spans:
        r[f"ofi_ema{s}"] = r["ofi"].ewm(span=s, adjust=False, min_periods=s).mean()
    r["cum_delta_slope"] = r["cum_delta"].rolling(cfg.cum_delta_slope_window).apply(ref_index_slope, raw=True)
    r["duration_ratio"] = b["duration_ns"] / b["duration_ns"].rolling(cfg.duration_window).mean()
    for f in cfg.zscore_features:
        x = pd.Series(np.asarray(r[f], dtype=float))
        for w in cfg.zscore_windows:
            r[f"{f}_z{w}"] = x.rolling(w).apply(ref_zscore_last, raw=True)
    return {k: np.asarray(v, dtype=float) for k, v in r.items()}


def assert_matches(actual: np.ndarray, expected: np.ndarray, name: str, rtol: float = 1e-9) -> None:
    nan_a, nan_e = np.isnan(actual), np.isnan(expected)
    assert np.array_equal(nan_a, nan_e), f"{name}: NaN positions differ at {np.flatnonzero(nan_a != nan_e)[:10]}"
    ok = ~nan_e
    if not ok.any():
        return
    scale = np.max(np.abs(expected[ok]))
    np.testing.assert_allclose(actual[ok], expected[ok], rtol=rtol, atol=rtol * scale, err_msg=name)


@pytest.fixture(scope="module")
def random_bars() -> pl.DataFrame:
    return make_bars(3000, seed=11)


def test_every_column_matches_the_pandas_reference(random_bars):
    cfg = FeatureConfig()
    out = compute_features(random_bars, cfg)
    ref = reference_features(random_bars, cfg)
    assert out.columns == FeatureEngine(cfg).columns
    assert set(out.columns[1:]) == set(ref), "reference must cover every feature column"
    assert out.get_column("ts_event").to_list() == random_bars.get_column("ts_event").to_list()
    for name in out.columns[1:]:
        assert out.schema[name] == pl.Float64
        assert_matches(out.get_column(name).to_numpy(), ref[name], name)


def test_non_default_windows_and_frequent_recompute_match_reference(random_bars):
    cfg = FeatureConfig(vwap_window=7, realized_vol_short=3, realized_vol_long=11, kyle_window=9,
                        atr_periods=(2, 5), ema_spans=(3,), sma_windows=(4, 9), rsi_period=6, adx_period=5,
                        skew_window=13, ofi_ema_spans=(2,), cum_delta_slope_window=6, duration_window=8,
                        zscore_features=("cum_delta", "rsi", "vwap_deviation"), zscore_windows=(5, 31),
                        recompute_every=3)
    bars = random_bars.head(800)
    out = compute_features(bars, cfg)
    ref = reference_features(bars, cfg)
    assert set(out.columns[1:]) == set(ref)
    for name in out.columns[1:]:
        assert_matches(out.get_column(name).to_numpy(), ref[name], name)


# ---------------------------------------------------------------- hand-computed tiny cases


def hand_bars(rows: list[dict]) -> pl.DataFrame:
    """Bars from a few hand-written fields; the rest filled consistently."""
    out = []
    for i, r in enumerate(rows):
        c = r.get("close", 100.0)
        o = r.get("open", c)
        buy, sell = r.get("buy_volume", 1.0), r.get("sell_volume", 1.0)
        row = {
            "ts_event": 1_000 + i, "ts_open": 1_000 + i, "ts_close": 1_000 + i, "duration_ns": r.get("duration_ns", 1),
            "first_id": i, "last_id": i, "open": o, "high": r.get("high", max(o, c)), "low": r.get("low", min(o, c)),
            "close": c, "volume": buy + sell, "quote_volume": (buy + sell) * c, "trade_count": 2,
            "buy_volume": buy, "sell_volume": sell, "buy_count": 1, "sell_count": 1, "vwap": c,
            "buy_vwap": c, "sell_vwap": c, "upticks": 1, "downticks": 1, "realized_var": 1e-8,
            "large_volume": 0.0, "large_count": 0, "threshold": 2.0,
        }
        out.append(row)
    return pl.DataFrame(out, schema=BAR_SCHEMA)


def test_ofi_delta_cum_delta_by_hand():
    bars = hand_bars([{"buy_volume": 3.0, "sell_volume": 1.0}, {"buy_volume": 1.0, "sell_volume": 4.0},
                      {"buy_volume": 0.0, "sell_volume": 2.5}])
    out = compute_features(bars)
    assert out.get_column("ofi").to_list() == [0.5, -0.6, -1.0]
    assert out.get_column("delta").to_list() == [2.0, -3.0, -2.5]
    assert out.get_column("cum_delta").to_list() == [2.0, -1.0, -3.5]


def test_atr_by_hand():
    h = np.array([10.0, 12.0, 11.5, 14.0, 13.0, 9.0])
    lo = np.array([8.0, 9.0, 10.0, 10.0, 7.0, 8.5])
    c = np.array([9.0, 11.0, 10.5, 13.0, 8.0, 8.6])
    out = WilderATR(3)(h, lo, c)
    # TRs: 2, 3, 1.5, 4, 6, 1 -> 6.5/3, then (prev*2 + tr)/3
    expected = [math.nan, math.nan, 13 / 6, 25 / 9, 104 / 27, 235 / 81]
    np.testing.assert_allclose(out, expected, rtol=1e-15)


def test_rsi_by_hand():
    out = WilderRSI(3)(np.array([10.0, 11.0, 10.5, 12.0, 11.0, 11.0]))
    # gains 1, 0, 1.5 / losses 0, .5, 0 -> 5/6 vs 1/6; then -1 -> 5/9 vs 4/9; then 0 -> 10/27 vs 8/27
    np.testing.assert_allclose(out, [math.nan, math.nan, math.nan, 250 / 3, 500 / 9, 500 / 9], rtol=1e-14)
    flat = WilderRSI(3)(np.full(5, 7.0))
    np.testing.assert_array_equal(flat, [math.nan, math.nan, math.nan, 50.0, 50.0])


def test_kyle_lambda_by_hand():
    x = np.array([5.0, 1.0, 2.0, 4.0, 3.0])
    y = np.array([math.nan, 1.0, 3.0, 2.0, 5.0])
    np.testing.assert_allclose(RollingOLSSlope(3, 128)(x, y), [math.nan, math.nan, math.nan, 3 / 14, -0.5],
                               rtol=1e-14)
    const = RollingOLSSlope(3, 128)(np.array([1.0, 2.0, 2.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    np.testing.assert_allclose(const, [math.nan, math.nan, 1.5, math.nan, 1.5], rtol=1e-14)


def test_kyle_lambda_through_engine_by_hand():
    # delta = buy - sell, dclose = close change; window 3 over bars 1..3 then 2..4
    rows = [{"close": 100.0, "buy_volume": 6.0, "sell_volume": 1.0},
            {"close": 101.0, "buy_volume": 2.0, "sell_volume": 1.0},
            {"close": 104.0, "buy_volume": 3.0, "sell_volume": 1.0},
            {"close": 106.0, "buy_volume": 5.0, "sell_volume": 1.0},
            {"close": 111.0, "buy_volume": 4.0, "sell_volume": 1.0}]
    out = compute_features(hand_bars(rows), FeatureConfig(kyle_window=3))
    np.testing.assert_allclose(out.get_column("kyle_lambda").to_numpy(), [math.nan] * 3 + [3 / 14, -0.5], rtol=1e-13)


def test_cum_delta_slope_by_hand():
    out = RollingIndexSlope(3, 128)(np.array([1.0, 4.0, 2.0, 8.0, math.nan, 1.0, 2.0, 3.0]))
    # [1,4,2] -> (-1*1 + 1*2)/2 = 0.5; [4,2,8] -> (8-4)/2 = 2; NaN while the NaN is inside the window
    np.testing.assert_allclose(out, [math.nan, math.nan, 0.5, 2.0, math.nan, math.nan, math.nan, 1.0], rtol=1e-14)


def test_ratio_features_nan_when_undefined():
    rows = [{"buy_volume": 2.0, "sell_volume": 0.0}]
    bars = hand_bars(rows).with_columns(sell_count=pl.lit(0, pl.Int64), sell_vwap=pl.lit(math.nan),
                                        upticks=pl.lit(0, pl.Int64), downticks=pl.lit(0, pl.Int64))
    out = compute_features(bars).row(0, named=True)
    assert out["avg_sell_size"] != out["avg_sell_size"]
    assert out["avg_buy_size"] == 2.0
    assert out["buy_sell_vwap_diff"] != out["buy_sell_vwap_diff"]
    assert out["uptick_ratio"] != out["uptick_ratio"]
    assert out["ofi"] == 1.0


def test_trade_intensity_floor_and_duration_ratio_by_hand():
    rows = [{"duration_ns": 0}, {"duration_ns": 500_000}, {"duration_ns": 4_000_000}, {"duration_ns": 2_000_000}]
    out = compute_features(hand_bars(rows), FeatureConfig(duration_window=2))
    # trade_count = 2 per bar; duration below 1 ms counts as 1 ms
    assert out.get_column("trade_intensity").to_list() == [2.0, 2.0, 0.5, 1.0]
    ratio = out.get_column("duration_ratio").to_numpy()
    np.testing.assert_allclose(ratio, [math.nan, 2.0, 4_000_000 / 2_250_000, 2_000_000 / 3_000_000], rtol=1e-15)


def test_zscore_of_constant_window_is_nan():
    rows = [{"buy_volume": 2.0, "sell_volume": 1.0}] * 5 + [{"buy_volume": 3.0, "sell_volume": 1.0}]
    out = compute_features(hand_bars(rows), FeatureConfig(zscore_features=("delta",), zscore_windows=(3,)))
    z = out.get_column("delta_z3").to_numpy()
    # windows [1,1,1] are constant -> NaN; [1,1,2] -> (2 - 4/3) / std([1,1,2]) = (2/3)/(1/sqrt(3))
    np.testing.assert_allclose(z, [math.nan] * 5 + [2 / math.sqrt(3)], rtol=1e-14)


@pytest.mark.realdata
def test_real_binance_trades_match_reference():
    """Real USD-M trades (zero ticks, one-sided bars, repeated sizes) in bars of 25 trades."""
    path = shared_data_path("binance", "trades", "tardis_BTCUSDT-usdm-trades-2020-02-22.csv")
    raw = pd.read_csv(path)
    trades = pd.DataFrame({"bar": np.arange(len(raw)) // 25, "ts": raw["timestamp"].to_numpy() * 1000,
                           "price": raw["price"].astype(float), "qty": raw["amount"].astype(float),
                           "is_buy": raw["side"].eq("buy").to_numpy()})
    bars = bars_from_trades(trades, large_threshold=1.0)
    cfg = FeatureConfig(realized_vol_long=100, zscore_windows=(20, 100))
    out = compute_features(bars, cfg)
    ref = reference_features(bars, cfg)
    one_sided = bars.select((pl.col("buy_count") == 0) | (pl.col("sell_count") == 0)).to_series()
    assert one_sided.any(), "the sample should exercise one-sided bars"
    for name in out.columns[1:]:
        assert_matches(out.get_column(name).to_numpy(), ref[name], name)
