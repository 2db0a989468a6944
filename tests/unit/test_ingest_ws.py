"""Websocket capture reader: every message kind on hand-written captures, malformed lines, and the real captures
checked against an independent line-by-line json reference."""

from __future__ import annotations

import gzip
import json
import zlib
from collections import Counter, defaultdict

import polars as pl
import pytest

from core.errors import DataError
from market.ingest import read_ws_capture
from market.schema import (
    AGG_TRADES_SCHEMA,
    BOOK_TICKER_SCHEMA,
    DEPTH_SCHEMA,
    KLINES_SCHEMA,
    MARK_PRICE_SCHEMA,
    TRADES_SCHEMA,
)
from tests.conftest import shared_data_path

L0 = 1_723_161_254_000_000_000  # receive times (ns) are L0 + line number


def msg(stream: str, data: dict) -> str:
    return json.dumps({"stream": stream, "data": data}, separators=(",", ":"))


KLINE_OPEN = {"t": 1723161240000, "T": 1723161299999, "s": "BTCUSDT", "i": "1m", "f": 1, "L": 9, "o": "61000.0",
              "c": "61001.0", "h": "61002.0", "l": "60999.0", "v": "3.5", "n": 10, "x": False, "q": "213500.5",
              "V": "1.5", "Q": "91500.2", "B": "0"}
KLINE_CLOSED = KLINE_OPEN | {"c": "61003.0", "h": "61004.0", "v": "4.0", "n": 12, "x": True, "q": "244010.0"}

MESSAGES = [
    msg("btcusdt@trade", {"e": "trade", "E": 1723161255001, "s": "BTCUSDT", "t": 100, "p": "61000.10", "q": "0.5",
                          "T": 1723161255000, "m": True, "M": True}),
    msg("ethusdt@trade", {"e": "trade", "E": 1723161255011, "T": 1723161255010, "s": "ETHUSDT", "t": 7,
                          "p": "2600.5", "q": "1.25", "X": "MARKET", "m": False}),
    msg("ethusdt@trade", {"e": "trade", "E": 1723161255012, "T": 1723161255011, "s": "ETHUSDT", "t": 8,
                          "p": "2600.0", "q": "3", "X": "INSURANCE_FUND", "m": True}),
    msg("ethusdt@trade", {"e": "trade", "E": 1723161255013, "T": 1723161255012, "s": "ETHUSDT", "t": 9,
                          "p": "2600.0", "q": "2", "X": "ADL", "m": True}),
    msg("btcusdt@aggTrade", {"e": "aggTrade", "E": 1723161255021, "s": "BTCUSDT", "a": 55, "p": "61000.2",
                             "q": "0.1", "f": 100, "l": 101, "T": 1723161255020, "m": False, "M": True}),
    msg("btcusdt@kline_1m", {"e": "kline", "E": 1723161255030, "s": "BTCUSDT", "k": KLINE_OPEN}),
    msg("btcusdt@kline_1m", {"e": "kline", "E": 1723161300001, "s": "BTCUSDT", "k": KLINE_CLOSED}),
    msg("btcusdt@bookTicker", {"u": 400, "s": "BTCUSDT", "b": "61000.1", "B": "1.5", "a": "61000.2", "A": "2.5"}),
    msg("ethusdt@bookTicker", {"e": "bookTicker", "u": 401, "s": "ETHUSDT", "b": "2600.4", "B": "10", "a": "2600.5",
                               "A": "20", "T": 1723161255040, "E": 1723161255041}),
    msg("btcusdt@depth@100ms", {"e": "depthUpdate", "E": 1723161255100, "s": "BTCUSDT", "U": 500, "u": 502,
                                "b": [["61000.1", "1.0"], ["60999.0", "0.0"]], "a": [["61000.2", "3"]]}),
    json.dumps({"lastUpdateId": 499, "E": 1723161255110, "T": 1723161255105, "symbol": "BTCUSDT",
                "bids": [["61000.0", "2"]], "asks": [["61000.3", "4"]]}),
    msg("ethusdt@depth@0ms", {"e": "depthUpdate", "E": 1723161255201, "T": 1723161255200, "s": "ETHUSDT", "U": 900,
                              "u": 905, "pu": 899, "b": [["2600.1", "5.5"]], "a": []}),
    msg("ethusdt@markPrice@1s", {"e": "markPriceUpdate", "E": 1723161256000, "s": "ETHUSDT", "p": "2600.3",
                                 "P": "2601.0", "i": "2600.9", "r": "0.0001", "T": 1723190400000}),
    msg("ethusd_240927@markPrice", {"e": "markPriceUpdate", "E": 1723161256001, "s": "ETHUSD_240927",
                                    "p": "2610.5", "P": "2611.0", "r": "", "T": 0}),
    msg("btcusdt@depth5@100ms", {"lastUpdateId": 1, "bids": [], "asks": []}),
    json.dumps({"data": {"e": "trade", "E": 1723161255501, "s": "BTCUSDT", "t": 101, "p": "61000.0", "q": "0.25",
                         "T": 1723161255500, "m": False}, "stream": "btcusdt@trade"}),
]


