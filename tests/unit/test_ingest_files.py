"""Binance public-data file readers: layouts, header/zip/time-unit detection, malformed-input policy."""

from __future__ import annotations

import math
import tempfile
import zipfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import ConfigError, DataError, SchemaError
from core.time import epoch_to_ns_factor
from market.ingest import (
    ParsedData,
    read_binance_agg_trades,
    read_binance_klines,
    read_binance_trades,
    read_funding_csv,
    read_ohlcv_csv,
)
from market.ingest.parsed import epoch_factor_expr
from market.schema import AGG_TRADES_SCHEMA, FUNDING_SCHEMA, KLINES_SCHEMA, TRADES_SCHEMA

AGG_HEADER = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"
TRADES_HEADER = "id,price,qty,quote_qty,time,is_buyer_maker"
KLINES_HEADER = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
                 "taker_buy_quote_volume,ignore")


def write(tmp: Path, name: str, text: str | bytes, *, zip_it: bool = False) -> Path:
    data = text.encode() if isinstance(text, str) else text
    if zip_it:
        p = tmp / (name + ".zip")
        with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(name, data)
        return p
    p = tmp / name
    p.write_bytes(data)
    return p


def assert_schema(df: pl.DataFrame, schema: dict) -> None:
    assert list(df.schema.items()) == list(schema.items())


# --------------------------------------------------------------------------------------------- aggTrades


@pytest.mark.parametrize("zip_it", [False, True])
def test_agg_trades_usdm_with_header_ms(tmp_path, zip_it):
    p = write(tmp_path, "BTCUSDT-aggTrades-2024-01-01.csv", AGG_HEADER + "\n"
              "100,42000.5,0.010,1000,1002,1704067200123,true\n"
              "101,42000.4,1.5,1003,1003,1704067200124,false\n", zip_it=zip_it)
    out = read_binance_agg_trades(p)
    assert_schema(out.frame, AGG_TRADES_SCHEMA)
    assert out.frame.to_dicts() == [
        dict(id=100, ts_event=1_704_067_200_123_000_000, ts_init=1_704_067_200_123_000_000, price=42000.5,
             quantity=0.010, is_buyer_maker=True, first_trade_id=1000, last_trade_id=1002),
        dict(id=101, ts_event=1_704_067_200_124_000_000, ts_init=1_704_067_200_124_000_000, price=42000.4,
             quantity=1.5, is_buyer_maker=False, first_trade_id=1003, last_trade_id=1003),
    ]
    assert out.rejected.height == 0 and out.rows_in == 2 and out.source == str(p)


@pytest.mark.parametrize("zip_it", [False, True])
def test_agg_trades_spot_headerless_microseconds(tmp_path, zip_it):
    # spot files since 2025: no header, µs times, an 8th is_best_match column
    p = write(tmp_path, "BTCUSDT-aggTrades-2025-01-01.csv",
              "7,93500.01,0.00012,70,71,1735689600000001,True,True\n"
              "8,93500.00,0.5,72,72,1735689600999999,False,True\n", zip_it=zip_it)
    out = read_binance_agg_trades(p)
    assert out.frame["ts_event"].to_list() == [1_735_689_600_000_001_000, 1_735_689_600_999_999_000]
    assert out.frame["ts_init"].to_list() == out.frame["ts_event"].to_list()
    assert out.frame["is_buyer_maker"].to_list() == [True, False]
    assert out.frame["id"].to_list() == [7, 8]
    assert out.frame["quantity"].to_list() == [0.00012, 0.5]


def test_trades_usdm_header_and_spot_headerless(tmp_path):
    usdm = write(tmp_path, "u.csv", TRADES_HEADER + "\n5,100.5,2,201,1704067200000,true\n")
    out = read_binance_trades(usdm)
    assert_schema(out.frame, TRADES_SCHEMA)
    assert out.frame.row(0) == (5, 1_704_067_200_000_000_000, 1_704_067_200_000_000_000, 100.5, 2.0, True)
    spot = write(tmp_path, "s.csv", "9,10.0,3.0,30.0,1735689600000000,False,True\n", zip_it=True)
    out = read_binance_trades(spot)
    assert out.frame.row(0) == (9, 1_735_689_600_000_000_000, 1_735_689_600_000_000_000, 10.0, 3.0, False)


