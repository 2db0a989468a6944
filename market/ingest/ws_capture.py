"""Reader for recorded Binance websocket captures: one line = ``<local receive ts> <JSON message>``.

Messages are combined-stream envelopes ``{"stream": "<sym>@<kind>", "data": {...}}``; a line may
also be a REST depth snapshot (no "stream"; lastUpdateId, bids, asks). The file may be gzip
(possibly truncated, as a capture killed mid-write is) or plain text. The receive time is ns
(2024 captures) or µs (2023 ``.dat.gz``), judged by magnitude; ``ts_init`` is that receive time.

What becomes of each stream (frames per symbol, the symbol being the message's ``s``):

- ``trade`` → TRADES_SCHEMA, ``ts_event = T``. USD-M trades carry ``X``: only ``MARKET`` trades
  are market flow; INSURANCE_FUND / ADL / NA trades are liquidation-engine transfers, so they are
  left out of the frame and counted by type in `WsCapture.non_market_trades`.
- ``aggTrade`` → AGG_TRADES_SCHEMA, ``ts_event = T``.
- ``kline_<i>`` → `WsCapture.klines[sym][i]`: closed klines only (``x`` true), KLINES_SCHEMA; every
  update, open ones included, with ``ts_event = E``, ``ts_init`` and ``is_closed`` in `kline_updates`.
- ``bookTicker`` → BOOK_TICKER_SCHEMA; ``depth`` / ``depth@<n>ms`` diff updates and depth snapshots →
  DEPTH_SCHEMA, one row per level (snapshots: ``is_snapshot``, both update ids = lastUpdateId).
  ``ts_event`` is the venue's transaction time ``T`` where sent (USD-M/COIN-M), else the event
  time ``E``, else (spot bookTicker, spot snapshots) the receive time.
- ``markPrice`` / ``markPrice@1s`` → MARK_PRICE_SCHEMA, ``ts_event = E``, ``next_funding_time = T``;
  ``index_price`` / ``funding_rate`` are null where the venue sends none (COIN-M delivery).
- Any other stream (partial-book ``depth5``, tickers, ...) is counted by stream name in
  `unknown_streams`, not parsed.

Malformed lines follow the policy of `market.ingest.parsed`; the counts reconcile:
``lines == sum(messages.values()) + sum(unknown_streams.values()) + rejected.height``.
A depth snapshot without a symbol belongs to the capture's only symbol; in a capture of several
symbols it cannot be attributed and is rejected.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from core.errors import DataError
from core.time import NS_PER_MS, NS_PER_US
from market.ingest.parsed import (
    LINE,
    REJECTED_SCHEMA,
    OnError,
    cast_checked,
    check_on_error,
    drop_lines,
    empty_reasons,
    epochs_to_ns,
    finalize_rejects,
    merge_rejects,
)
from market.schema import (
    AGG_TRADES_SCHEMA,
    BOOK_TICKER_SCHEMA,
    DEPTH_SCHEMA,
    KLINES_SCHEMA,
    MARK_PRICE_SCHEMA,
    TRADES_SCHEMA,
    conform,
)

KLINE_UPDATES_SCHEMA: dict[str, pl.DataType] = (
    {"ts_event": pl.Int64, "ts_init": pl.Int64} | KLINES_SCHEMA | {"is_closed": pl.Boolean}
)

_STREAM_RE = re.compile(r'^\{\s*"stream"\s*:\s*"([^"\\]*)"')
_TIME_UNITS = (NS_PER_MS, NS_PER_US, 1)
_S = pl.Utf8


def _data(**fields: pl.DataType) -> pl.Struct:
    return pl.Struct({"data": pl.Struct(fields)})


# Every scalar decodes as text, then goes through `cast_checked`: polars' JSON decoder would
# otherwise truncate 1.5 to 1 in an integer field without a word.
_DTYPES: dict[str, pl.Struct] = {
    "trade": _data(e=_S, s=_S, t=_S, p=_S, q=_S, T=_S, m=_S, X=_S),
    "aggTrade": _data(e=_S, s=_S, a=_S, p=_S, q=_S, f=_S, l=_S, T=_S, m=_S),
    "kline": _data(e=_S, E=_S, s=_S, k=pl.Struct({c: _S for c in "tTiohlcvnxqVQ"})),
    "bookTicker": _data(e=_S, s=_S, u=_S, b=_S, B=_S, a=_S, A=_S, E=_S, T=_S),
    "depthUpdate": _data(e=_S, s=_S, E=_S, T=_S, U=_S, u=_S, pu=_S, b=pl.List(pl.List(_S)),
                         a=pl.List(pl.List(_S))),
    "markPriceUpdate": _data(e=_S, s=_S, E=_S, p=_S, i=_S, r=_S, T=_S),
}


@dataclass(frozen=True)
class WsCapture:
    """A websocket capture parsed into per-symbol frames (see the module docstring for the mapping)."""

    source: str
    trades: dict[str, pl.DataFrame]
    agg_trades: dict[str, pl.DataFrame]
    klines: dict[str, dict[str, pl.DataFrame]]  # symbol → interval ('1m') → closed klines
    kline_updates: dict[str, dict[str, pl.DataFrame]]  # symbol → interval → every update (KLINE_UPDATES_SCHEMA)
    book_ticker: dict[str, pl.DataFrame]
    depth: dict[str, pl.DataFrame]
    mark_price: dict[str, pl.DataFrame]
    lines: int  # physical lines in the capture
    # accepted lines per kind: trade, aggTrade, kline, bookTicker, depthUpdate, depthSnapshot, markPriceUpdate
    messages: dict[str, int]
    unknown_streams: dict[str, int]  # stream name → lines not parsed
    non_market_trades: dict[str, int]  # X type → trades left out of `trades`
    rejected: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=REJECTED_SCHEMA))
    truncated: bool = False  # the gzip stream ended early (quarantine mode only; raise mode raises)

    def symbols(self) -> list[str]:
        """Every symbol with at least one frame, sorted."""
        keys: set[str] = set()
        for d in (self.trades, self.agg_trades, self.klines, self.book_ticker, self.depth, self.mark_price):
            keys.update(d)
        return sorted(keys)

    def frames_for(self, symbol: str) -> dict[str, pl.DataFrame]:
        """The schema-conformant frames of one symbol keyed by catalog kind ('trades', 'klines_1m', ...)."""
        out: dict[str, pl.DataFrame] = {}
        for kind, d in (("trades", self.trades), ("agg_trades", self.agg_trades), ("book_ticker", self.book_ticker),
                        ("depth", self.depth), ("mark_price", self.mark_price)):
            if symbol in d:
                out[kind] = d[symbol]
        for interval, frame in self.klines.get(symbol, {}).items():
            out[f"klines_{interval}"] = frame
        return out


def read_ws_capture(path: str | Path, *, on_error: OnError = "raise") -> WsCapture:
    """Parse a recorded websocket capture (gzip or plain text) into a `WsCapture`."""
    check_on_error(on_error)
    source = str(path)
    data, truncated = _read_capture_bytes(path)
    text_lines, not_utf8 = _split_lines(data)
    n_lines = len(text_lines)
    if truncated and on_error == "raise":
        raise DataError("gzip stream truncated: the capture ends before its end-of-stream marker", source=source,
                        line=n_lines)
    if n_lines == 0:
        raise DataError("file is empty", source=source)
    raw = pl.DataFrame({"raw": text_lines}, schema={"raw": pl.Utf8}).with_columns(
        pl.int_range(1, n_lines + 1, dtype=pl.Int64).alias(LINE))
    rejects: list[pl.DataFrame] = [pl.DataFrame(
        {"line": sorted(not_utf8), "reason": ["line is not valid UTF-8 text"] * len(not_utf8)},
        schema={"line": pl.Int64, "reason": pl.Utf8})]
    if truncated and data[-1:] != b"\n":
        rejects.append(pl.DataFrame({"line": [n_lines], "reason": ["incomplete last line: gzip stream truncated"]}))

    env, rj = _envelopes(drop_lines(raw, merge_rejects(rejects)))
    rejects.append(rj)
    routed, snapshots, rj = _route_unmatched(env)
    rejects.append(rj)
    names = routed["stream"].unique().to_list()
    kind_map = pl.DataFrame({"stream": names, "kind": [_kind_of(n) for n in names]},
                            schema={"stream": pl.Utf8, "kind": pl.Utf8})
    kinds = routed.join(kind_map, on="stream", how="left", maintain_order="left")
    unknown = kinds.filter(pl.col("kind").is_null())
    unknown_streams = dict(sorted(unknown.group_by("stream").len().iter_rows()))

    parsed: dict[str, pl.DataFrame] = {}
    for kind in _DTYPES:
        sub = kinds.filter(pl.col("kind") == kind).select(LINE, "local", "js")
        decoded, rj = _decode(sub, _DTYPES[kind])
        rejects.append(rj)
        parsed[kind] = decoded

    trades, non_market, rj_t = _trades(parsed["trade"])
    aggs, rj_a = _agg_trades(parsed["aggTrade"])
    klines, rj_k = _klines(parsed["kline"])
    book, rj_b = _book_ticker(parsed["bookTicker"])
    depth, rj_d = _depth_updates(parsed["depthUpdate"])
    marks, rj_m = _mark_price(parsed["markPriceUpdate"])
    rejects += [rj_t, rj_a, rj_k, rj_b, rj_d, rj_m]
    known_symbols = set()
    for f in (trades, aggs, klines, book, depth, marks):
        known_symbols.update(f["s"].unique().to_list())
    snap, rj_s = _snapshots(snapshots, known_symbols)
    rejects.append(rj_s)

    all_rejects = merge_rejects(rejects)
    rejected = finalize_rejects(all_rejects, lambda ls: [text_lines[n - 1] for n in ls], source, on_error)
    frames = [trades, aggs, klines, book, depth, marks, snap]
    trades, aggs, klines, book, depth, marks, snap = (drop_lines(f, all_rejects) for f in frames)
    depth = pl.concat([depth, snap]).sort(LINE, maintain_order=True) if snap.height else depth

    messages = {}
    for name, f in (("trade", trades), ("aggTrade", aggs), ("kline", klines), ("bookTicker", book),
                    ("markPriceUpdate", marks)):
        messages[name] = f.height
    messages["trade"] += sum(non_market.values())
    messages["depthUpdate"] = parsed["depthUpdate"].join(all_rejects.select(pl.col("line").alias(LINE)),
                                                         on=LINE, how="anti").height
    rejected_lines = set(all_rejects["line"].to_list())
    messages["depthSnapshot"] = sum(1 for line, _, _ in snapshots if line not in rejected_lines)  # empty books too
    closed = klines.filter(pl.col("is_closed"))
    return WsCapture(
        source=source,
        trades=_per_symbol(trades, TRADES_SCHEMA, source),
        agg_trades=_per_symbol(aggs, AGG_TRADES_SCHEMA, source),
        klines=_per_symbol_interval(closed, KLINES_SCHEMA, source),
        kline_updates=_per_symbol_interval(klines, KLINE_UPDATES_SCHEMA, source),
        book_ticker=_per_symbol(book, BOOK_TICKER_SCHEMA, source),
        depth=_per_symbol(depth, DEPTH_SCHEMA, source),
        mark_price=_per_symbol(marks, MARK_PRICE_SCHEMA, source),
        lines=n_lines,
        messages=messages,
        unknown_streams=unknown_streams,
        non_market_trades=non_market,
        rejected=rejected,
        truncated=truncated,
    )


# ---------------------------------------------------------------------------------------------
# bytes → lines → envelopes


def _read_capture_bytes(path: str | Path) -> tuple[bytes, bool]:
    """(decompressed bytes, truncated). Concatenated gzip members are read in turn."""
    p = Path(path)
    try:
        blob = p.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read file: {exc.strerror}", source=str(p)) from None
    if not blob.startswith(b"\x1f\x8b"):
        return blob, False
    out: list[bytes] = []
    rest = blob
    while rest:
        d = zlib.decompressobj(wbits=31)
        try:
            out.append(d.decompress(rest))
        except zlib.error as exc:
            raise DataError(f"corrupt gzip data: {exc}", source=str(p)) from None
        if not d.eof:
            out.append(d.flush())
            return b"".join(out), True
        rest = d.unused_data
        if rest and not rest.startswith(b"\x1f\x8b"):
            raise DataError(f"{len(rest)} bytes of non-gzip data after the gzip stream", source=str(p))
    return b"".join(out), False


def _split_lines(data: bytes) -> tuple[list[str], set[int]]:
    """(lines without their terminator, 1-based numbers of lines that are not valid UTF-8).

    An invalid line's text keeps U+FFFD in place of the bad bytes, for the rejected frame.
    """
    bad: set[int] = set()
    try:
        lines = data.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        lines = []
        for i, b in enumerate(data.split(b"\n"), start=1):
            try:
                lines.append(b.decode("utf-8"))
            except UnicodeDecodeError:
                lines.append(b.decode("utf-8", errors="replace"))
                bad.add(i)
    if lines and lines[-1] == "":
        lines.pop()
    if b"\r" in data:  # CRLF line ends: the CR is not data
        lines = [t[:-1] if t.endswith("\r") else t for t in lines]
    return lines, bad


def _envelopes(raw: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split each line into receive time (→ ns) and JSON text; extract the stream name when it leads."""
    parts = raw.with_columns(pl.col("raw").str.splitn(" ", 2).struct.rename_fields(["ts", "js"])).unnest("raw")
    ts, js = pl.col("ts"), pl.col("js")
    reason = (pl.when(ts == "").then(pl.lit("empty line or no receive timestamp"))
              .when(js.is_null() | (js == "")).then(pl.lit("no JSON message after the receive timestamp"))
              .when(ts.cast(pl.Int64, strict=False).is_null())
              .then(pl.concat_str(pl.lit("receive timestamp '"), ts.str.slice(0, 40), pl.lit("' is not an integer"))))
    parts = parts.with_columns(reason.alias("__reason"))
    rj = parts.filter(pl.col("__reason").is_not_null()).select(pl.col(LINE).alias("line"),
                                                                pl.col("__reason").alias("reason"))
    good = parts.filter(pl.col("__reason").is_null()).select(LINE, pl.col("ts").cast(pl.Int64).alias("local"), "js")
    good, rj_t = epochs_to_ns(good, ["local"], allowed=_TIME_UNITS, what="this capture's receive time")
    good = good.with_columns(pl.col("js").str.extract(_STREAM_RE.pattern, 1).alias("stream"))
    return good, merge_rejects([rj, rj_t])


