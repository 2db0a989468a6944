"""Kline quality checks: each defect with exact counts, gaps, ordering, and a real Binance file."""

from __future__ import annotations

import polars as pl
import pytest

from core.errors import ConfigError, SchemaError
from core.time import NS_PER_MIN, NS_PER_MS
from market.quality import check_klines
from market.schema import KLINES_SCHEMA
from tests.conftest import shared_data_path

T0 = 1_690_848_000_000_000_000  # 2023-08-01 00:00 UTC, on the minute grid
I = NS_PER_MIN


def bar(i: int, o=10.0, h=11.0, lo=9.0, c=10.5, v=100.0, qv=1000.0, n=5, tb=40.0, tbq=400.0, close_time=...):
    ot = T0 + i * I
    return {"open_time": ot, "close_time": ot + I - NS_PER_MS if close_time is ... else close_time, "open": o,
            "high": h, "low": lo, "close": c, "volume": v, "quote_volume": qv, "trade_count": n,
            "taker_buy_volume": tb, "taker_buy_quote_volume": tbq}


def frame(rows) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=KLINES_SCHEMA)


def reasons(res) -> dict[int, str]:
    return dict(zip(res.quarantine["row_number"].to_list(), res.quarantine["reason"].to_list()))


def test_each_defect_gets_its_reason():
    rows = [
        bar(0),
        bar(1, h=9.5),  # high below open/close
        bar(2, lo=10.8),  # low above open
        bar(3, o=float("nan")),
        bar(4, lo=-1.0),
        bar(5, v=-1.0, tb=-2.0),
        bar(6, qv=float("inf")),
        bar(7, tb=150.0),
        bar(8, tbq=1500.0),
        bar(9, n=-1),
        bar(10, close_time=T0 + 11 * I),
        {**bar(11), "open_time": T0 + 11 * I + 30 * 10**9, "close_time": T0 + 12 * I + 30 * 10**9 - NS_PER_MS},
        {**bar(12), "close": None},
        bar(13),
    ]
    res = check_klines(frame(rows), interval_ns=I)
    assert reasons(res) == {
        1: "impossible_ohlc", 2: "impossible_ohlc", 3: "non_finite_price", 4: "non_positive_price",
        5: "negative_volume", 6: "non_finite_volume", 7: "taker_buy_exceeds_volume", 8: "taker_buy_exceeds_volume",
        9: "negative_trade_count", 10: "bad_close_time", 11: "misaligned_open_time", 12: "null_value",
    }
    r = res.report
    assert res.clean["open_time"].to_list() == [T0, T0 + 13 * I]
    assert (r.rows_in, r.rows_kept, r.rows_quarantined, r.duplicates) == (14, 2, 12, 0)
    assert r.missing_bars == [(T0 + I, T0 + 12 * I, 12)] and r.missing_bar_total == 12
    assert r.time_gaps == [(T0, T0 + 13 * I)] and r.reconciles()


def test_optional_columns_null_means_not_provided():
    rows = [{**bar(i), "close_time": None, "quote_volume": None, "trade_count": None, "taker_buy_volume": None,
             "taker_buy_quote_volume": None} for i in range(3)]
    res = check_klines(frame(rows), interval_ns=I)
    assert res.report.rows_kept == 3 and res.report.is_clean


def test_duplicates_conflicts_sorting_and_gaps():
    rows = [bar(2), bar(0), bar(1), bar(0), {**bar(1), "close": 10.6}, bar(5), bar(4), bar(9)]
    res = check_klines(frame(rows), interval_ns=I)
    r = res.report
    assert res.clean["open_time"].to_list() == [T0 + k * I for k in (0, 1, 2, 4, 5, 9)]
    assert res.clean["close"].to_list() == [10.5] * 6  # the first copy of open_time 1 is kept
    assert reasons(res) == {4: "conflicting_duplicate"}
    assert (r.duplicates, r.out_of_order, r.rows_kept) == (1, 5, 6)
    assert r.missing_bars == [(T0 + 3 * I, T0 + 3 * I, 1), (T0 + 6 * I, T0 + 8 * I, 3)]
    assert r.missing_bar_total == 4 and r.time_gap_count == 2
    assert (r.first_ts, r.last_ts) == (T0, T0 + 9 * I)


def test_weekly_interval_uses_first_bar_grid():
    week = 7 * 24 * 60 * I
    monday = 1_690_761_600_000_000_000  # 2023-07-31, a Monday: not on the epoch grid of weeks
    rows = [{**bar(0), "open_time": monday + k * week, "close_time": monday + (k + 1) * week - NS_PER_MS}
            for k in range(3)]
    res = check_klines(frame(rows), interval_ns=week)
    assert res.report.rows_kept == 3 and res.report.is_clean


def test_bad_inputs():
    with pytest.raises(ConfigError, match="interval_ns"):
        check_klines(frame([bar(0)]), interval_ns=0)
    with pytest.raises(SchemaError, match="missing.*taker_buy_quote_volume"):
        check_klines(frame([bar(0)]).drop("taker_buy_quote_volume"), interval_ns=I)
    with pytest.raises(SchemaError, match="open_time: String"):
        check_klines(frame([bar(0)]).with_columns(pl.col("open_time").cast(pl.Utf8)), interval_ns=I)


@pytest.mark.realdata
def test_real_binance_month_is_clean():
    path = shared_data_path("binance", "klines_1m", "FILUSDT-1m-2023-08.csv")
    raw = pl.read_csv(path)
    df = raw.select(
        (pl.col("open_time") * NS_PER_MS).alias("open_time"),
        (pl.col("close_time") * NS_PER_MS).alias("close_time"),
        *[pl.col(c).cast(pl.Float64) for c in ("open", "high", "low", "close", "volume", "quote_volume")],
        pl.col("count").cast(pl.Int64).alias("trade_count"),
        pl.col("taker_buy_volume").cast(pl.Float64),
        pl.col("taker_buy_quote_volume").cast(pl.Float64),
    )
    res = check_klines(df, interval_ns=I, dataset="FILUSDT-1m-2023-08")
    r = res.report
    assert r.rows_in == 31 * 24 * 60 == r.rows_kept
    assert r.is_clean and r.duplicates == 0 and r.missing_bar_total == 0
    assert r.first_ts == T0 and r.last_ts == T0 + (31 * 24 * 60 - 1) * I
    assert res.clean.equals(df)