@pytest.mark.parametrize("header", [True, False])
def test_klines_any_interval(tmp_path, header):
    rows = ("1690848000000,4.255,4.256,4.252,4.252,25259.1,1690848299999,107451.0165,208,5452.3,23199.1103,0\n"
            "1690848300000,4.251,4.253,4.251,4.253,2476.0,1690848599999,10527.7466,92,1334.3,5673.4734,0\n")
    p = write(tmp_path, "FILUSDT-5m.csv", (KLINES_HEADER + "\n" if header else "") + rows)
    out = read_binance_klines(p)
    assert_schema(out.frame, KLINES_SCHEMA)
    assert out.frame.row(0, named=True) == dict(
        open_time=1_690_848_000_000_000_000, close_time=1_690_848_299_999_000_000, open=4.255, high=4.256,
        low=4.252, close=4.252, volume=25259.1, quote_volume=107451.0165, trade_count=208,
        taker_buy_volume=5452.3, taker_buy_quote_volume=23199.1103)
    assert out.frame["trade_count"].to_list() == [208, 92]


def test_crlf_and_bom_are_not_data(tmp_path):
    p = write(tmp_path, "a.csv", b"\xef\xbb\xbf" + (AGG_HEADER + "\r\n1,2.0,3.0,4,5,1704067200000,True\r\n").encode())
    out = read_binance_agg_trades(p)
    assert out.frame.row(0)[:6] == (1, 1_704_067_200_000_000_000, 1_704_067_200_000_000_000, 2.0, 3.0, True)


def test_header_only_gives_empty_frame_with_schema(tmp_path):
    out = read_binance_agg_trades(write(tmp_path, "h.csv", AGG_HEADER + "\n"))
    assert out.frame.height == 0 and out.rows_in == 0
    assert_schema(out.frame, AGG_TRADES_SCHEMA)


def test_value_problems_pass_through_unchanged(tmp_path):
    # NaN price, negative quantity, duplicate row, unsorted time: the quality layer's business, not ours
    body = ("3,NaN,1.0,30,30,1704067200003,true\n"
            "2,10.0,-1.0,20,20,1704067200002,false\n"
            "2,10.0,-1.0,20,20,1704067200002,false\n"
            "1,10.0,0,10,10,1704067200001,true\n")
    out = read_binance_agg_trades(write(tmp_path, "v.csv", body))
    assert out.frame["id"].to_list() == [3, 2, 2, 1]
    assert math.isnan(out.frame["price"][0])
    assert out.frame["quantity"].to_list() == [1.0, -1.0, -1.0, 0.0]
    assert out.rejected.height == 0


# --------------------------------------------------------------------------------------------- malformed input

GOOD = "1,10.0,1.0,10,10,1704067200001,true"


@pytest.mark.parametrize(
    "bad_line, reason_part",
    [
        ("this is not csv", "expected 7 fields, found 1"),
        ("2,10.0,1.0,10,10,1704067200002,true,extra,more", "expected 7 fields, found 9"),
        ("2,10.0,1.0,10,10,1704067200002", "expected 7 fields, found 6"),
        ("", "expected 7 fields, found 1"),
        ("2,abc,1.0,10,10,1704067200002,true", "price: 'abc' is not a number"),
        ("2,10.0,1.0,10,10,1704067200002,yes", "is_buyer_maker: 'yes' is not a boolean"),
        ("2,10.0,,10,10,1704067200002,true", "quantity: empty or missing field"),
        ("2.5,10.0,1.0,10,10,1704067200002,true", "agg_trade_id: '2.5' is not an integer"),
        ("2,10.0,1.0,10,10,1704067200002000,true", "looks like µs but this file uses ms (line 2)"),
        ("2,10.0,1.0,10,10,1704067,true", "looks like s but this file uses ms"),
    ],
)
def test_malformed_line_raise_and_quarantine(tmp_path, bad_line, reason_part):
    text = AGG_HEADER + "\n" + GOOD + "\n" + bad_line + "\n" + GOOD.replace("1,", "3,", 1) + "\n"
    p = write(tmp_path, "bad.csv", text)
    with pytest.raises(DataError) as ei:
        read_binance_agg_trades(p)
    assert ei.value.line == 3 and ei.value.source == str(p)
    assert reason_part in str(ei.value)
    q = read_binance_agg_trades(p, on_error="quarantine")
    assert q.frame["id"].to_list() == [1, 3]
    assert q.rejected.to_dicts() == [{"line": 3, "raw": bad_line, "reason": q.rejected["reason"][0]}]
    assert reason_part in q.rejected["reason"][0]
    assert q.rows_in == 3  # data lines in the file