def _route_unmatched(env: pl.DataFrame) -> tuple[pl.DataFrame, list[tuple[int, int, dict]], pl.DataFrame]:
    """Lines whose stream name did not lead the JSON: parse them in Python (few: snapshots, re-ordered keys)."""
    other = env.filter(pl.col("stream").is_null())
    matched = env.filter(pl.col("stream").is_not_null())
    if other.height == 0:
        return matched, [], empty_reasons()
    streams: list[tuple[int, str]] = []
    snapshots: list[tuple[int, int, dict]] = []
    bad_lines, bad_reasons = [], []
    for line, local, js in other.select(LINE, "local", "js").iter_rows():
        try:
            msg = json.loads(js)
        except ValueError as exc:
            bad_lines.append(line)
            bad_reasons.append(f"invalid JSON: {exc}")
            continue
        if isinstance(msg, dict) and isinstance(msg.get("stream"), str) and isinstance(msg.get("data"), dict):
            streams.append((line, msg["stream"]))
        elif isinstance(msg, dict) and "stream" not in msg and {"lastUpdateId", "bids", "asks"} <= msg.keys():
            snapshots.append((line, local, msg))
        else:
            bad_lines.append(line)
            bad_reasons.append("neither a combined-stream message {stream, data} nor a REST depth snapshot")
    if streams:
        fix = pl.DataFrame(streams, schema={LINE: pl.Int64, "s2": pl.Utf8}, orient="row")
        rerouted = other.join(fix, on=LINE).with_columns(pl.col("s2").alias("stream")).drop("s2")
        matched = pl.concat([matched, rerouted]).sort(LINE)
    rj = pl.DataFrame({"line": bad_lines, "reason": bad_reasons}, schema={"line": pl.Int64, "reason": pl.Utf8})
    return matched, snapshots, rj


