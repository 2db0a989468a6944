"""Format detection from content, and read_any dispatch."""

from __future__ import annotations

import gzip
import zipfile

import polars as pl
import pytest

from core.errors import DataError
from market.ingest import (
    ParsedData,
    WsCapture,
    detect_format,
    read_any,
    read_binance_agg_trades,
    read_tardis_trades,
)
from tests.conftest import shared_data_path

SAMPLES = {
    "binance_agg_trades": [
        "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n"
        "1,2.5,3,4,5,1704067200000,true\n",
        "1,2.5,3,4,5,1704067200000,true\n",  # USD-M, no header
        "1,2.5,3,4,5,1735689600000000,True,True\n",  # spot, no header, µs
    ],
    "binance_trades": [
        "id,price,qty,quote_qty,time,is_buyer_maker\n1,2.5,3,7.5,1704067200000,true\n",
        "1,2.5,3,7.5,1704067200000,true\n",
        "1,2.5,3,7.5,1704067200000,True,True\n",
    ],
    "binance_klines": [
        "1690848000000,4.255,4.256,4.252,4.252,25259.1,1690848059999,107451.0165,208,5452.3,23199.1103,0\n",
    ],
    "ohlcv_csv": [
        "timestamp,open,high,low,close,volume\n2023-01-01 00:00:00,1,2,0.5,1.5,10\n2023-01-01 01:00:00,1,2,0.5,1.5,10\n",
        "2021-12-31 23:01:00.000000,46319.0,46385.0,46319.0,46377.0,2300413.7295\n"
        "2021-12-31 23:02:00.000000,46377.0,46411.0,46377.0,46411.0,1829623.1938\n",
    ],
    "funding_csv": ["timestamp,rate\n2023-01-01 00:00:00.000,0.0001\n", "2023-01-01 08:00:00.008,-4.9e-05\n"],
    "tardis_trades": [
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
        "binance-futures,BTCUSDT,1582329602111000,1582329602418379,42377944,buy,9682,0.132\n",
        "binance-futures,BTCUSDT,1582329602111000,1582329602418379,42377944,sell,9682,0.132\n",
    ],
}


@pytest.mark.parametrize("zip_it", [False, True])
@pytest.mark.parametrize("fmt, text", [(f, t) for f, ts in SAMPLES.items() for t in ts])
def test_detect_text_formats(tmp_path, fmt, text, zip_it):
    p = tmp_path / "f.csv"
    p.write_text(text)
    if zip_it:
        z = tmp_path / "f.zip"
        with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.write(p, "f.csv")
        p = z
    assert detect_format(p) == fmt
    out = read_any(p, on_error="quarantine")
    data_rows = sum(1 for line in text.splitlines() if line[0].isdigit() or line.startswith("binance-"))
    assert isinstance(out, ParsedData) and out.rejected.height == 0 and out.frame.height == data_rows


def test_detect_ws_capture_gzip_and_plain(tmp_path):
    line = '1723161254000000000 {"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":1,"p":"1","q":"2",' \
           '"T":1723161255000,"m":true}}\n'
    gz = tmp_path / "c.gz"
    gz.write_bytes(gzip.compress(line.encode()))
    plain = tmp_path / "c.txt"
    plain.write_text(line)
    for p in (gz, plain):
        assert detect_format(p) == "ws_capture"
        cap = read_any(p)
        assert isinstance(cap, WsCapture) and cap.trades["BTCUSDT"]["id"].to_list() == [1]


def test_detect_parquet(tmp_path):
    good = tmp_path / "n.parquet"
    pl.DataFrame({"timestamp": [1_610_064_000_278], "trade_id": [1], "price": [1.0], "quantity": [2.0],
                  "buyer_maker": ["True"]}).write_parquet(good)
    assert detect_format(good) == "nautilus_trades_parquet"
    out = read_any(good)
    assert out.frame.rows() == [(1, 1_610_064_000_278_000_000, 1_610_064_000_278_000_000, 1.0, 2.0, True)]
    other = tmp_path / "o.parquet"
    pl.DataFrame({"a": [1]}).write_parquet(other)
    with pytest.raises(DataError, match=r"unknown columns \['a'\]") as ei:
        detect_format(other)
    assert ei.value.source == str(other)


@pytest.mark.parametrize("content, seen", [
    ("symbol,timestamp,side\nBTCUSDT,1,b\n", "unrecognised header 'symbol,timestamp,side'"),
    ("1,2,3\n", "unrecognised content: 3 fields, first line '1,2,3'"),
    ("hello world\n", "unrecognised"),
])
def test_detect_unknown_names_file_and_content(tmp_path, content, seen):
    p = tmp_path / "u.csv"
    p.write_text(content)
    with pytest.raises(DataError) as ei:
        detect_format(p)
    assert seen in str(ei.value) and ei.value.source == str(p)


def test_detect_empty_gzip_text_and_bad_zip(tmp_path):
    e = tmp_path / "e.csv"
    e.write_text("")
    with pytest.raises(DataError, match="empty"):
        detect_format(e)
    g = tmp_path / "g.gz"
    g.write_bytes(gzip.compress(b"a,b\n1,2\n"))
    with pytest.raises(DataError, match="not '<receive ts> <json>'"):
        detect_format(g)
    z = tmp_path / "z.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a.csv", "1,2.5,3,4,5,1704067200000,true\n" * 500)
    cut = tmp_path / "cut.zip"
    cut.write_bytes(z.read_bytes()[:100])
    with pytest.raises(DataError, match="corrupt or truncated zip"):
        detect_format(cut)


@pytest.mark.realdata
def test_detect_real_samples():
    expect = {
        ("klines_1m", "FILUSDT-1m-2023-08.csv"): "binance_klines",
        ("klines_1m", "FTX-BTC-PERP-1m-2021-12-31_2022-02-01.csv"): "ohlcv_csv",
        ("klines_1h", "ETHUSDT-usdm-1h-2023-01-01_2025-06-30.csv"): "ohlcv_csv",
        ("funding", "BTCUSDT-usdm-funding-2023-01-01_2025-06-30.csv"): "funding_csv",
        ("trades", "tardis_BTCUSDT-usdm-trades-2020-02-22.csv"): "tardis_trades",
        ("trades", "BTCUSDT-spot-trades-2021-01-08.parquet"): "nautilus_trades_parquet",
        ("ws", "spot_btcusdt_20230405.dat.gz"): "ws_capture",
        ("ws", "cm_btcusd_perp_20240808.gz"): "ws_capture",
    }
    for (folder, name), fmt in expect.items():
        assert detect_format(shared_data_path("binance", folder, name)) == fmt, name
    p = shared_data_path("binance", "trades", "tardis_BTCUSDT-usdm-trades-2020-02-22.csv")
    assert read_any(p).frame.equals(read_tardis_trades(p).frame)


def test_read_any_passes_on_error(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("1,2.5,3,4,5,1704067200000,true\n1,x,3,4,5,1704067200000,true\n")
    with pytest.raises(DataError) as ei:
        read_any(p)
    assert ei.value.line == 2
    q = read_any(p, on_error="quarantine")
    assert q.rejected["line"].to_list() == [2]
    assert q.frame.equals(read_binance_agg_trades(p, on_error="quarantine").frame)