def test_mixed_units_first_row_sets_the_unit(tmp_path):
    body = "1,1.0,1.0,1,1,1704067200001000,true\n2,1.0,1.0,2,2,1704067200002,true\n3,1.0,1.0,3,3,1704067200003000,true\n"
    p = write(tmp_path, "m.csv", body)
    with pytest.raises(DataError) as ei:
        read_binance_agg_trades(p)
    assert ei.value.line == 2 and "mixed time units" in str(ei.value)
    q = read_binance_agg_trades(p, on_error="quarantine")
    assert q.frame["ts_event"].to_list() == [1_704_067_200_001_000_000, 1_704_067_200_003_000_000]
    assert q.rejected["line"].to_list() == [2]


def test_invalid_utf8_line_is_rejected_with_its_number(tmp_path):
    p = write(tmp_path, "u.csv", (GOOD + "\n").encode() + b"2,1\xff.0,1.0,1,1,1704067200002,true\n" + (GOOD + "\n").encode())
    with pytest.raises(DataError) as ei:
        read_binance_agg_trades(p)
    assert ei.value.line == 2 and "UTF-8" in str(ei.value)
    assert read_binance_agg_trades(p, on_error="quarantine").rows_in == 3


def test_klines_wrong_field_counts_quarantined(tmp_path):
    good = "1690848000000,1,2,0.5,1.5,10,1690848059999,15,3,5,7.5,0"
    text = (KLINES_HEADER + "\n" + good + "\n" + good + ",extra\n" + good.rsplit(",", 3)[0] + "\n"
            + good.replace("1690848000000", "1690848060000").replace("1690848059999", "1690848119999") + "\n")
    p = write(tmp_path, "k.csv", text, zip_it=True)
    q = read_binance_klines(p, on_error="quarantine")
    assert q.frame["open_time"].to_list() == [1_690_848_000_000_000_000, 1_690_848_060_000_000_000]
    assert q.rejected["line"].to_list() == [3, 4]
    assert q.rejected["reason"].to_list() == ["expected 12 fields, found 13", "expected 12 fields, found 9"]
    with pytest.raises(DataError) as ei:
        read_binance_klines(p)
    assert ei.value.line == 3


def test_file_level_problems_always_raise(tmp_path):
    empty = write(tmp_path, "empty.csv", "")
    for mode in ("raise", "quarantine"):
        with pytest.raises(DataError, match="empty"):
            read_binance_agg_trades(empty, on_error=mode)
    # a real zip, cut short
    whole = write(tmp_path, "t.csv", (GOOD + "\n") * 2000, zip_it=True)
    cut = tmp_path / "cut.zip"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(DataError, match="corrupt or truncated zip") as ei:
        read_binance_agg_trades(cut, on_error="quarantine")
    assert ei.value.source == str(cut)
    # a zip whose compressed data is damaged (CRC/deflate error), directory intact
    blob = bytearray(whole.read_bytes())
    for i in range(60, 200):
        blob[i] ^= 0xFF
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(blob))
    with pytest.raises(DataError, match="corrupt or truncated zip"):
        read_binance_agg_trades(bad)
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as zf:
        zf.writestr("a.csv", GOOD + "\n")
        zf.writestr("b.csv", GOOD + "\n")
    with pytest.raises(DataError, match="exactly one file, found 2"):
        read_binance_agg_trades(two)
    none = tmp_path / "none.zip"
    with zipfile.ZipFile(none, "w"):
        pass
    with pytest.raises(DataError, match="exactly one file, found 0"):
        read_binance_agg_trades(none)
    with pytest.raises(DataError, match="cannot read file"):
        read_binance_agg_trades(tmp_path / "missing.csv")