def capture_text(messages=MESSAGES, base=L0, step=1) -> str:
    return "".join(f"{base + i * step} {m}\n" for i, m in enumerate(messages, start=1))


def write_gz(tmp_path, text: str, name="cap.gz"):
    p = tmp_path / name
    p.write_bytes(gzip.compress(text.encode()))
    return p


def reconciles(cap) -> bool:
    return cap.lines == sum(cap.messages.values()) + sum(cap.unknown_streams.values()) + cap.rejected.height


def test_every_message_kind(tmp_path):
    cap = read_ws_capture(write_gz(tmp_path, capture_text()))
    assert cap.lines == 16 and cap.rejected.height == 0 and reconciles(cap)
    assert cap.messages == {"trade": 5, "aggTrade": 1, "kline": 2, "bookTicker": 2, "markPriceUpdate": 2,
                            "depthUpdate": 2, "depthSnapshot": 1}
    assert cap.unknown_streams == {"btcusdt@depth5@100ms": 1}
    assert cap.non_market_trades == {"ADL": 1, "INSURANCE_FUND": 1}
    assert cap.symbols() == ["BTCUSDT", "ETHUSDT", "ETHUSD_240927"]
    ms = 1_000_000

    assert cap.trades["BTCUSDT"].rows() == [
        (100, 1723161255000 * ms, L0 + 1, 61000.10, 0.5, True),
        (101, 1723161255500 * ms, L0 + 16, 61000.0, 0.25, False),  # keys in another order: still parsed
    ]
    assert cap.trades["ETHUSDT"].rows() == [(7, 1723161255010 * ms, L0 + 2, 2600.5, 1.25, False)]
    assert cap.agg_trades["BTCUSDT"].rows() == [(55, 1723161255020 * ms, L0 + 5, 61000.2, 0.1, False, 100, 101)]

    assert list(cap.klines["BTCUSDT"]) == ["1m"]
    assert cap.klines["BTCUSDT"]["1m"].rows() == [  # closed klines only
        (1723161240000 * ms, 1723161299999 * ms, 61000.0, 61004.0, 60999.0, 61003.0, 4.0, 244010.0, 12, 1.5, 91500.2)]
    upd = cap.kline_updates["BTCUSDT"]["1m"]
    assert upd["is_closed"].to_list() == [False, True]
    assert upd["ts_event"].to_list() == [1723161255030 * ms, 1723161300001 * ms]
    assert upd["ts_init"].to_list() == [L0 + 6, L0 + 7]
    assert upd["close"].to_list() == [61001.0, 61003.0]

    assert cap.book_ticker["BTCUSDT"].rows() == [(400, L0 + 8, L0 + 8, 61000.1, 1.5, 61000.2, 2.5)]  # spot: no E
    assert cap.book_ticker["ETHUSDT"].rows() == [(401, 1723161255040 * ms, L0 + 9, 2600.4, 10.0, 2600.5, 20.0)]

    assert cap.depth["BTCUSDT"].rows() == [
        (1723161255100 * ms, L0 + 10, 500, 502, None, False, "bid", 61000.1, 1.0),
        (1723161255100 * ms, L0 + 10, 500, 502, None, False, "bid", 60999.0, 0.0),
        (1723161255100 * ms, L0 + 10, 500, 502, None, False, "ask", 61000.2, 3.0),
        (1723161255105 * ms, L0 + 11, 499, 499, None, True, "bid", 61000.0, 2.0),
        (1723161255105 * ms, L0 + 11, 499, 499, None, True, "ask", 61000.3, 4.0),
    ]
    assert cap.depth["ETHUSDT"].rows() == [(1723161255200 * ms, L0 + 12, 900, 905, 899, False, "bid", 2600.1, 5.5)]

    assert cap.mark_price["ETHUSDT"].rows() == [(1723161256000 * ms, L0 + 13, 2600.3, 2600.9, 0.0001, 1723190400000 * ms)]
    assert cap.mark_price["ETHUSD_240927"].rows() == [(1723161256001 * ms, L0 + 14, 2610.5, None, None, 0)]

    for d, schema in ((cap.trades, TRADES_SCHEMA), (cap.agg_trades, AGG_TRADES_SCHEMA),
                      (cap.book_ticker, BOOK_TICKER_SCHEMA), (cap.depth, DEPTH_SCHEMA),
                      (cap.mark_price, MARK_PRICE_SCHEMA)):
        for frame in d.values():
            assert list(frame.schema.items()) == list(schema.items())
    assert list(cap.klines["BTCUSDT"]["1m"].schema.items()) == list(KLINES_SCHEMA.items())
    assert sorted(cap.frames_for("BTCUSDT")) == ["agg_trades", "book_ticker", "depth", "klines_1m", "trades"]