_KLINE_RE = re.compile(r"^kline_[0-9]+[smhdwM]$")
_DEPTH_RE = re.compile(r"^depth(@[0-9]+ms)?$")
_MARK_RE = re.compile(r"^markPrice(@1s)?$")


def _kind_of(stream: str) -> str | None:
    """The message kind of a combined-stream name, or None for streams this reader does not parse."""
    _, at, suffix = stream.partition("@")
    if not at:
        return None
    if suffix == "trade":
        return "trade"
    if suffix == "aggTrade":
        return "aggTrade"
    if suffix == "bookTicker":
        return "bookTicker"
    if _KLINE_RE.match(suffix):
        return "kline"
    if _DEPTH_RE.match(suffix):
        return "depthUpdate"
    if _MARK_RE.match(suffix):
        return "markPriceUpdate"
    return None


def _decode(sub: pl.DataFrame, dtype: pl.Struct) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Decode the JSON of `sub` with polars; lines that fail are found by bisection and rejected."""
    if sub.height == 0:
        inner = {f.name: f.dtype for f in dtype.fields[0].dtype.fields}
        data = pl.DataFrame(schema={LINE: pl.Int64, "local": pl.Int64} | inner)
        return data, empty_reasons()
    try:
        dec = sub.select(LINE, "local", pl.col("js").str.json_decode(dtype).struct.field("data"))
        return dec.unnest("data"), empty_reasons()
    except pl.exceptions.PolarsError as exc:
        if sub.height == 1:
            try:
                json.loads(sub["js"][0])
                why = f"unexpected message structure: {str(exc).splitlines()[0]}"
            except ValueError as jexc:
                why = f"invalid JSON: {jexc}"
            return _decode(sub.head(0), dtype)[0], pl.DataFrame({"line": [sub[LINE][0]], "reason": [why]})
    mid = sub.height // 2
    a, ra = _decode(sub.head(mid), dtype)
    b, rb = _decode(sub.slice(mid), dtype)
    return pl.concat([a, b]), pl.concat([ra, rb])


# ---------------------------------------------------------------------------------------------
# per-kind validation: each returns (frame with LINE and 's', rejects)


def _event_check(df: pl.DataFrame, expected: str, required: bool) -> tuple[pl.DataFrame, pl.DataFrame]:
    bad = (pl.col("e") != expected) if not required else (pl.col("e").is_null() | (pl.col("e") != expected))
    bad = bad.fill_null(False)
    rj = df.filter(bad).select(pl.col(LINE).alias("line"), pl.concat_str(
        pl.lit(f"event type '"), pl.col("e").fill_null("<missing>"), pl.lit(f"' on a {expected} stream")).alias("reason"))
    return df.filter(~bad), rj


def _stage(df: pl.DataFrame, expected_event: str, event_required: bool, rules, time_cols: Sequence[str]):
    df, rj_e = _event_check(df, expected_event, event_required)
    df, rj_c = cast_checked(df, [("s", "str", False), *rules])
    df, rj_t = epochs_to_ns(df, time_cols, allowed=_TIME_UNITS, what=f"this capture's {expected_event} stream")
    return df, merge_rejects([rj_e, rj_c, rj_t])


def _trades(df: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int], pl.DataFrame]:
    df, rj = _stage(df, "trade", False, [("t", "int", False), ("p", "float", False), ("q", "float", False),
                                        ("T", "int", False), ("m", "bool", False), ("X", "str", True)], ["T"])
    market = pl.col("X").is_null() | (pl.col("X") == "MARKET")
    non_market = dict(sorted(df.filter(~market).group_by("X").len().iter_rows()))
    out = df.filter(market).select(LINE, "s", pl.col("t").alias("id"), pl.col("T").alias("ts_event"),
                                   pl.col("local").alias("ts_init"), pl.col("p").alias("price"),
                                   pl.col("q").alias("quantity"), pl.col("m").alias("is_buyer_maker"))
    return out, non_market, rj


def _agg_trades(df: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    df, rj = _stage(df, "aggTrade", False, [("a", "int", False), ("p", "float", False), ("q", "float", False),
                                           ("f", "int", False), ("l", "int", False), ("T", "int", False),
                                           ("m", "bool", False)], ["T"])
    out = df.select(LINE, "s", pl.col("a").alias("id"), pl.col("T").alias("ts_event"), pl.col("local").alias("ts_init"),
                    pl.col("p").alias("price"), pl.col("q").alias("quantity"), pl.col("m").alias("is_buyer_maker"),
                    pl.col("f").alias("first_trade_id"), pl.col("l").alias("last_trade_id"))
    return out, rj


def _klines(df: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    df = df.with_columns(pl.col("k").struct.unnest()).drop("k") if df.height else \
        df.drop("k").with_columns(pl.lit(None, _S).alias(c) for c in "tTiohlcvnxqVQ")
    df, rj = _stage(df, "kline", False, [
        ("E", "int", False), ("t", "int", False), ("T", "int", False), ("i", "str", False),
        ("o", "float", False), ("h", "float", False), ("l", "float", False), ("c", "float", False),
        ("v", "float", False), ("q", "float", False), ("n", "int", False), ("V", "float", False),
        ("Q", "float", False), ("x", "bool", False)], ["E", "t", "T"])
    out = df.select(LINE, "s", "i", pl.col("E").alias("ts_event"), pl.col("local").alias("ts_init"),
                    pl.col("t").alias("open_time"), pl.col("T").alias("close_time"), pl.col("o").alias("open"),
                    pl.col("h").alias("high"), pl.col("l").alias("low"), pl.col("c").alias("close"),
                    pl.col("v").alias("volume"), pl.col("q").alias("quote_volume"), pl.col("n").alias("trade_count"),
                    pl.col("V").alias("taker_buy_volume"), pl.col("Q").alias("taker_buy_quote_volume"),
                    pl.col("x").alias("is_closed"))
    return out, rj


def _book_ticker(df: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    df, rj = _stage(df, "bookTicker", False, [("u", "int", False), ("b", "float", False), ("B", "float", False),
                                             ("a", "float", False), ("A", "float", False), ("E", "int", True),
                                             ("T", "int", True)], ["T", "E"])
    out = df.select(LINE, "s", pl.col("u").alias("update_id"),
                    pl.coalesce("T", "E", "local").alias("ts_event"), pl.col("local").alias("ts_init"),
                    pl.col("b").alias("bid_price"), pl.col("B").alias("bid_qty"), pl.col("a").alias("ask_price"),
                    pl.col("A").alias("ask_qty"))
    return out, rj


def _depth_updates(df: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    df, rj = _stage(df, "depthUpdate", True, [("U", "int", False), ("u", "int", False), ("pu", "int", True),
                                              ("E", "int", True), ("T", "int", True)], ["T", "E"])
    missing = pl.col("b").is_null() | pl.col("a").is_null()
    rj_m = df.filter(missing).select(pl.col(LINE).alias("line"), pl.lit("depth update lacks 'b' or 'a'").alias("reason"))
    df = df.filter(~missing).with_columns(pl.coalesce("T", "E", "local").alias("ts_event"))
    base = [LINE, "s", "ts_event", pl.col("local").alias("ts_init"), pl.col("U").alias("first_update_id"),
            pl.col("u").alias("final_update_id"), pl.col("pu").alias("prev_final_update_id"),
            pl.lit(False).alias("is_snapshot")]
    levels, rj_l = _levels(df, base, "b", "a")
    return levels, merge_rejects([rj, rj_m, rj_l])


def _levels(df: pl.DataFrame, base: list, bid_col: str, ask_col: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Explode [[price, qty], ...] lists into one row per level; a line with a malformed level is rejected whole."""
    sides = []
    for col, side in ((bid_col, "bid"), (ask_col, "ask")):
        sides.append(df.select(*base, pl.lit(side).alias("side"), pl.col(col).alias("lvl")).explode("lvl")
                     .filter(pl.col("lvl").is_not_null()))
    lv = pl.concat(sides)
    shape_bad = lv.filter(pl.col("lvl").list.len() != 2).select(
        pl.col(LINE).alias("line"), pl.lit("depth level is not a [price, quantity] pair").alias("reason"))
    lv = lv.filter(pl.col("lvl").list.len() == 2).with_columns(
        pl.col("lvl").list.get(0).alias("price"), pl.col("lvl").list.get(1).alias("quantity")).drop("lvl")
    lv, rj_c = cast_checked(lv, [("price", "float", False), ("quantity", "float", False)])
    rejects = merge_rejects([shape_bad, rj_c])
    lv = drop_lines(lv, rejects).sort(LINE, maintain_order=True)
    return lv.select(LINE, "s", *DEPTH_SCHEMA), rejects