def test_unexpected_header_is_a_schema_error(tmp_path):
    p = write(tmp_path, "h.csv", "id,price,quantity,first,last,time,maker\n" + GOOD + "\n")
    with pytest.raises(SchemaError) as ei:
        read_binance_agg_trades(p, on_error="quarantine")
    assert ei.value.line == 1 and "unexpected header" in str(ei.value)


def test_bad_on_error_value():
    with pytest.raises(ValueError, match="on_error"):
        read_binance_agg_trades("x.csv", on_error="ignore")


# --------------------------------------------------------------------------------------------- property tests

_CORRUPTIONS = {
    "extra": lambda fields: ",".join(fields + ["9"]),
    "short": lambda fields: ",".join(fields[:-2]),
    "price": lambda fields: ",".join(fields[:1] + ["1.2.3"] + fields[2:]),
    "bool": lambda fields: ",".join(fields[:-1] + ["maybe"]),
    "blank": lambda fields: "",
    "empty_qty": lambda fields: ",".join(fields[:2] + [""] + fields[3:]),
    "unit": lambda fields: ",".join(fields[:5] + [fields[5] + "000"] + fields[6:]),
}

_row = st.tuples(
    st.integers(0, 2**40), st.decimals(min_value="0.01", max_value="99999", places=2, allow_nan=False),
    st.decimals(min_value="0", max_value="1000", places=3), st.integers(1_600_000_000_000, 1_800_000_000_000),
    st.booleans(),
)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(_row, min_size=1, max_size=25), header=st.booleans(),
       bad=st.dictionaries(st.integers(1, 24), st.sampled_from(sorted(_CORRUPTIONS)), max_size=6))
def test_quarantine_reconciles_with_reference(rows, header, bad):
    """Reference: a plain-Python writer/parser; reader output = good rows, rejected = corrupted lines."""
    bad = {i: k for i, k in bad.items() if i < len(rows)}  # row 0 stays good: it sets the time unit
    lines, expected, expected_bad = [], [], []
    offset = 2 if header else 1
    for i, (aid, price, qty, ts, maker) in enumerate(rows):
        fields = [str(aid), str(price), str(qty), str(aid * 2), str(aid * 2 + 1), str(ts), "true" if maker else "False"]
        if i in bad:
            lines.append(_CORRUPTIONS[bad[i]](fields))
            expected_bad.append(i + offset)
        else:
            lines.append(",".join(fields))
            expected.append((aid, ts * 1_000_000, ts * 1_000_000, float(price), float(qty), maker, aid * 2, aid * 2 + 1))
    text = (AGG_HEADER + "\n" if header else "") + "\n".join(lines) + "\n"
    with tempfile.TemporaryDirectory() as d:
        p = write(Path(d), "p.csv", text)
        q = read_binance_agg_trades(p, on_error="quarantine")
        assert q.frame.rows() == expected
        assert q.rejected["line"].to_list() == expected_bad
        assert q.rejected["raw"].to_list() == [lines[n - offset] for n in expected_bad]
        assert q.rows_in == len(rows)
        if expected_bad:
            with pytest.raises(DataError) as ei:
                read_binance_agg_trades(p)
            assert ei.value.line == expected_bad[0]
        else:
            assert read_binance_agg_trades(p).frame.rows() == expected


