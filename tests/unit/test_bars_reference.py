"""Bars against hand-computed cases and against a plain python/pandas reference implementation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import DataError
from market.bars import (
    BarBuilder,
    DollarBars,
    DynamicVolumeBars,
    LargeTradeConfig,
    TickBars,
    TimeBars,
    VolumeBars,
    build_bars,
)
from market.bars.quantile import ring_quantile_nb
from market.schema import BAR_SCHEMA

DAY = 86_400 * 10**9
NO_LARGE = LargeTradeConfig(window=0)
INT_COLS = [c for c, t in BAR_SCHEMA.items() if t == pl.Int64]
FLOAT_COLS = [c for c, t in BAR_SCHEMA.items() if t == pl.Float64]


# --------------------------------------------------------------------------- data
def random_trades(seed: int, n: int, days: float = 0.02, start_day: int = 18_600) -> pl.DataFrame:
    """Random trades with ties in price, size and timestamp, spread over `days` UTC days."""
    rng = np.random.default_rng(seed)
    span = int(days * DAY)
    ts = np.sort(rng.integers(0, span, n)).astype(np.int64) + start_day * DAY
    ts[1::7] = ts[0:-1:7][: len(ts[1::7])]  # duplicate timestamps
    ts = np.maximum.accumulate(ts)
    price = np.round(100.0 * np.exp(np.cumsum(rng.normal(0, 4e-4, n))), 2)
    qty = np.round(rng.lognormal(-1.0, 1.0, n), 3) + 0.001
    return pl.DataFrame({
        "id": np.arange(1_000, 1_000 + n, dtype=np.int64),
        "ts_event": ts,
        "price": price,
        "quantity": qty,
        "is_buyer_maker": rng.random(n) < 0.45,
    })


def trades_from_rows(rows) -> pl.DataFrame:
    ids, ts, p, q, m = zip(*rows)
    return pl.DataFrame({"id": list(ids), "ts_event": list(ts), "price": [float(x) for x in p],
                         "quantity": [float(x) for x in q], "is_buyer_maker": list(m)},
                        schema={"id": pl.Int64, "ts_event": pl.Int64, "price": pl.Float64,
                                "quantity": pl.Float64, "is_buyer_maker": pl.Boolean})


# --------------------------------------------------------------------------- reference
def reference_large_thresholds(qty: np.ndarray, large: LargeTradeConfig) -> np.ndarray:
    thr = np.full(len(qty), np.nan)
    if large.window == 0:
        return thr
    cur = np.nan
    for k in range(len(qty)):
        if k >= large.window and (k - large.window) % large.refresh == 0:
            cur = float(np.quantile(qty[k - large.window:k], large.quantile))
        thr[k] = cur
    return thr


def reference_daily_thresholds(ts, qty, spec: DynamicVolumeBars) -> dict[int, float]:
    """{day: threshold} from plain per-day sums (sequential, oldest day first)."""
    day_vol: dict[int, float] = {}
    for t, q in zip(ts, qty):
        d = int(t) // DAY
        day_vol[d] = day_vol.get(d, 0.0) + float(q)
    out = {}
    for d in day_vol:
        past = [day_vol[x] for x in range(d - spec.lookback_days, d) if x in day_vol]
        if past:
            total = 0.0
            for v in past:
                total += v
            out[d] = (total / len(past)) / spec.target_bars_per_day
        else:
            out[d] = spec.initial_threshold if spec.initial_threshold is not None else math.nan
    return out


def reference_bars(trades: pl.DataFrame, spec, large: LargeTradeConfig) -> pd.DataFrame:
    """Closed bars by straightforward loops + pandas groupby; no numba, no shared code."""
    df = trades.to_pandas()
    ts = df["ts_event"].to_numpy()
    p = df["price"].to_numpy()
    q = df["quantity"].to_numpy()
    n = len(df)
    direction = np.zeros(n, dtype=np.int64)
    r2 = np.zeros(n)
    d = 0
    for k in range(1, n):
        if p[k] > p[k - 1]:
            d = 1
        elif p[k] < p[k - 1]:
            d = -1
        direction[k] = d
        r2[k] = math.log(p[k] / p[k - 1]) ** 2
    large_thr = reference_large_thresholds(q, large)
    is_large = q >= large_thr  # NaN compares False

    bar = np.full(n, -1, dtype=np.int64)
    bar_thr: list[float] = []
    if isinstance(spec, TimeBars):
        every = spec.every_ns
        bucket = ts // every
        keys = pd.factorize(bucket)[0]
        closed = keys < keys[-1] if n else keys
        bar[closed] = keys[closed]
        bar_thr = [math.nan] * (int(keys[closed].max()) + 1 if closed.any() else 0)
    else:
        day_thr = reference_daily_thresholds(ts, q, spec) if isinstance(spec, DynamicVolumeBars) else None
        cur_bar, cum, cnt, members = 0, 0.0, 0, []
        for k in range(n):
            members.append(k)
            cnt += 1
            if isinstance(spec, TickBars):
                cum, thr = float(cnt), float(spec.trades)
            elif isinstance(spec, VolumeBars):
                cum, thr = cum + q[k], spec.threshold
            elif isinstance(spec, DollarBars):
                cum, thr = cum + p[k] * q[k], spec.threshold
            else:
                cum, thr = cum + q[k], day_thr[int(ts[k]) // DAY]
            if cum >= thr:
                bar[members] = cur_bar
                bar_thr.append(thr)
                cur_bar, cum, cnt, members = cur_bar + 1, 0.0, 0, []

    df["bar"] = bar
    df["buy"] = ~df["is_buyer_maker"]
    df["notional"] = p * q
    df["buy_q"] = np.where(df["buy"], q, 0.0)
    df["sell_q"] = np.where(df["buy"], 0.0, q)
    df["buy_n"] = np.where(df["buy"], p * q, 0.0)
    df["sell_n"] = np.where(df["buy"], 0.0, p * q)
    df["up"] = (direction == 1).astype(np.int64)
    df["down"] = (direction == -1).astype(np.int64)
    df["r2"] = r2
    df["lq"] = np.where(is_large, q, 0.0)
    df["ln"] = is_large.astype(np.int64)
    g = df[df["bar"] >= 0].groupby("bar", sort=True)
    out = pd.DataFrame({
        "ts_open": g["ts_event"].first(), "ts_close": g["ts_event"].last(),
        "first_id": g["id"].first(), "last_id": g["id"].last(),
        "open": g["price"].first(), "high": g["price"].max(), "low": g["price"].min(),
        "close": g["price"].last(), "volume": g["quantity"].sum(), "quote_volume": g["notional"].sum(),
        "trade_count": g["price"].size(), "buy_volume": g["buy_q"].sum(), "sell_volume": g["sell_q"].sum(),
        "buy_count": g["buy"].sum().astype(np.int64), "buy_quote": g["buy_n"].sum(),
        "sell_quote": g["sell_n"].sum(), "upticks": g["up"].sum(), "downticks": g["down"].sum(),
        "realized_var": g["r2"].sum(), "large_volume": g["lq"].sum(), "large_count": g["ln"].sum(),
    }).reset_index(drop=True)
    out["sell_count"] = out["trade_count"] - out["buy_count"]
    out["vwap"] = out["quote_volume"] / out["volume"]
    out["buy_vwap"] = np.where(out["buy_count"] > 0, out["buy_quote"] / out["buy_volume"].where(out["buy_count"] > 0), np.nan)
    out["sell_vwap"] = np.where(out["sell_count"] > 0, out["sell_quote"] / out["sell_volume"].where(out["sell_count"] > 0), np.nan)
    ts_close = out["ts_close"].to_numpy(np.int64)
    duration = np.empty(len(out), dtype=np.int64)
    if len(out):
        duration[0] = ts_close[0] - int(out["ts_open"].iloc[0])
        duration[1:] = ts_close[1:] - ts_close[:-1]
    out["duration_ns"] = duration
    if isinstance(spec, TimeBars):
        out["ts_event"] = (g["ts_event"].first().to_numpy() // spec.every_ns + 1) * spec.every_ns
    else:
        out["ts_event"] = out["ts_close"]
    out["threshold"] = np.asarray(bar_thr[: len(out)], dtype=float)
    return out[list(BAR_SCHEMA)]


def assert_matches_reference(got: pl.DataFrame, ref: pd.DataFrame) -> None:
    assert got.schema == pl.Schema(BAR_SCHEMA)
    assert got.height == len(ref), (got.height, len(ref))
    for c in INT_COLS:
        np.testing.assert_array_equal(got[c].to_numpy(), ref[c].to_numpy().astype(np.int64), err_msg=c)
    for c in FLOAT_COLS:
        np.testing.assert_allclose(got[c].to_numpy(), ref[c].to_numpy(dtype=float), rtol=1e-12, atol=0,
                                   equal_nan=True, err_msg=c)


# --------------------------------------------------------------------------- hand-computed cases
EIGHT = trades_from_rows([
    (1, 1000, 100, 1, False),
    (2, 2000, 101, 2, True),
    (3, 3000, 101, 1, False),
    (4, 4000, 99, 3, True),
    (5, 5000, 100, 1, False),
    (6, 6000, 100, 2, False),
    (7, 7000, 102, 1, True),
    (8, 8000, 98, 4, False),
])
L = math.log


def test_volume_bars_by_hand():
    bars = build_bars(EIGHT, VolumeBars(threshold=4.0), NO_LARGE)
    expected = {
        "ts_event": [3000, 5000, 8000], "ts_open": [1000, 4000, 6000], "ts_close": [3000, 5000, 8000],
        "duration_ns": [2000, 2000, 3000], "first_id": [1, 4, 6], "last_id": [3, 5, 8],
        "open": [100.0, 99.0, 100.0], "high": [101.0, 100.0, 102.0], "low": [100.0, 99.0, 98.0],
        "close": [101.0, 100.0, 98.0], "volume": [4.0, 4.0, 7.0], "quote_volume": [403.0, 397.0, 694.0],
        "trade_count": [3, 2, 3], "buy_volume": [2.0, 1.0, 6.0], "sell_volume": [2.0, 3.0, 1.0],
        "buy_count": [2, 1, 2], "sell_count": [1, 1, 1], "vwap": [403 / 4, 397 / 4, 694 / 7],
        "buy_vwap": [201 / 2, 100.0, 592 / 6], "sell_vwap": [101.0, 99.0, 102.0],
        "upticks": [2, 1, 2], "downticks": [0, 1, 1],
        "realized_var": [L(101 / 100) ** 2, L(99 / 101) ** 2 + L(100 / 99) ** 2,
                         L(102 / 100) ** 2 + L(98 / 102) ** 2],
        "large_volume": [0.0, 0.0, 0.0], "large_count": [0, 0, 0], "threshold": [4.0, 4.0, 4.0],
    }
    assert bars.columns == list(BAR_SCHEMA)
    for c, v in expected.items():
        np.testing.assert_allclose(bars[c].to_numpy(), v, rtol=1e-14, err_msg=c)
    # realized variance sums to the whole series' value
    p = EIGHT["price"].to_numpy()
    assert bars["realized_var"].sum() == pytest.approx(float(np.sum(np.diff(np.log(p)) ** 2)), rel=1e-12)


def test_one_trade_of_three_thresholds_makes_one_bar():
    trades = trades_from_rows([(1, 10, 50, 6.0, False), (2, 20, 51, 1.0, True), (3, 30, 52, 1.0, True)])
    bars = build_bars(trades, VolumeBars(threshold=2.0), NO_LARGE)
    assert bars["volume"].to_list() == [6.0, 2.0]
    assert bars["trade_count"].to_list() == [1, 2]
    assert bars["first_id"].to_list() == [1, 2] and bars["last_id"].to_list() == [1, 3]
    # the overshoot is not carried: the second bar needs its own full threshold
    assert bars["buy_volume"].to_list() == [6.0, 0.0]


def test_tick_bars_by_hand():
    bars = build_bars(EIGHT, TickBars(trades=3), NO_LARGE)
    assert bars["first_id"].to_list() == [1, 4]
    assert bars["last_id"].to_list() == [3, 6]
    assert bars["volume"].to_list() == [4.0, 6.0]
    assert bars["threshold"].to_list() == [3.0, 3.0]
    assert bars["upticks"].to_list() == [2, 2] and bars["downticks"].to_list() == [0, 1]
    assert bars["duration_ns"].to_list() == [2000, 3000]


def test_dollar_bars_by_hand():
    bars = build_bars(EIGHT, DollarBars(threshold=400.0), NO_LARGE)
    assert bars["last_id"].to_list() == [3, 6, 8]
    assert bars["quote_volume"].to_list() == [403.0, 597.0, 494.0]
    assert bars["threshold"].to_list() == [400.0, 400.0, 400.0]


def test_time_bars_by_hand_with_clock_close():
    b = BarBuilder(TimeBars(every="2500ns"), NO_LARGE)
    bars = b.update(EIGHT)
    assert bars["ts_event"].to_list() == [2500, 5000, 7500]
    assert bars["first_id"].to_list() == [1, 3, 5] and bars["last_id"].to_list() == [2, 4, 7]
    assert bars["duration_ns"].to_list() == [1000, 2000, 3000]
    assert bars["high"].to_list() == [101.0, 101.0, 102.0]
    assert all(math.isnan(x) for x in bars["threshold"].to_list())
    assert b.close_until(9_999).height == 0
    assert b.partial()["ts_event"].to_list() == [10_000]
    last = b.close_until(10_000)
    assert last["first_id"].to_list() == [8] and last["ts_event"].to_list() == [10_000]
    assert last["duration_ns"].to_list() == [1000]
    assert b.partial().height == 0 and b.close_until(10**9).height == 0
    with pytest.raises(DataError, match="close_until"):
        b.update(trades_from_rows([(9, 9_500, 99, 1, False)]))
    later = b.update(trades_from_rows([(9, 10_000, 99, 1, False), (10, 13_000, 99, 1, False)]))
    assert later["ts_event"].to_list() == [12_500] and later["duration_ns"].to_list() == [2000]


def test_empty_time_buckets_produce_no_bar():
    trades = trades_from_rows([(1, 0, 10, 1, False), (2, 10_000, 11, 1, False), (3, 10_001, 11, 1, False)])
    bars = build_bars(trades, TimeBars(every="1us"), NO_LARGE)
    assert bars["ts_event"].to_list() == [1_000]
    assert bars["duration_ns"].to_list() == [0]


def test_large_trades_by_hand():
    # sizes 1,2,1,3,1,2,1,4; window 4, refresh 2, median: threshold 1.5 from trade #4 on, again 1.5 at #6
    bars = build_bars(EIGHT, VolumeBars(threshold=4.0), LargeTradeConfig(quantile=0.5, window=4, refresh=2))
    assert bars["large_count"].to_list() == [0, 0, 2]
    assert bars["large_volume"].to_list() == [0.0, 0.0, 6.0]


def test_dynamic_bars_by_hand():
    rows = [(1, 0 * DAY + 1, 10, 3, False), (2, 0 * DAY + 2, 10, 5, True),  # day 0: 8, threshold initial 10
            (3, 1 * DAY + 1, 10, 4, False), (4, 1 * DAY + 2, 10, 1, False),  # day 1: threshold 8/2 = 4
            (5, 3 * DAY + 1, 10, 5, True), (6, 3 * DAY + 2, 10, 2, True)]  # day 3: mean(8, 5)/2 = 3.25
    spec = DynamicVolumeBars(target_bars_per_day=2, lookback_days=3, initial_threshold=10.0)
    bars = build_bars(trades_from_rows(rows), spec, NO_LARGE)
    # bar 1 = trades 1..3 (3+5 < 10, +4 = 12 >= 4 on day 1); bar 2 = trades 4..5 (1+5 >= 3.25)
    assert bars["last_id"].to_list() == [3, 5]
    assert bars["threshold"].to_list() == [4.0, 3.25]
    assert bars["volume"].to_list() == [12.0, 6.0]


def test_dynamic_without_history_raises_on_first_trade_and_accepts_seed():
    spec = DynamicVolumeBars(target_bars_per_day=2, lookback_days=2)
    trades = trades_from_rows([(1, 5 * DAY + 1, 10, 3, False), (2, 5 * DAY + 2, 10, 3, False)])
    with pytest.raises(DataError, match="initial_threshold") as err:
        build_bars(trades, spec, NO_LARGE)
    assert err.value.line == 1
    bars = build_bars(trades, spec, NO_LARGE, daily_volumes={3: 4.0, 4: 8.0})
    assert bars["threshold"].to_list() == [3.0, 3.0]  # mean(4, 8) / 2
    with pytest.raises(DataError, match="seeded"):
        build_bars(trades, spec, NO_LARGE, daily_volumes={5: 4.0})
    gap = trades_from_rows([(1, 5 * DAY + 1, 10, 3, False), (2, 8 * DAY, 10, 3, False)])
    with pytest.raises(DataError, match="row 1") as err:
        build_bars(gap, spec, NO_LARGE, daily_volumes={4: 8.0})
    assert err.value.line == 2


# --------------------------------------------------------------------------- reference comparisons
SPECS = [
    TimeBars(every="7s"),
    TimeBars(every="1m"),
    TickBars(trades=1),
    TickBars(trades=17),
    VolumeBars(threshold=3.3),
    VolumeBars(threshold=0.05),
    DollarBars(threshold=450.0),
]
LARGES = [NO_LARGE, LargeTradeConfig(quantile=0.9, window=50, refresh=7), LargeTradeConfig(quantile=0.5, window=300, refresh=300)]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.kind)
@pytest.mark.parametrize("large", LARGES, ids=["nolarge", "w50r7", "w300r300"])
def test_matches_reference_on_random_trades(spec, large):
    trades = random_trades(seed=SPECS.index(spec) * 1_000 + large.window, n=3_000)
    assert_matches_reference(build_bars(trades, spec, large), reference_bars(trades, spec, large))


@pytest.mark.parametrize("spec", [
    DynamicVolumeBars(target_bars_per_day=40, lookback_days=7, initial_threshold=25.0),
    DynamicVolumeBars(target_bars_per_day=5, lookback_days=2, initial_threshold=7.5),
])
def test_dynamic_matches_reference_on_multi_day_trades(spec):
    parts = [random_trades(seed=d, n=200 + 150 * (d % 4), days=0.99, start_day=18_600 + d) for d in
             (0, 1, 2, 4, 5, 6, 7, 8, 9, 13, 14)]  # gaps on days 3, 10-12
    trades = pl.concat(parts).with_columns(pl.Series("id", np.arange(sum(p.height for p in parts))))
    large = LargeTradeConfig(quantile=0.95, window=400, refresh=100)
    got = build_bars(trades, spec, large)
    assert_matches_reference(got, reference_bars(trades, spec, large))
    # the thresholds: mean daily volume of the trading days among the previous lookback days / target
    days = trades.with_columns((pl.col("ts_event") // DAY).alias("day")).group_by("day").agg(
        pl.col("quantity").sum()).sort("day")
    vol = dict(zip(days["day"].to_list(), days["quantity"].to_list()))
    for ts_event, thr in zip(got["ts_event"].to_list(), got["threshold"].to_list()):
        day = ts_event // DAY
        past = [vol[d] for d in range(day - spec.lookback_days, day) if d in vol]
        expected = sum(past) / len(past) / spec.target_bars_per_day if past else spec.initial_threshold
        assert thr == pytest.approx(expected, rel=1e-12)
    assert len(set(got["threshold"].to_list())) > 5


def test_real_tardis_sample_matches_reference():
    from tests.unit.test_bars_streaming import tardis_trades

    trades = tardis_trades()
    large = LargeTradeConfig(quantile=0.95, window=1_000, refresh=100)
    for spec in (VolumeBars(threshold=25.0), TimeBars(every="1m"), DollarBars(threshold=2e5), TickBars(trades=50)):
        assert_matches_reference(build_bars(trades, spec, large), reference_bars(trades, spec, large))


# --------------------------------------------------------------------------- quantile kernel
@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 6_000), q=st.floats(0.0, 1.0), seed=st.integers(0, 2**32 - 1),
       distinct=st.integers(1, 10_000))
def test_ring_quantile_is_bit_identical_to_numpy(n, q, seed, distinct):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, distinct, n).astype(np.float64) * 0.001
    assert ring_quantile_nb(a, q) == np.quantile(a, q)


@pytest.mark.parametrize("q", [0.0, 0.5, 0.95, 0.999, 1.0])
def test_ring_quantile_continuous_large_window(q):
    a = np.random.default_rng(3).lognormal(size=10_000)
    assert ring_quantile_nb(a, q) == np.quantile(a, q)


def test_ring_quantile_uses_numpys_upper_interpolation_when_weight_is_high():
    # numpy interpolates b - (b - a) * (1 - g) for g >= 0.5; here that differs from a + (b - a) * g
    a = np.array([0.5802716152780979, 0.728840651168763, 1.5092767104594949, 2.8363368255520864,
                  0.8793830798836291, 3.9214577926485394, 0.514173422030197])
    q = 0.6471895115742501
    s = np.sort(a)
    v = 6 * q
    lo, g = int(v), v - int(v)
    assert g >= 0.5
    assert s[lo + 1] - (s[lo + 1] - s[lo]) * (1 - g) != s[lo] + (s[lo + 1] - s[lo]) * g
    assert ring_quantile_nb(a, q) == s[lo + 1] - (s[lo + 1] - s[lo]) * (1 - g) == np.quantile(a, q)
