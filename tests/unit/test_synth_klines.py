"""market.synth.synthesize_from_klines: exact per-minute matching, infeasible minutes, bad input."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import DataError
from core.time import NS_PER_MIN, NS_PER_MS
from market.schema import AGG_TRADES_SCHEMA, KLINES_SCHEMA
from market.synth import INFEASIBLE_REASONS, synthesize_from_klines
from tests.conftest import shared_data_path

T0 = 1_690_848_000_000 * NS_PER_MS  # 2023-08-01 00:00 UTC


def read_binance_klines_csv(path, n_rows: int | None = None) -> pl.DataFrame:
    raw = pl.read_csv(path, n_rows=n_rows)
    return raw.select(
        (pl.col("open_time") * NS_PER_MS).alias("open_time"),
        (pl.col("close_time") * NS_PER_MS).alias("close_time"),
        *[pl.col(c).cast(pl.Float64) for c in ("open", "high", "low", "close", "volume", "quote_volume")],
        pl.col("count").cast(pl.Int64).alias("trade_count"),
        pl.col("taker_buy_volume").cast(pl.Float64),
        pl.col("taker_buy_quote_volume").cast(pl.Float64),
    ).select(list(KLINES_SCHEMA))


def klines(rows: list[tuple]) -> pl.DataFrame:
    """rows: (open, high, low, close, count, volume, taker_buy) in price/size units; 1m each from T0."""
    data = {k: [] for k in KLINES_SCHEMA}
    for i, (o, h, lo, c, n, v, b) in enumerate(rows):
        t = T0 + i * NS_PER_MIN
        for k, x in (("open_time", t), ("close_time", t + NS_PER_MIN - NS_PER_MS), ("open", o), ("high", h),
                     ("low", lo), ("close", c), ("volume", v), ("quote_volume", v * c), ("trade_count", n),
                     ("taker_buy_volume", b), ("taker_buy_quote_volume", b * c)):
            data[k].append(x)
    return pl.DataFrame(data, schema=KLINES_SCHEMA)


def per_minute_units(trades: pl.DataFrame, tick: float, lot: float) -> pl.DataFrame:
    """Independent aggregation of synthetic trades back into integer-unit klines."""
    t = trades.with_columns(
        (pl.col("ts_event") // NS_PER_MIN * NS_PER_MIN).alias("open_time"),
        (pl.col("price") / tick).round().cast(pl.Int64).alias("pu"),
        (pl.col("quantity") / lot).round().cast(pl.Int64).alias("qu"),
    )
    return t.group_by("open_time").agg(
        pl.col("pu").first().alias("o"), pl.col("pu").max().alias("h"), pl.col("pu").min().alias("l"),
        pl.col("pu").last().alias("c"), pl.len().cast(pl.Int64).alias("n"), pl.col("qu").sum().alias("v"),
        pl.col("qu").filter(~pl.col("is_buyer_maker")).sum().alias("b"),
        pl.col("quantity").sum().alias("vol_f"),
        pl.col("quantity").filter(~pl.col("is_buyer_maker")).sum().alias("buy_f"),
    )


def kline_units(kl: pl.DataFrame, tick: float, lot: float) -> pl.DataFrame:
    return kl.select(
        "open_time", "trade_count", "volume", "taker_buy_volume",
        *[(pl.col(c) / tick).round().cast(pl.Int64).alias(k) for c, k in
          (("open", "O"), ("high", "H"), ("low", "L"), ("close", "C"))],
        (pl.col("volume") / lot).round().cast(pl.Int64).alias("V"),
        (pl.col("taker_buy_volume") / lot).round().cast(pl.Int64).alias("B"),
    )


def assert_exact(kl: pl.DataFrame, res) -> None:
    got = per_minute_units(res.trades, res.tick_size, res.lot_size)
    want = kline_units(kl, res.tick_size, res.lot_size).filter(pl.col("trade_count") > 0)
    j = want.join(got, on="open_time", how="left")
    assert j.height == want.height
    assert j["n"].null_count() == 0, "a minute with trades got none"
    for a, b in (("O", "o"), ("H", "h"), ("L", "l"), ("C", "c"), ("trade_count", "n"), ("V", "v"), ("B", "b")):
        diff = j.filter(pl.col(a) != pl.col(b))
        assert diff.height == 0, (a, diff.head(3))
    for fa, fb in (("volume", "vol_f"), ("taker_buy_volume", "buy_f")):
        x, y = j[fa].to_numpy(), j[fb].to_numpy()
        assert np.all(np.abs(x - y) <= 1e-9 * np.maximum(np.abs(x), 1e-300)), fa
    # no trades in minutes with count 0
    assert got.height == want.height


def assert_trade_invariants(res, kl: pl.DataFrame, first_id: int = 1) -> None:
    tr = res.trades
    assert dict(tr.schema) == AGG_TRADES_SCHEMA
    assert np.array_equal(tr["id"].to_numpy(), np.arange(first_id, first_id + tr.height))
    ts = tr["ts_event"].to_numpy()
    assert np.all(np.diff(ts) >= 0)
    assert tr["ts_init"].equals(tr["ts_event"].alias("ts_init"))
    assert tr["first_trade_id"].equals(tr["last_trade_id"].alias("first_trade_id"))
    assert np.all(tr["quantity"].to_numpy() / res.lot_size > 0.999)
    # every timestamp inside its kline's [open_time, open_time + 1m)
    starts = kl["open_time"].to_numpy()
    idx = np.searchsorted(starts, ts, side="right") - 1
    assert np.all(idx >= 0) and np.all(ts < starts[idx] + NS_PER_MIN)
    counts = np.bincount(idx, minlength=len(starts))
    assert np.array_equal(counts, kl["trade_count"].to_numpy())


# --- real data ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fil_klines():
    return read_binance_klines_csv(shared_data_path("binance", "klines_1m", "FILUSDT-1m-2023-08.csv"), 3000)


@pytest.mark.realdata
def test_real_fil_klines_match_exactly(fil_klines):
    res = synthesize_from_klines(fil_klines, seed=7)
    assert res.tick_size == 0.001 and res.lot_size == 0.1  # inferred from the decimals
    assert res.minutes == 3000 and res.n_infeasible == 0
    assert res.trades.height == int(fil_klines["trade_count"].sum())
    assert_exact(fil_klines, res)
    assert_trade_invariants(res, fil_klines)
    qerr = res.quote_volume_rel_error[np.isfinite(res.quote_volume_rel_error)]
    assert np.median(np.abs(qerr)) < 1e-3  # prices stay inside each minute's [low, high]
    # buys tend to print on up-ticks
    p = res.trades["price"].to_numpy()
    buy = ~res.trades["is_buyer_maker"].to_numpy()
    up, down = np.diff(p) > 0, np.diff(p) < 0
    assert buy[1:][up].mean() > buy[1:][down].mean() + 0.1


@pytest.mark.realdata
def test_real_klines_deterministic_and_minutes_independent(fil_klines):
    a = synthesize_from_klines(fil_klines, seed=7)
    assert a.trades.equals(synthesize_from_klines(fil_klines, seed=7).trades)
    b = synthesize_from_klines(fil_klines, seed=8)
    assert not a.trades["ts_event"].equals(b.trades["ts_event"])
    # minutes 100..199 alone: same trades as in the full run (ids aside), except the first
    # minute's sides, whose up-tick preference looks at the previous minute's close
    sub = fil_klines.slice(100, 100)
    s = synthesize_from_klines(sub, seed=7, tick_size=0.001, lot_size=0.1)
    t1 = int(sub["open_time"][1])
    cols = ["ts_event", "price", "quantity", "is_buyer_maker"]
    full = a.trades.filter((pl.col("ts_event") >= t1) & (pl.col("ts_event") < t1 + 99 * NS_PER_MIN)).select(cols)
    part = s.trades.filter(pl.col("ts_event") >= t1).select(cols)
    assert full.height > 1000 and full.equals(part)


# --- hand-made klines ---------------------------------------------------------------------------------

def test_single_minute_by_hand():
    kl = klines([(10.0, 10.3, 9.8, 10.1, 6, 2.5, 1.0)])
    res = synthesize_from_klines(kl, seed=1, tick_size=0.1, lot_size=0.1)
    tr = res.trades
    p = np.rint(tr["price"].to_numpy() / 0.1).astype(int)
    q = np.rint(tr["quantity"].to_numpy() / 0.1).astype(int)
    assert len(p) == 6 and p[0] == 100 and p[-1] == 101 and p.max() == 103 and p.min() == 98
    assert q.sum() == 25 and q.min() >= 1
    assert q[~tr["is_buyer_maker"].to_numpy()].sum() == 10
    assert res.n_infeasible == 0


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_feasible_kline_is_matched_exactly(data):
    rows = []
    for _ in range(data.draw(st.integers(1, 6))):
        lo = data.draw(st.integers(1, 500))
        h = lo + data.draw(st.integers(0, 40))
        o = data.draw(st.integers(lo, h))
        c = data.draw(st.integers(lo, h))
        needed = 1 if (o == c == h == lo) else 2 + (h not in (o, c)) + (lo not in (o, c))
        n = data.draw(st.integers(needed, 400)) if data.draw(st.booleans()) else data.draw(st.integers(0, 0))
        if n == 0:
            rows.append((o / 100, o / 100, o / 100, o / 100, 0, 0.0, 0.0))
            continue
        v = data.draw(st.integers(n, n * 50))
        if n == 1:
            b = data.draw(st.sampled_from([0, v]))
        else:
            b = data.draw(st.integers(0, v))
        rows.append((o / 100, h / 100, lo / 100, c / 100, n, v / 1000, b / 1000))
    kl = klines(rows)
    res = synthesize_from_klines(kl, seed=data.draw(st.integers(0, 2**64 - 1)), tick_size=0.01, lot_size=0.001)
    assert res.n_infeasible == 0, res.infeasible
    assert_exact(kl, res)
    assert_trade_invariants(res, kl)


def test_infeasible_minutes_are_listed_and_the_rest_satisfied():
    rows = [
        (10.0, 10.2, 9.9, 10.1, 5, 1.0, 0.4),  # 0: feasible
        (10.1, 10.1, 10.1, 10.1, 0, 0.3, 0.0),  # 1: volume without trades
        (10.0, 10.1, 10.0, 10.1, 1, 0.2, 0.0),  # 2: count 1, open != close
        (10.0, 10.3, 9.7, 10.1, 3, 0.9, 0.3),  # 3: needs 4 trades for O/H/L/C, has 3
        (10.0, 10.0, 10.0, 10.0, 5, 0.003, 0.002),  # 4: 3 lots for 5 trades
        (10.0, 10.0, 10.0, 10.0, 1, 0.5, 0.2),  # 5: one trade cannot be both a buy and a sell
        (10.0, 10.0, 10.0, 10.0, 0, 0.0, 0.0),  # 6: empty minute: nothing to match, feasible
    ]
    kl = klines(rows)
    res = synthesize_from_klines(kl, seed=3, tick_size=0.1, lot_size=0.001)
    inf = res.infeasible
    assert inf["row"].to_list() == [1, 2, 3, 4, 5]
    assert inf["open_time"].to_list() == [T0 + r * NS_PER_MIN for r in (1, 2, 3, 4, 5)]
    assert inf["reason"].to_list() == [
        "volume_without_trades", "count_below_required_prices", "count_below_required_prices",
        "volume_below_count", "no_room_for_taker_split",
    ]
    assert res.n_infeasible == 5
    assert set(INFEASIBLE_REASONS) >= {r for x in inf["reason"] for r in x.split(",")}
    got = per_minute_units(res.trades, 0.1, 0.001).sort("open_time")
    by_min = {int((t - T0) // NS_PER_MIN): r for t, r in zip(got["open_time"], got.iter_rows(named=True))}
    assert set(by_min) == {0, 2, 3, 4, 5}
    assert (by_min[0]["o"], by_min[0]["h"], by_min[0]["l"], by_min[0]["c"]) == (100, 102, 99, 101)
    assert by_min[2]["n"] == 1 and by_min[2]["c"] == 101 and by_min[2]["v"] == 200
    m3 = by_min[3]  # open/close kept, one of the two extremes dropped, volumes exact
    assert m3["n"] == 3 and m3["o"] == 100 and m3["c"] == 101 and (m3["h"] == 103) != (m3["l"] == 97)
    assert m3["v"] == 900 and m3["b"] == 300
    assert by_min[4]["n"] == 5 and by_min[4]["v"] == 5 and by_min[4]["b"] == 2  # taker-buy still exact
    assert by_min[5]["n"] == 1 and by_min[5]["v"] == 500 and by_min[5]["b"] == 0  # sell share is larger


def test_empty_klines():
    res = synthesize_from_klines(pl.DataFrame(schema=KLINES_SCHEMA), seed=1)
    assert res.trades.height == 0 and res.minutes == 0 and res.n_infeasible == 0
    assert dict(res.trades.schema) == AGG_TRADES_SCHEMA


@pytest.mark.parametrize(
    "rows, kw, needle, line",
    [
        ([(10.0, 9.9, 9.8, 10.0, 3, 1.0, 0.5)], {}, "high is below open or close", 1),
        ([(10.0, 10.0, 10.0, 10.0, 3, 1.0, 0.5), (10.0, 10.1, 10.05, 10.0, 3, 1.0, 0.5)], {},
         "low is above open or close", 2),
        ([(10.0, 10.0, 10.0, 10.0, 3, 1.0, 1.5)], {}, "taker_buy_volume exceeds volume", 1),
        ([(10.0, 10.0, 10.0, 10.0, -1, 0.0, 0.0)], {}, "trade_count is negative", 1),
        ([(10.05, 10.05, 10.05, 10.05, 3, 1.0, 0.5)], {"tick_size": 0.1}, "not a multiple of the step", 1),
        ([(10.0, 10.0, 10.0, 10.0, 3, 1.0005, 0.5)], {"lot_size": 0.001}, "volume", 1),
    ],
)
def test_malformed_klines_raise_data_error_with_row(rows, kw, needle, line):
    with pytest.raises(DataError) as e:
        synthesize_from_klines(klines(rows), seed=1, **kw)
    assert needle in str(e.value) and e.value.line == line


def test_unsorted_or_nan_klines_raise():
    kl = klines([(10.0, 10.0, 10.0, 10.0, 1, 1.0, 1.0)] * 2)
    swapped = kl.reverse()
    with pytest.raises(DataError, match="before the previous one ends"):
        synthesize_from_klines(swapped, seed=1)
    nan = kl.with_columns(pl.Series("high", [10.0, float("nan")]))
    with pytest.raises(DataError, match="'high' is null or not finite") as e:
        synthesize_from_klines(nan, seed=1)
    assert e.value.line == 2
    with pytest.raises(DataError, match="seed"):
        synthesize_from_klines(kl, seed=-1)