@given(st.integers(-(10**18), 10**18))
def test_vectorised_unit_detection_matches_core(v):
    got = pl.DataFrame({"t": [v]}).select(epoch_factor_expr("t").alias("f"))["f"][0]
    assert got == epoch_to_ns_factor(v)


# --------------------------------------------------------------------------------------------- OHLCV / funding


def test_ohlcv_text_timestamps_interval_inferred(tmp_path):
    p = write(tmp_path, "o.csv", "timestamp,open,high,low,close,volume\n"
              "2023-01-01 00:00:00,1,2,0.5,1.5,10\n"
              "2023-01-01 01:00:00,1.5,2,1,1.2,11\n"
              "2023-01-01 03:00:00,1.2,1.3,1.1,1.25,12\n")  # a gap: the mode of the steps is still 1 h
    out = read_ohlcv_csv(p)
    assert_schema(out.frame, KLINES_SCHEMA)
    t0 = 1_672_531_200 * 10**9  # 2023-01-01T00:00:00Z
    h = 3_600 * 10**9
    assert out.frame["open_time"].to_list() == [t0, t0 + h, t0 + 3 * h]
    assert out.frame["close_time"].to_list() == [t0 + h - 10**6, t0 + 2 * h - 10**6, t0 + 4 * h - 10**6]
    assert out.frame["close"].to_list() == [1.5, 1.2, 1.25]
    for c in ("quote_volume", "trade_count", "taker_buy_volume", "taker_buy_quote_volume"):
        assert out.frame[c].null_count() == 3  # not provided by the source: null, never 0


def test_ohlcv_interval_given_epoch_and_iso_variants(tmp_path):
    p = write(tmp_path, "o.csv", "1672531200000,1,2,0.5,1.5,10\n")
    out = read_ohlcv_csv(p, interval="4h")
    assert out.frame["close_time"].to_list() == [1_672_531_200 * 10**9 + 4 * 3_600 * 10**9 - 10**6]
    iso = write(tmp_path, "i.csv", "2023-01-01T00:00:00.5Z,1,2,0.5,1.5,10\n2023-01-01 00:01:00.5+00:00,1,2,0.5,1.5,10\n")
    out = read_ohlcv_csv(iso)
    assert out.frame["open_time"].to_list() == [1_672_531_200_500_000_000, 1_672_531_260_500_000_000]
    with pytest.raises(DataError, match="cannot infer the bar interval"):
        read_ohlcv_csv(p)
    with pytest.raises(ConfigError):
        read_ohlcv_csv(p, interval="soon")


def test_ohlcv_bad_timestamp_line(tmp_path):
    p = write(tmp_path, "o.csv", "timestamp,open,high,low,close,volume\n2023-01-01 00:00:00,1,2,0.5,1.5,10\n"
              "2023-02-30 00:00:00,1,2,0.5,1.5,10\n2023-01-01 00:02:00,1,2,0.5,1.5,10\n")
    with pytest.raises(DataError) as ei:
        read_ohlcv_csv(p)
    assert ei.value.line == 3 and "is not a UTC date-time" in str(ei.value)
    q = read_ohlcv_csv(p, on_error="quarantine")
    assert q.frame.height == 2 and q.rejected["line"].to_list() == [3]
    assert q.frame["close_time"].to_list()[0] == 1_672_531_200 * 10**9 + 2 * 60 * 10**9 - 10**6


def test_funding_csv(tmp_path):
    p = write(tmp_path, "f.csv", "timestamp,rate\n2023-01-01 00:00:00.000,0.0001\n2023-01-01 08:00:00.008,-4.923e-05\n")
    out = read_funding_csv(p)
    assert out.frame.schema == pl.Schema(FUNDING_SCHEMA)
    assert out.frame.rows() == [(1_672_531_200 * 10**9, 0.0001, None), (1_672_560_000_008_000_000, -4.923e-05, None)]


def test_parsed_data_rows_in():
    pd_ = ParsedData(pl.DataFrame({"a": [1, 2]}), pl.DataFrame({"line": [3], "raw": ["x"], "reason": ["r"]}), "s")
    assert pd_.rows_in == 3
