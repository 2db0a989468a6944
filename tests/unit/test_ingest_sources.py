"""Tardis and Nautilus readers, and every file reader against the real samples (pandas as the reference)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import polars as pl
import pytest

from core.errors import DataError, SchemaError
from market.ingest import (
    read_binance_klines,
    read_funding_csv,
    read_nautilus_trades_parquet,
    read_ohlcv_csv,
    read_tardis_trades,
)
from market.schema import KLINES_SCHEMA, TRADES_SCHEMA
from tests.conftest import shared_data_path

TARDIS_HEADER = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"


def test_tardis_tiny(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text(TARDIS_HEADER + "\n"
                 "binance-futures,BTCUSDT,1582329602111000,1582329602418379,42377944,buy,9682,0.132\n"
                 "binance-futures,BTCUSDT,1582329602116000,1582329602418420,42377945,sell,9681.5,0.4\n"
                 "binance-futures,BTCUSDT,1582329602117000,1582329602418421,42377946,unknown,9681.5,0.1\n")
    out = read_tardis_trades(p)
    assert list(out.frame.schema.items()) == list(TRADES_SCHEMA.items())
    assert out.frame.rows() == [
        (42377944, 1_582_329_602_111_000_000, 1_582_329_602_418_379_000, 9682.0, 0.132, False),  # taker bought
        (42377945, 1_582_329_602_116_000_000, 1_582_329_602_418_420_000, 9681.5, 0.4, True),  # taker sold
        (42377946, 1_582_329_602_117_000_000, 1_582_329_602_418_421_000, 9681.5, 0.1, None),  # not provided
    ]


def test_tardis_bad_side_and_mixed_symbols(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text(TARDIS_HEADER + "\n"
                 "binance-futures,BTCUSDT,1582329602111000,1582329602418379,1,buy,9682,0.132\n"
                 "binance-futures,BTCUSDT,1582329602111000,1582329602418379,2,long,9682,0.132\n")
    with pytest.raises(DataError) as ei:
        read_tardis_trades(p)
    assert ei.value.line == 3 and "side: 'long'" in str(ei.value)
    q = read_tardis_trades(p, on_error="quarantine")
    assert q.frame["id"].to_list() == [1] and q.rejected["line"].to_list() == [3]
    p.write_text(TARDIS_HEADER + "\n"
                 "binance-futures,BTCUSDT,1582329602111000,1582329602418379,1,buy,9682,0.132\n"
                 "binance-futures,ETHUSDT,1582329602111000,1582329602418379,2,buy,268,0.1\n")
    with pytest.raises(DataError, match="mixes several symbol"):
        read_tardis_trades(p)


def _write_nautilus(path, ts, ids, px, qty, maker):
    pl.DataFrame({"timestamp": ts, "trade_id": ids, "price": px, "quantity": qty, "buyer_maker": maker},
                 schema={"timestamp": pl.Datetime("ms", "UTC"), "trade_id": pl.Int64, "price": pl.Float64,
                         "quantity": pl.Float64, "buyer_maker": pl.Utf8}).write_parquet(path)


def test_nautilus_parquet_tiny(tmp_path):
    p = tmp_path / "n.parquet"
    t0 = dt.datetime(2021, 1, 8, 0, 0, 0, 278000, tzinfo=dt.timezone.utc)
    _write_nautilus(p, [t0, t0 + dt.timedelta(milliseconds=32)], [553287559, 553287560], [39432.48, 39439.44],
                    [0.000263, 0.004376], ["True", "False"])
    out = read_nautilus_trades_parquet(p)
    assert out.frame.rows() == [
        (553287559, 1_610_064_000_278_000_000, 1_610_064_000_278_000_000, 39432.48, 0.000263, True),
        (553287560, 1_610_064_000_310_000_000, 1_610_064_000_310_000_000, 39439.44, 0.004376, False),
    ]


def test_nautilus_parquet_bad_cells(tmp_path):
    p = tmp_path / "n.parquet"
    t0 = dt.datetime(2021, 1, 8, tzinfo=dt.timezone.utc)
    _write_nautilus(p, [t0, t0, t0], [1, 2, 3], [1.0, None, 3.0], [1.0, 1.0, 1.0], ["True", "False", "maybe"])
    with pytest.raises(DataError) as ei:
        read_nautilus_trades_parquet(p)
    assert ei.value.line == 2 and "price: empty or missing" in str(ei.value)
    q = read_nautilus_trades_parquet(p, on_error="quarantine")
    assert q.frame["id"].to_list() == [1]
    assert q.rejected["line"].to_list() == [2, 3] and q.rows_in == 3
    pl.DataFrame({"timestamp": [1], "id": [1]}).write_parquet(tmp_path / "x.parquet")
    with pytest.raises(SchemaError, match="lacks columns"):
        read_nautilus_trades_parquet(tmp_path / "x.parquet")


# --------------------------------------------------------------------------------------------- real samples


@pytest.mark.realdata
def test_real_tardis_trades_match_pandas():
    p = shared_data_path("binance", "trades", "tardis_BTCUSDT-usdm-trades-2020-02-22.csv")
    out = read_tardis_trades(p)
    ref = pd.read_csv(p)
    assert out.frame.height == 9_999 == len(ref) and out.rejected.height == 0
    assert out.frame["id"].to_list() == ref["id"].tolist()
    assert out.frame["ts_event"].to_list() == (ref["timestamp"] * 1000).tolist()
    assert out.frame["ts_init"].to_list() == (ref["local_timestamp"] * 1000).tolist()
    assert out.frame["price"].to_list() == ref["price"].astype(float).tolist()
    assert out.frame["quantity"].to_list() == ref["amount"].astype(float).tolist()
    assert out.frame["is_buyer_maker"].to_list() == (ref["side"] == "sell").tolist()


@pytest.mark.realdata
def test_real_nautilus_parquet_match_pandas():
    p = shared_data_path("binance", "trades", "BTCUSDT-spot-trades-2021-01-08.parquet")
    out = read_nautilus_trades_parquet(p)
    ref = pd.read_parquet(p)
    assert out.frame.height == 2_001 == len(ref)
    assert out.frame["ts_event"].to_list() == [int(t.value) for t in ref["timestamp"].dt.as_unit("ns")]
    assert out.frame["id"].to_list() == ref["trade_id"].tolist()
    assert out.frame["is_buyer_maker"].to_list() == [v == "True" for v in ref["buyer_maker"]]
    assert out.frame["price"].to_list() == ref["price"].tolist()


@pytest.mark.realdata
def test_real_klines_1m_match_pandas():
    p = shared_data_path("binance", "klines_1m", "FILUSDT-1m-2023-08.csv")
    out = read_binance_klines(p)
    ref = pd.read_csv(p)
    assert out.frame.height == 44_640 == len(ref) and out.rejected.height == 0
    assert list(out.frame.schema.items()) == list(KLINES_SCHEMA.items())
    assert out.frame["open_time"].to_list() == (ref["open_time"] * 1_000_000).tolist()
    assert out.frame["close_time"].to_list() == (ref["close_time"] * 1_000_000).tolist()
    for ours, theirs in (("open", "open"), ("high", "high"), ("low", "low"), ("close", "close"), ("volume", "volume"),
                         ("quote_volume", "quote_volume"), ("trade_count", "count"),
                         ("taker_buy_volume", "taker_buy_volume"), ("taker_buy_quote_volume", "taker_buy_quote_volume")):
        assert out.frame[ours].to_list() == ref[theirs].tolist(), ours
    # August has 31 days of minutes with none missing
    assert out.frame["open_time"].diff().drop_nulls().unique().to_list() == [60_000_000_000]


@pytest.mark.realdata
def test_real_klines_1h_ohlcv_match_pandas():
    p = shared_data_path("binance", "klines_1h", "BTCUSDT-usdm-1h-2023-01-01_2025-06-30.csv")
    out = read_ohlcv_csv(p)
    ref = pd.read_csv(p)
    opens = pd.to_datetime(ref["timestamp"], utc=True).dt.as_unit("ns").astype("int64").tolist()
    assert out.frame.height == 21_888 == len(ref)
    assert out.frame["open_time"].to_list() == opens
    assert out.frame["close_time"].to_list() == [t + 3_600_000_000_000 - 1_000_000 for t in opens]
    assert out.frame["close"].to_list() == ref["close"].tolist()
    assert out.frame["trade_count"].null_count() == 21_888


@pytest.mark.realdata
def test_real_funding_match_pandas():
    p = shared_data_path("binance", "funding", "SOLUSDT-usdm-funding-2024-04-05_2026-01-31.csv")
    out = read_funding_csv(p)
    ref = pd.read_csv(p)
    assert out.frame.height == len(ref) == 2_000
    assert out.frame["ts_event"].to_list() == pd.to_datetime(ref["timestamp"], utc=True).dt.as_unit("ns").astype("int64").tolist()
    assert out.frame["funding_rate"].to_list() == ref["rate"].tolist()
