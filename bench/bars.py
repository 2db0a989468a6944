"""Benchmark: bars and the full bars + features pipeline (not a test; prints figures and ratios).

    .venv/bin/python bench/bars.py                 # 20M synthetic trades + the real samples
    .venv/bin/python bench/bars.py --trades 2e6    # quicker

Measured in one run, so that a noisy machine still gives a fair comparison:
- throughput (trades/s, one core: the kernels are single-threaded numba) of volume bars alone and of
  the full pipeline (dynamic volume bars with large-trade detection + 1h time bars + every feature
  + the higher-timeframe join);
- the same work done by a straightforward pandas implementation (the same bar fields, large-trade
  quantile, 1h bars, the feature set and the 1h join) on a prefix of the input, and the speed ratio;
- peak memory of each stage in a fresh child process, as a multiple of the input arrays' size
  (the process's peak RSS above its RSS before the inputs were loaded, inputs included).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import polars as pl  # noqa: E402

from market.bars.builder import BarBuilder  # noqa: E402
from market.bars.spec import DynamicVolumeBars, LargeTradeConfig, TimeBars, VolumeBars  # noqa: E402
from market.config import PipelineConfig  # noqa: E402
from market.features.engine import FeatureEngine  # noqa: E402
from market.features.mtf import join_higher_timeframe  # noqa: E402

COLS = ("id", "ts_event", "price", "quantity", "is_buyer_maker")


# ---------------------------------------------------------------- the stages being measured
def volume_bars(a: dict, threshold: float) -> pl.DataFrame:
    b = BarBuilder(VolumeBars(threshold=threshold), LargeTradeConfig(window=0))
    return b.update_arrays(a["id"], a["ts_event"], a["price"], a["quantity"], a["is_buyer_maker"])


def full_pipeline(a: dict, bars_per_day: int, initial: float) -> pl.DataFrame:
    cfg = PipelineConfig()
    base = BarBuilder(DynamicVolumeBars(target_bars_per_day=bars_per_day, initial_threshold=initial), cfg.large_trades)
    hour = BarBuilder(TimeBars(every="1h"), cfg.large_trades)
    args = (a["id"], a["ts_event"], a["price"], a["quantity"], a["is_buyer_maker"])
    bars = base.update_arrays(*args)
    hbars = hour.update_arrays(*args)
    feats = FeatureEngine(cfg.features).update(bars)
    hfeats = FeatureEngine(cfg.higher_timeframe.features).update(hbars)
    return join_higher_timeframe(feats, hfeats, prefix=cfg.higher_timeframe.prefix)


# ---------------------------------------------------------------- the pandas baseline
def _pandas_bar_frame(a: dict, large_window: int = 10_000, large_refresh: int = 1_000, quantile: float = 0.95):
    """Per-trade columns every bar aggregates: notional, aggressor side, tick rule, log returns,
    large-trade flag (quantile of the previous `large_window` sizes, refreshed every `large_refresh`)."""
    import pandas as pd

    df = pd.DataFrame({c: a[c] for c in COLS})
    q = df["quantity"].to_numpy()
    buy = ~df["is_buyer_maker"].to_numpy()
    df["notional"] = df["price"] * df["quantity"]
    df["buy_qty"] = np.where(buy, q, 0.0)
    df["buy_notional"] = np.where(buy, df["notional"], 0.0)
    df["buy_n"] = buy.astype("int64")
    tick = np.sign(df["price"].diff()).replace(0.0, np.nan).ffill()
    df["up"] = (tick > 0).astype("int64")
    df["down"] = (tick < 0).astype("int64")
    df["r2"] = np.log(df["price"]).diff().fillna(0.0) ** 2
    thr = np.full(len(df), np.nan)
    for start in range(large_window, len(df), large_refresh):
        thr[start:start + large_refresh] = np.quantile(q[start - large_window:start], quantile)
    large = q >= thr
    df["large_qty"] = np.where(large, q, 0.0)
    df["large_n"] = large.astype("int64")
    return df


def _pandas_aggregate(df, key):
    g = df.groupby(key, sort=True)
    out = g.agg(ts_open=("ts_event", "first"), ts_close=("ts_event", "last"), open=("price", "first"),
                high=("price", "max"), low=("price", "min"), close=("price", "last"), volume=("quantity", "sum"),
                quote_volume=("notional", "sum"), trade_count=("price", "size"), buy_volume=("buy_qty", "sum"),
                buy_notional=("buy_notional", "sum"), buy_count=("buy_n", "sum"), upticks=("up", "sum"),
                downticks=("down", "sum"), realized_var=("r2", "sum"), large_volume=("large_qty", "sum"),
                large_count=("large_n", "sum"))
    out["sell_volume"] = out["volume"] - out["buy_volume"]
    out["sell_count"] = out["trade_count"] - out["buy_count"]
    out["vwap"] = out["quote_volume"] / out["volume"]
    out["buy_vwap"] = out["buy_notional"] / out["buy_volume"]
    out["sell_vwap"] = (out["quote_volume"] - out["buy_notional"]) / out["sell_volume"]
    out["duration_ns"] = out["ts_close"].diff().fillna(out["ts_close"] - out["ts_open"])
    return out


def pandas_volume_bars(a: dict, threshold: float):
    """The idiomatic pandas way: bar id from cumulative volume, then groupby-aggregate OHLCV.

    (It carries each bar's overshoot into the next bar instead of keeping trades whole, so its
    bar boundaries differ slightly from ours; it is a speed baseline, not a reference.)"""
    import pandas as pd

    df = pd.DataFrame({c: a[c] for c in COLS})
    df["bar"] = (df["quantity"].cumsum() // threshold).astype("int64")
    df["notional"] = df["price"] * df["quantity"]
    g = df.groupby("bar", sort=True)
    out = g.agg(ts_close=("ts_event", "last"), open=("price", "first"), high=("price", "max"),
                low=("price", "min"), close=("price", "last"), volume=("quantity", "sum"),
                quote_volume=("notional", "sum"))
    out["vwap"] = out["quote_volume"] / out["volume"]
    return out


def _pandas_features(b, full: bool = True):
    import pandas as pd

    f = pd.DataFrame(index=b.index)
    f["delta"] = b["buy_volume"] - b["sell_volume"]
    f["ofi"] = f["delta"] / b["volume"]
    f["cum_delta"] = f["delta"].cumsum()
    f["avg_buy_size"] = b["buy_volume"] / b["buy_count"]
    f["avg_sell_size"] = b["sell_volume"] / b["sell_count"]
    f["large_trade_ratio"] = b["large_volume"] / b["volume"]
    f["rvwap"] = b["quote_volume"].rolling(20).sum() / b["volume"].rolling(20).sum()
    f["vwap_deviation"] = (b["close"] - f["rvwap"]) / f["rvwap"]
    f["buy_sell_vwap_diff"] = b["buy_vwap"] - b["sell_vwap"]
    f["trade_intensity"] = b["trade_count"] / np.maximum(b["duration_ns"] / 1e6, 1.0)
    f["price_impact"] = (b["close"] - b["open"]) / b["volume"]
    f["uptick_ratio"] = b["upticks"] / (b["upticks"] + b["downticks"])
    rv20, rv200 = np.sqrt(b["realized_var"].rolling(20).mean()), np.sqrt(b["realized_var"].rolling(200).mean())
    f["realized_vol_20"], f["realized_vol_200"], f["vol_ratio"] = rv20, rv200, rv20 / rv200
    prev = b["close"].shift()
    tr = pd.concat([b["high"] - b["low"], (b["high"] - prev).abs(), (b["low"] - prev).abs()], axis=1).max(axis=1)
    for n in (14, 100):
        f[f"atr{n}"] = tr.ewm(alpha=1 / n, adjust=False, min_periods=n).mean()
    for span in (12, 48):
        f[f"ema{span}"] = b["close"].ewm(span=span, adjust=False, min_periods=span).mean()
    f["sma20"] = b["close"].rolling(20).mean()
    if not full:
        return f
    dp = b["close"].diff()
    f["kyle_lambda"] = dp.rolling(50).cov(f["delta"]) / f["delta"].rolling(50).var()
    gain, loss = dp.clip(lower=0), (-dp).clip(lower=0)
    ag, al = gain.ewm(alpha=1 / 14, adjust=False).mean(), loss.ewm(alpha=1 / 14, adjust=False).mean()
    f["rsi"] = 100 * ag / (ag + al)
    up, down = b["high"].diff(), -b["low"].diff()
    pdm = pd.Series(np.where((up > down) & (up > 0), up, 0.0), index=b.index)
    mdm = pd.Series(np.where((down > up) & (down > 0), down, 0.0), index=b.index)
    atr = tr.ewm(alpha=1 / 14, adjust=False).mean()
    f["plus_di"] = 100 * pdm.ewm(alpha=1 / 14, adjust=False).mean() / atr
    f["minus_di"] = 100 * mdm.ewm(alpha=1 / 14, adjust=False).mean() / atr
    dx = 100 * (f["plus_di"] - f["minus_di"]).abs() / (f["plus_di"] + f["minus_di"])
    f["adx"] = dx.ewm(alpha=1 / 14, adjust=False).mean()
    f["return_skew"] = np.log(b["close"]).diff().rolling(50).skew()
    for span in (5, 10):
        f[f"ofi_ema{span}"] = f["ofi"].ewm(span=span, adjust=False, min_periods=span).mean()
    idx = pd.Series(np.arange(len(b), dtype=float), index=b.index)
    f["cum_delta_slope"] = f["cum_delta"].rolling(20).cov(idx) / idx.rolling(20).var()
    f["duration_ratio"] = b["duration_ns"] / b["duration_ns"].rolling(50).mean()
    for c in ("ofi", "trade_intensity", "large_trade_ratio", "price_impact", "delta"):
        for w in (20, 100, 500):
            r = f[c].rolling(w)
            f[f"{c}_z{w}"] = (f[c] - r.mean()) / r.std()
    return f


def pandas_pipeline(a: dict, threshold: float):
    """The same work in straightforward pandas: volume bars with every bar field (large trades,
    tick rule, realized variance, buy/sell VWAPs), 1h bars, the feature set, and the 1h join."""
    import pandas as pd

    df = _pandas_bar_frame(a)
    bars = _pandas_aggregate(df, (df["quantity"].cumsum() // threshold).astype("int64"))
    hour = _pandas_aggregate(df, df["ts_event"] // 3_600_000_000_000)
    hour["ts_event"] = (hour.index + 1) * 3_600_000_000_000
    feats = _pandas_features(bars)
    hf = _pandas_features(hour, full=False).add_prefix("h1_")
    hf["h1_ts_event"] = hour["ts_event"].to_numpy()
    feats["ts_event"] = bars["ts_close"].to_numpy()
    return pd.merge_asof(feats, hf, left_on="ts_event", right_on="h1_ts_event", direction="backward")


# ---------------------------------------------------------------- helpers
def timed(fn, *args, repeat: int = 1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best, out


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def child_peak_memory(stage: str, npz: str, threshold: float, bars_per_day: int) -> None:
    """Runs in a fresh process: warm up (compile) on a tiny slice, then measure one stage."""
    small = {c: np.load(npz)[c][:5000] for c in COLS}
    volume_bars(small, threshold)
    full_pipeline(small, bars_per_day, threshold)
    base = _status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS counter (VmHWM)
    with np.load(npz) as z:
        a = {c: np.ascontiguousarray(z[c]) for c in COLS}
    nbytes = sum(v.nbytes for v in a.values())
    if stage == "volume":
        volume_bars(a, threshold)
    else:
        full_pipeline(a, bars_per_day, threshold)
    peak = _status_kb("VmHWM")
    print(json.dumps({"stage": stage, "input_mb": nbytes / 2**20, "peak_mb": (peak - base) / 1024,
                      "ratio": (peak - base) * 1024 / nbytes}))


def measure_memory(a: dict, threshold: float, bars_per_day: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as d:
        npz = os.path.join(d, "trades.npz")
        np.savez(npz, **{c: a[c] for c in COLS})
        rows = []
        for stage in ("volume", "full"):
            r = subprocess.run([sys.executable, __file__, "--child", stage, "--npz", npz, "--threshold",
                                str(threshold), "--bars-per-day", str(bars_per_day)],
                               capture_output=True, text=True, check=True)
            rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
        return rows


def arrays_of(df: pl.DataFrame) -> dict:
    return {c: np.ascontiguousarray(df[c].to_numpy()) for c in COLS}


def real_samples() -> dict[str, pl.DataFrame]:
    from market.ingest import read_tardis_trades, read_ws_capture

    data = Path(os.environ.get("FLOWTRADER_DATA", ROOT.parent / "shared" / "data")) / "binance"
    out = {}
    for name in ("usdm_btcusdt_20240808.gz", "spot_btcusdt_20240808.gz", "usdm_ethusdt_20240808.gz"):
        p = data / "ws" / name
        if p.exists():
            cap = read_ws_capture(p)
            for sym, f in cap.trades.items():
                out[f"{name} {sym}"] = f
    p = data / "trades" / "tardis_BTCUSDT-usdm-trades-2020-02-22.csv"
    if p.exists():
        out["tardis BTCUSDT 2020-02-22"] = read_tardis_trades(p).frame
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trades", type=float, default=20e6, help="synthetic trades (default 20M)")
    ap.add_argument("--pandas-trades", type=float, default=2e6, help="trades given to the pandas baseline")
    ap.add_argument("--child", choices=["volume", "full"], help=argparse.SUPPRESS)
    ap.add_argument("--npz", help=argparse.SUPPRESS)
    ap.add_argument("--threshold", type=float, default=0.0, help=argparse.SUPPRESS)
    ap.add_argument("--bars-per-day", type=int, default=2000, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_peak_memory(args.child, args.npz, args.threshold, args.bars_per_day)
        return

    from market.synth import SynthConfig, generate_trades

    import pandas  # noqa: F401  (import cost outside the baseline's timing)

    n = int(args.trades)
    generate_trades(SynthConfig(seed=1, symbol="BENCHUSDT", n_trades=10_000))  # compile outside the timing
    t_gen, df = timed(generate_trades, SynthConfig(seed=1, symbol="BENCHUSDT", n_trades=n))
    a = arrays_of(df)
    del df
    days = (a["ts_event"][-1] - a["ts_event"][0]) / 86_400e9
    threshold = float(a["quantity"].sum() / max(days, 1e-9) / 2000)  # ≈ 2000 bars per day
    print(f"input: {n:,} synthetic trades over {days:.1f} days, generated in {t_gen:.2f}s "
          f"({n / t_gen / 1e6:.1f}M trades/s); volume threshold {threshold:.4g}")

    small = {c: v[:5000] for c, v in a.items()}
    volume_bars(small, threshold)  # compile / load the numba cache outside the timings
    full_pipeline(small, 2000, threshold)

    t_vol, bars = timed(volume_bars, a, threshold, repeat=3)
    t_full, feats = timed(full_pipeline, a, 2000, threshold, repeat=2)
    m = min(n, int(args.pandas_trades))
    sub = {c: v[:m] for c, v in a.items()}
    t_pd_vol, _ = timed(pandas_volume_bars, sub, threshold, repeat=2)
    t_pd_full, _ = timed(pandas_pipeline, sub, threshold, repeat=2)
    ours_vol, ours_full = n / t_vol, n / t_full
    pd_vol, pd_full = m / t_pd_vol, m / t_pd_full

    print("\n== synthetic ==")
    print(f"{'stage':<34}{'trades/s':>14}{'pandas trades/s':>18}{'speed-up':>10}")
    print(f"{'volume bars':<34}{ours_vol:>14,.0f}{pd_vol:>18,.0f}{ours_vol / pd_vol:>9.1f}x"
          f"   ({bars.height:,} bars; target ≥ 20M/s)")
    print(f"{'full bars + features pipeline':<34}{ours_full:>14,.0f}{pd_full:>18,.0f}{ours_full / pd_full:>9.1f}x"
          f"   ({feats.height:,} bars × {feats.width - 1} features; target ≥ 3M/s)")
    print("\n== peak memory (child process per stage, inputs included) ==")
    for r in measure_memory(a, threshold, 2000):
        print(f"{r['stage']:<10} input {r['input_mb']:8.1f} MB  peak {r['peak_mb']:8.1f} MB  "
              f"= {r['ratio']:.2f}× input (target ≤ 3×)")

    print("\n== real samples (../shared/data) ==")
    for name, f in real_samples().items():
        ra = arrays_of(f)
        k = len(ra["id"])
        thr = float(ra["quantity"].sum() / 500)
        t1, b = timed(volume_bars, ra, thr, repeat=5)
        dyn = float(ra["quantity"].sum() / 200)
        t2, ff = timed(full_pipeline, ra, 2000, dyn, repeat=3)
        t3, _ = timed(pandas_volume_bars, ra, thr, repeat=3)
        print(f"{name:<42} {k:>7,} trades: volume bars {k / t1:>12,.0f}/s ({(k / t1) / (k / t3):.1f}x pandas), "
              f"full pipeline {k / t2:>11,.0f}/s")


if __name__ == "__main__":
    main()