def test_microsecond_receive_times_plain_text_and_symbolless_snapshot(tmp_path):
    lines = [
        msg("btcusdt@trade", {"e": "trade", "E": 1680652800000, "s": "BTCUSDT", "t": 3071245454,
                              "p": "28165.47000000", "q": "0.00056000", "T": 1680652799999, "m": True, "M": True}),
        '{"lastUpdateId": 36090299870, "bids": [["28165.47", "7.9"]], "asks": []}',  # spot REST snapshot: no E/T/symbol
    ]
    p = tmp_path / "spot.dat"
    p.write_text("1680652800004107 " + lines[0] + "\n1680652800004231 " + lines[1] + "\n")
    cap = read_ws_capture(p)
    assert cap.trades["BTCUSDT"].rows() == [(3071245454, 1680652799999_000_000, 1680652800004107_000,
                                             28165.47, 0.00056, True)]
    assert cap.depth["BTCUSDT"].rows() == [(1680652800004231_000, 1680652800004231_000, 36090299870, 36090299870,
                                            None, True, "bid", 28165.47, 7.9)]


def test_symbolless_snapshot_in_multi_symbol_capture_is_rejected(tmp_path):
    snap = '{"lastUpdateId": 1, "bids": [["1", "1"]], "asks": []}'
    p = write_gz(tmp_path, capture_text(MESSAGES[:2] + [snap]))
    with pytest.raises(DataError) as ei:
        read_ws_capture(p)
    assert ei.value.line == 3 and "cannot attribute" in str(ei.value)
    cap = read_ws_capture(p, on_error="quarantine")
    assert cap.rejected["line"].to_list() == [3] and reconciles(cap) and cap.depth == {}


GOOD3 = MESSAGES[:2]
T_OK = {"e": "trade", "E": 1723161255001, "s": "BTCUSDT", "t": 100, "p": "1", "q": "1", "T": 1723161255000, "m": True}


