"""Random but valid bar frames for the feature tests, built from random trades aggregated in
pandas (independently of market.bars, which is written elsewhere), and checks of the generator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl

from market.schema import BAR_SCHEMA


def random_trades(n_bars: int, seed: int, t0: int = 1_700_000_000_000_000_000) -> pd.DataFrame:
    """Trades with a `bar` label: 4..30 trades per bar, both sides present in every bar, continuous
    prices (no zero ticks), lognormal sizes, random gaps (including 0 ns) between trades."""
    rng = np.random.default_rng(seed)
    per_bar = rng.integers(4, 31, size=n_bars)
    n = int(per_bar.sum())
    bar = np.repeat(np.arange(n_bars), per_bar)
    price = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 5e-4, size=n)))
    qty = rng.lognormal(-1.0, 1.0, size=n)
    is_buy = rng.random(n) < rng.uniform(0.2, 0.8, size=n_bars)[bar]
    starts = np.concatenate([[0], np.cumsum(per_bar)[:-1]])
    is_buy[starts] = True
    is_buy[starts + 1] = False
    gaps = rng.choice([0, 1_000, 250_000, 3_000_000, 40_000_000], size=n, p=[0.1, 0.2, 0.3, 0.3, 0.1])
    ts = t0 + np.cumsum(gaps)
    return pd.DataFrame({"bar": bar, "ts": ts, "price": price, "qty": qty, "is_buy": is_buy})


def bars_from_trades(tr: pd.DataFrame, large_threshold: float = 1.0) -> pl.DataFrame:
    """Aggregate trades into BAR_SCHEMA bars (ts_event = last trade ts + bar number so that bar
    timestamps are strictly increasing even when trades share a timestamp)."""
    tr = tr.copy()
    logp = np.log(tr["price"].to_numpy())
    ret = np.diff(logp, prepend=logp[0])
    tr["r2"] = ret**2
    dp = np.diff(tr["price"].to_numpy(), prepend=np.nan)
    tr["up"] = dp > 0
    tr["down"] = dp < 0
    tr["quote"] = tr["price"] * tr["qty"]
    tr["bq"] = np.where(tr["is_buy"], tr["qty"], 0.0)
    tr["sq"] = np.where(tr["is_buy"], 0.0, tr["qty"])
    tr["bquote"] = np.where(tr["is_buy"], tr["quote"], 0.0)
    tr["squote"] = np.where(tr["is_buy"], 0.0, tr["quote"])
    tr["large"] = np.where(tr["qty"] >= large_threshold, tr["qty"], 0.0)
    tr["id"] = np.arange(len(tr))
    g = tr.groupby("bar", sort=True)
    b = pd.DataFrame({
        "ts_open": g["ts"].first(),
        "ts_close": g["ts"].last(),
        "first_id": g["id"].first(),
        "last_id": g["id"].last(),
        "open": g["price"].first(),
        "high": g["price"].max(),
        "low": g["price"].min(),
        "close": g["price"].last(),
        "volume": g["qty"].sum(),
        "quote_volume": g["quote"].sum(),
        "trade_count": g["qty"].count(),
        "buy_volume": g["bq"].sum(),
        "sell_volume": g["sq"].sum(),
        "buy_count": g["is_buy"].sum(),
        "upticks": g["up"].sum(),
        "downticks": g["down"].sum(),
        "realized_var": g["r2"].sum(),
        "large_volume": g["large"].sum(),
        "large_count": g["large"].apply(lambda s: int((s > 0).sum())),
        "bquote": g["bquote"].sum(),
        "squote": g["squote"].sum(),
    })
    b["sell_count"] = b["trade_count"] - b["buy_count"]
    b["vwap"] = b["quote_volume"] / b["volume"]
    with np.errstate(invalid="ignore", divide="ignore"):
        b["buy_vwap"] = np.where(b["buy_count"] > 0, b["bquote"] / b["buy_volume"], np.nan)
        b["sell_vwap"] = np.where(b["sell_count"] > 0, b["squote"] / b["sell_volume"], np.nan)
    b["ts_event"] = b["ts_close"] + np.arange(len(b))
    prev_close = b["ts_close"].shift(1)
    b["duration_ns"] = (b["ts_close"] - prev_close).fillna(b["ts_close"] - b["ts_open"]).astype(np.int64)
    b["threshold"] = np.nan
    frame = pl.from_pandas(b.reset_index(drop=True)[list(BAR_SCHEMA)], nan_to_null=False)
    return frame.cast(BAR_SCHEMA)  # type: ignore[arg-type]


def make_bars(n_bars: int, seed: int = 0) -> pl.DataFrame:
    """`n_bars` random valid bars."""
    return bars_from_trades(random_trades(n_bars, seed))


def test_generator_produces_exact_bar_schema():
    bars = make_bars(50, seed=1)
    assert bars.schema == pl.Schema(BAR_SCHEMA)
    assert bars.height == 50


def test_generator_bars_are_consistent():
    bars = make_bars(300, seed=2).to_pandas()
    assert (bars["ts_event"].diff().dropna() > 0).all()
    assert np.allclose(bars["buy_volume"] + bars["sell_volume"], bars["volume"], rtol=1e-12)
    assert (bars["buy_count"] >= 1).all() and (bars["sell_count"] >= 1).all()
    assert (bars["upticks"] + bars["downticks"] == bars["trade_count"].where(bars.index > 0, bars["trade_count"] - 1)).all()
    assert ((bars["low"] <= bars[["open", "close"]].min(axis=1)) & (bars["high"] >= bars[["open", "close"]].max(axis=1))).all()