def _mark_price(df: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    df, rj = _stage(df, "markPriceUpdate", False, [("E", "int", False), ("p", "float", False),
                                                   ("i", "float", True), ("r", "float", True), ("T", "int", True)],
                    ["E", "T"])
    out = df.select(LINE, "s", pl.col("E").alias("ts_event"), pl.col("local").alias("ts_init"),
                    pl.col("p").alias("mark_price"), pl.col("i").alias("index_price"), pl.col("r").alias("funding_rate"),
                    pl.col("T").alias("next_funding_time"))
    return out, rj


def _snapshots(snapshots: list[tuple[int, int, dict]], symbols: set[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """REST depth snapshots → depth rows (is_snapshot); levels validated like updates."""
    empty = pl.DataFrame(schema={LINE: pl.Int64, "s": pl.Utf8} | DEPTH_SCHEMA)
    if not snapshots:
        return empty, empty_reasons()
    heads, levels, bad_lines, bad_reasons = [], [], [], []
    for line, local, msg in snapshots:
        sym = msg.get("symbol")
        if not isinstance(sym, str):
            if len(symbols) != 1:
                bad_lines.append(line)
                bad_reasons.append(f"depth snapshot without a symbol in a capture of {len(symbols)} symbols "
                                   f"{sorted(symbols)[:5]}: cannot attribute it")
                continue
            sym = next(iter(symbols))
        lv_rows = []
        for key, side in (("bids", "bid"), ("asks", "ask")):
            side_levels = msg[key] if isinstance(msg[key], list) else [None]
            for lv in side_levels:
                if not (isinstance(lv, list) and len(lv) == 2):
                    lv_rows = None
                    break
                lv_rows.append((line, side, _text(lv[0]), _text(lv[1])))
            if lv_rows is None:
                break
        if lv_rows is None:
            bad_lines.append(line)
            bad_reasons.append(f"depth snapshot {key} must be a list of [price, quantity] pairs")
            continue
        heads.append((line, local, sym, _text(msg["lastUpdateId"]), _text(msg.get("E")), _text(msg.get("T"))))
        levels.extend(lv_rows)
    rj0 = pl.DataFrame({"line": bad_lines, "reason": bad_reasons}, schema={"line": pl.Int64, "reason": pl.Utf8})
    if not heads:
        return empty, rj0
    head = pl.DataFrame(heads, schema={LINE: pl.Int64, "local": pl.Int64, "s": _S, "u": _S, "E": _S, "T": _S},
                        orient="row")
    head, rj_c = cast_checked(head, [("u", "int", False), ("E", "int", True), ("T", "int", True)])
    head, rj_t = epochs_to_ns(head, ["T", "E"], allowed=_TIME_UNITS, what="this capture's depth snapshots")
    lv = pl.DataFrame(levels, schema={LINE: pl.Int64, "side": _S, "price": _S, "quantity": _S}, orient="row")
    lv, rj_l = cast_checked(lv, [("price", "float", False), ("quantity", "float", False)])
    out = head.select(LINE, "s", pl.coalesce("T", "E", "local").alias("ts_event"), pl.col("local").alias("ts_init"),
                      pl.col("u").alias("first_update_id"), pl.col("u").alias("final_update_id"),
                      pl.lit(None, dtype=pl.Int64).alias("prev_final_update_id"),
                      pl.lit(True).alias("is_snapshot")).join(lv, on=LINE, how="inner", maintain_order="right")
    rejects = merge_rejects([rj0, rj_c, rj_t, rj_l])
    return drop_lines(out, rejects).select(LINE, "s", *DEPTH_SCHEMA), rejects


def _text(v) -> str | None:
    if v is None or isinstance(v, (dict, list)):
        return None if v is None else json.dumps(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


# ---------------------------------------------------------------------------------------------
# grouping


def _per_symbol(df: pl.DataFrame, schema: dict, source: str) -> dict[str, pl.DataFrame]:
    if df.height == 0:
        return {}
    return {sym: conform(part, schema, f"{source} {sym}") for (sym,), part in
            sorted(df.partition_by("s", as_dict=True, maintain_order=True).items())}


def _per_symbol_interval(df: pl.DataFrame, schema: dict, source: str) -> dict[str, dict[str, pl.DataFrame]]:
    out: dict[str, dict[str, pl.DataFrame]] = {}
    if df.height == 0:
        return out
    for (sym, interval), part in sorted(df.partition_by(["s", "i"], as_dict=True, maintain_order=True).items()):
        out.setdefault(sym, {})[interval] = conform(part, schema, f"{source} {sym} {interval}")
    return out