@pytest.mark.parametrize("bad, reason_part", [
    (f"{L0} {{not json", "invalid JSON"),
    (f'{L0} {{"stream":"btcusdt@trade","data":{{"e":"trade"', "invalid JSON"),
    (f"{L0}", "no JSON message"),
    ("", "empty line"),
    (f"abc {MESSAGES[0]}", "receive timestamp 'abc' is not an integer"),
    (f"{L0 // 1000} {MESSAGES[0]}", "mixed time units"),
    (f"{L0} " + msg("btcusdt@trade", T_OK | {"p": "abc"}), "p: 'abc' is not a number"),
    (f"{L0} " + msg("btcusdt@trade", {k: v for k, v in T_OK.items() if k != "T"}), "T: empty or missing field"),
    (f"{L0} " + msg("btcusdt@trade", T_OK | {"m": "maybe"}), "m: 'maybe' is not a boolean"),
    (f"{L0} " + msg("btcusdt@trade", T_OK | {"T": 1723161255000000}), "mixed time units"),
    (f"{L0} " + msg("btcusdt@trade", T_OK | {"e": "aggTrade"}), "event type 'aggTrade' on a trade stream"),
    (f"{L0} " + msg("btcusdt@depth", {"e": "depthUpdate", "E": 1723161255100, "s": "BTCUSDT", "U": 1, "u": 2,
                                      "b": [["1", "2", "3"]], "a": []}), "not a [price, quantity] pair"),
    (f"{L0} " + msg("btcusdt@depth", {"e": "depthUpdate", "E": 1723161255100, "s": "BTCUSDT", "U": 1, "u": 2,
                                      "b": [["1", "x"]], "a": []}), "quantity: 'x' is not a number"),
    (f"{L0} " + msg("btcusdt@bookTicker", {"u": 1, "s": "BTCUSDT", "b": "1", "B": "1", "a": "1"}), "A: empty or missing"),
    (f"{L0} [1, 2]", "neither a combined-stream message"),
    (f'{L0} {{"stream":"btcusdt@trade","data":{{"e":"trade","p":{{"x":1}}}}}}', "unexpected message structure"),
])
def test_malformed_lines(tmp_path, bad, reason_part):
    text = f"{L0 + 1} {GOOD3[0]}\n{L0 + 2} {GOOD3[1]}\n{bad}\n{L0 + 4} {MESSAGES[4]}\n"
    p = write_gz(tmp_path, text)
    with pytest.raises(DataError) as ei:
        read_ws_capture(p)
    assert ei.value.line == 3 and ei.value.source == str(p)
    assert reason_part in str(ei.value)
    cap = read_ws_capture(p, on_error="quarantine")
    assert cap.rejected["line"].to_list() == [3] and cap.rejected["raw"].to_list() == [bad]
    assert reason_part in cap.rejected["reason"][0]
    assert cap.lines == 4 and reconciles(cap)
    assert cap.trades["BTCUSDT"]["id"].to_list() == [100] and cap.agg_trades["BTCUSDT"]["id"].to_list() == [55]


def test_truncated_gzip(tmp_path):
    # a capture killed mid-write: the gzip stream stops (at a sync-flush point, so we know exactly what
    # decompresses) in the middle of line 21, with no end-of-stream marker
    text = capture_text(MESSAGES * 2)
    lines = text.splitlines()
    kept = "\n".join(lines[:20]) + "\n" + lines[20][:25]
    z = zlib.compressobj(wbits=31)
    p = tmp_path / "cut.gz"
    p.write_bytes(z.compress(kept.encode()) + z.flush(zlib.Z_SYNC_FLUSH))
    with pytest.raises(DataError, match="gzip stream truncated") as ei:
        read_ws_capture(p)
    assert ei.value.line == 21
    cap = read_ws_capture(p, on_error="quarantine")
    assert cap.truncated and cap.lines == 21 and reconciles(cap)
    assert cap.rejected.rows() == [(21, lines[20][:25], "incomplete last line: gzip stream truncated")]
    assert cap.trades["BTCUSDT"]["id"].to_list() == [100, 101, 100]  # lines 1, 16 and 17 of 20 complete ones


def test_empty_capture(tmp_path):
    with pytest.raises(DataError, match="empty"):
        read_ws_capture(write_gz(tmp_path, ""), on_error="quarantine")


# --------------------------------------------------------------------------------------------- real captures

README_TRADES = {
    "spot_btcusdt_20240808.gz": 9_757, "spot_btcusdt_20240809.gz": 10_147, "spot_ethusdt_20240808.gz": 6_106,
    "spot_ethusdt_20240809.gz": 8_409, "usdm_btcusdt_20240808.gz": 21_313, "usdm_ethusdt_20240808.gz": 14_076,
    "usdm_btcusdt_20240718.gz": 974, "usdm_btcusdt_20240719.gz": 9_727, "usdm_btcusdt_20230404.dat.gz": 2_197,
    "usdm_btcusdt_20230405.dat.gz": 10_738, "spot_btcusdt_20230405.dat.gz": 3_144,
}
ALL_CAPTURES = sorted(README_TRADES) + ["cm_btcusd_perp_20240808.gz", "cm_btcusd_perp_20240809.gz",
                                        "cm_ethusd_perp_20240808.gz", "cm_ethusd_perp_20240809.gz"]


def reference_counts(path):
    """Independent, plain-Python pass over the capture."""
    ref = dict(lines=0, trades=defaultdict(list), non_market=Counter(), raw_trades=0, book=Counter(), depth=Counter(),
               marks=Counter(), snap_levels=0)
    with gzip.open(path, "rt") as fh:
        for line in fh:
            ref["lines"] += 1
            ts_text, js = line.rstrip("\n").split(" ", 1)
            if not js.startswith('{"stream":"'):
                ref["snap_levels"] += js.count('["')  # one '["' opens each [price, qty] level
                continue
            stream = js[len('{"stream":"'):js.index('"', len('{"stream":"'))]
            sym, kind = stream.split("@", 1)
            sym = sym.upper()
            if kind == "trade":
                ref["raw_trades"] += 1
                d = json.loads(js)["data"]
                if d.get("X", "MARKET") == "MARKET":
                    ref["trades"][sym].append((d["t"], d["T"], int(ts_text), float(d["p"]), d["m"]))
                else:
                    ref["non_market"][d["X"]] += 1
            elif kind == "bookTicker":
                ref["book"][sym] += 1
            elif kind.startswith("depth"):
                ref["depth"][sym] += js.count('["')
            elif kind.startswith("markPrice"):
                ref["marks"][sym] += 1
    return ref


@pytest.mark.realdata
@pytest.mark.parametrize("name", ALL_CAPTURES)
def test_real_capture_against_reference(name):
    path = shared_data_path("binance", "ws", name)
    cap = read_ws_capture(path)
    ref = reference_counts(path)
    assert cap.rejected.height == 0 and cap.unknown_streams == {} and not cap.truncated
    assert cap.lines == ref["lines"] and reconciles(cap)
    if name in README_TRADES:
        assert ref["raw_trades"] == README_TRADES[name]  # the README counts raw @trade messages
    assert cap.non_market_trades == dict(ref["non_market"])
    factor = 1_000 if name.endswith(".dat.gz") else 1  # µs receive times in the 2023 captures
    assert sorted(cap.trades) == sorted(ref["trades"])
    for sym, rows in ref["trades"].items():
        frame = cap.trades[sym]
        assert frame["id"].to_list() == [r[0] for r in rows]
        assert frame["ts_event"].to_list() == [r[1] * 1_000_000 for r in rows]
        assert frame["ts_init"].to_list() == [r[2] * factor for r in rows]
        assert frame["price"].to_list() == [r[3] for r in rows]
        assert frame["is_buyer_maker"].to_list() == [r[4] for r in rows]
    assert {s: f.height for s, f in cap.book_ticker.items()} == dict(ref["book"])
    assert {s: f.height for s, f in cap.mark_price.items()} == dict(ref["marks"])
    depth_rows = sum(f.height for f in cap.depth.values())
    assert depth_rows == sum(ref["depth"].values()) + ref["snap_levels"]
    snapshot_rows = sum(int(f["is_snapshot"].sum()) for f in cap.depth.values())
    assert snapshot_rows == ref["snap_levels"]


@pytest.mark.realdata
def test_real_usdm_insurance_fund_trade_is_counted_not_kept():
    cap = read_ws_capture(shared_data_path("binance", "ws", "usdm_btcusdt_20230405.dat.gz"))
    assert cap.non_market_trades == {"INSURANCE_FUND": 1}
    assert cap.trades["BTCUSDT"].height == 10_737 and cap.messages["trade"] == 10_738


@pytest.mark.realdata
def test_real_depth_and_book_values_match_json():
    path = shared_data_path("binance", "ws", "usdm_btcusdt_20240718.gz")
    cap = read_ws_capture(path)
    depth_ref, book_ref = [], []
    with gzip.open(path, "rt") as fh:
        for line in fh:
            ts_text, js = line.rstrip("\n").split(" ", 1)
            m = json.loads(js)
            local = int(ts_text)
            if "stream" not in m:
                ev = m["T"] * 1_000_000
                depth_ref += [(ev, local, m["lastUpdateId"], m["lastUpdateId"], None, True, side, float(p), float(q))
                              for key, side in (("bids", "bid"), ("asks", "ask")) for p, q in m[key]]
                continue
            d = m["data"]
            if d["e"] == "depthUpdate":
                depth_ref += [(d["T"] * 1_000_000, local, d["U"], d["u"], d.get("pu"), False, side, float(p), float(q))
                              for key, side in (("b", "bid"), ("a", "ask")) for p, q in d[key]]
            elif d["e"] == "bookTicker":
                book_ref.append((d["u"], d["T"] * 1_000_000, local, float(d["b"]), float(d["B"]), float(d["a"]),
                                 float(d["A"])))
    assert cap.depth["BTCUSDT"].rows() == depth_ref
    assert cap.book_ticker["BTCUSDT"].rows() == book_ref
    assert pl.DataFrame(cap.depth["BTCUSDT"]).filter(pl.col("is_snapshot")).height > 0


def test_invalid_utf8_and_crlf_lines(tmp_path):
    text = (f"{L0 + 1} {MESSAGES[0]}\r\n".encode() + f"{L0 + 2} ".encode() + b'{"stream":"x@trade","data":\xff}\r\n'
            + f"{L0 + 3} {MESSAGES[4]}\r\n".encode())
    p = tmp_path / "c.gz"
    p.write_bytes(gzip.compress(text))
    with pytest.raises(DataError) as ei:
        read_ws_capture(p)
    assert ei.value.line == 2 and "not valid UTF-8" in str(ei.value)
    cap = read_ws_capture(p, on_error="quarantine")
    assert cap.rejected["line"].to_list() == [2] and "\ufffd" in cap.rejected["raw"][0]
    assert cap.lines == 3 and reconciles(cap)
    assert cap.trades["BTCUSDT"]["ts_init"].to_list() == [L0 + 1]


def test_empty_depth_messages_are_counted(tmp_path):
    empty_update = msg("btcusdt@depth", {"e": "depthUpdate", "E": 1723161255100, "s": "BTCUSDT", "U": 7, "u": 8,
                                         "b": [], "a": []})
    empty_snap = '{"lastUpdateId": 6, "bids": [], "asks": []}'
    cap = read_ws_capture(write_gz(tmp_path, capture_text([MESSAGES[0], empty_snap, empty_update])))
    assert cap.messages["depthSnapshot"] == 1 and cap.messages["depthUpdate"] == 1 and reconciles(cap)
    assert cap.depth == {}  # the long form has no row for a message without levels
