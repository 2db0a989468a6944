"""Readers for Binance public-data files (data.binance.vision layouts) and simple OHLCV/funding CSVs.

Each reader takes a plain .csv or a .zip holding one CSV, with or without a header row, and
returns a `ParsedData` whose frame has exactly the columns of `market.schema`. Files carry no
receive time, so ``ts_init = ts_event``. Epoch times are converted to int64 ns, their unit (ms, or
µs in spot files since 2025) judged by magnitude; a file mixing units is malformed. See
`market.ingest.parsed` for the malformed-input policy.

Columns the schema has no place for are validated, then not returned: ``is_best_match`` (spot),
``quote_qty`` (trades; = price × qty) and ``ignore`` (klines; not validated, Binance fills it with 0).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from core.errors import ConfigError, DataError, SchemaError
from core.time import NS_PER_MS, NS_PER_S, NS_PER_US, parse_duration
from market.ingest.parsed import (
    LINE,
    DelimitedText,
    OnError,
    ParsedData,
    check_on_error,
    cast_checked,
    empty_reasons,
    epochs_to_ns,
    finish,
    read_delimited,
)
from market.schema import AGG_TRADES_SCHEMA, FUNDING_SCHEMA, KLINES_SCHEMA, TRADES_SCHEMA

AGG_TRADES_LAYOUTS: dict[int, tuple[str, ...]] = {
    7: ("agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "transact_time", "is_buyer_maker"),
    8: ("agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "transact_time", "is_buyer_maker",
        "is_best_match"),
}
TRADES_LAYOUTS: dict[int, tuple[str, ...]] = {
    6: ("id", "price", "qty", "quote_qty", "time", "is_buyer_maker"),
    7: ("id", "price", "qty", "quote_qty", "time", "is_buyer_maker", "is_best_match"),
}
KLINES_LAYOUTS: dict[int, tuple[str, ...]] = {
    12: ("open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "count",
         "taker_buy_volume", "taker_buy_quote_volume", "ignore"),
}
OHLCV_LAYOUTS: dict[int, tuple[str, ...]] = {6: ("timestamp", "open", "high", "low", "close", "volume")}
FUNDING_LAYOUTS: dict[int, tuple[str, ...]] = {2: ("timestamp", "rate")}

_BINANCE_UNITS = (NS_PER_MS, NS_PER_US)
_ANY_UNIT = (NS_PER_S, NS_PER_MS, NS_PER_US, 1)
# UTC date-time texts accepted in OHLCV/funding files (fraction optional; an explicit offset is honoured)
_DATETIME_FORMATS = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.fZ",
                     "%Y-%m-%dT%H:%M:%S%.fZ", "%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%.f%:z")


def read_binance_agg_trades(path: str | Path, *, on_error: OnError = "raise") -> ParsedData:
    """Binance aggTrades file (spot: 8 columns with is_best_match; USD-M: 7) → AGG_TRADES_SCHEMA."""
    check_on_error(on_error)
    text = read_delimited(path, AGG_TRADES_LAYOUTS)
    rules = [("agg_trade_id", "int", False), ("price", "float", False), ("quantity", "float", False),
             ("first_trade_id", "int", False), ("last_trade_id", "int", False), ("transact_time", "int", False),
             ("is_buyer_maker", "bool", False)]
    if "is_best_match" in text.names:
        rules.append(("is_best_match", "bool", False))
    typed, rj_cast = cast_checked(text.rows, rules)
    typed, rj_time = epochs_to_ns(typed, ["transact_time"], allowed=_BINANCE_UNITS)
    frame = typed.select(
        LINE,
        pl.col("agg_trade_id").alias("id"),
        pl.col("transact_time").alias("ts_event"),
        pl.col("transact_time").alias("ts_init"),
        "price", "quantity", "is_buyer_maker", "first_trade_id", "last_trade_id",
    )
    return finish(text, frame, [rj_cast, rj_time], AGG_TRADES_SCHEMA, on_error)


def read_binance_trades(path: str | Path, *, on_error: OnError = "raise") -> ParsedData:
    """Binance raw trades file (spot: 7 columns with is_best_match; USD-M: 6) → TRADES_SCHEMA."""
    check_on_error(on_error)
    text = read_delimited(path, TRADES_LAYOUTS)
    rules = [("id", "int", False), ("price", "float", False), ("qty", "float", False),
             ("quote_qty", "float", False), ("time", "int", False), ("is_buyer_maker", "bool", False)]
    if "is_best_match" in text.names:
        rules.append(("is_best_match", "bool", False))
    typed, rj_cast = cast_checked(text.rows, rules)
    typed, rj_time = epochs_to_ns(typed, ["time"], allowed=_BINANCE_UNITS)
    frame = typed.select(
        LINE, "id", pl.col("time").alias("ts_event"), pl.col("time").alias("ts_init"), "price",
        pl.col("qty").alias("quantity"), "is_buyer_maker",
    )
    return finish(text, frame, [rj_cast, rj_time], TRADES_SCHEMA, on_error)


def read_binance_klines(path: str | Path, *, on_error: OnError = "raise") -> ParsedData:
    """Binance klines file of any interval (12 columns) → KLINES_SCHEMA (``count`` → ``trade_count``)."""
    check_on_error(on_error)
    text = read_delimited(path, KLINES_LAYOUTS)
    rules = [("open_time", "int", False), ("open", "float", False), ("high", "float", False),
             ("low", "float", False), ("close", "float", False), ("volume", "float", False),
             ("close_time", "int", False), ("quote_volume", "float", False), ("count", "int", False),
             ("taker_buy_volume", "float", False), ("taker_buy_quote_volume", "float", False)]
    typed, rj_cast = cast_checked(text.rows, rules)
    typed, rj_time = epochs_to_ns(typed, ["open_time", "close_time"], allowed=_BINANCE_UNITS)
    frame = typed.select(LINE, *(c for c in KLINES_SCHEMA if c != "trade_count"), pl.col("count").alias("trade_count"))
    return finish(text, frame, [rj_cast, rj_time], KLINES_SCHEMA, on_error)


def read_ohlcv_csv(path: str | Path, *, interval: str | None = None, on_error: OnError = "raise") -> ParsedData:
    """Simple OHLCV CSV (timestamp, open, high, low, close, volume) → KLINES_SCHEMA.

    `timestamp` is the bar's open time as UTC text ('2023-01-01 00:00:00[.fff]', 'T' separator,
    'Z' or '+00:00' accepted) or an integer epoch (unit by magnitude). The columns the source
    lacks (quote_volume, trade_count, taker_buy_volume, taker_buy_quote_volume) are null: null
    means *not provided by the source*, never 0. ``close_time = open_time + interval − 1 ms``
    (Binance's convention), with `interval` given ('1h', '1m', ...) or inferred as the most common
    positive step between consecutive rows (the smallest such step on a tie).
    """
    check_on_error(on_error)
    interval_ns = None
    if interval is not None:
        try:
            interval_ns = parse_duration(interval)
        except ValueError as exc:
            raise ConfigError(f"read_ohlcv_csv interval: {exc}") from None
    text = read_delimited(path, OHLCV_LAYOUTS)
    rules = [("open", "float", False), ("high", "float", False), ("low", "float", False),
             ("close", "float", False), ("volume", "float", False)]
    typed, rj_cast = cast_checked(text.rows, rules)
    typed, rj_time = _timestamp_to_ns(typed, "timestamp")
    if interval_ns is None:
        interval_ns = _infer_interval(typed["timestamp"], text.source)
    frame = typed.select(
        LINE,
        pl.col("timestamp").alias("open_time"),
        (pl.col("timestamp") + (interval_ns - NS_PER_MS)).alias("close_time"),
        "open", "high", "low", "close", "volume",
        *(pl.lit(None, dtype=KLINES_SCHEMA[c]).alias(c)
          for c in ("quote_volume", "trade_count", "taker_buy_volume", "taker_buy_quote_volume")),
    )
    return finish(text, frame, [rj_cast, rj_time], KLINES_SCHEMA, on_error)


def read_funding_csv(path: str | Path, *, on_error: OnError = "raise") -> ParsedData:
    """Funding-rate CSV (timestamp, rate) → `market.schema.FUNDING_SCHEMA` (``mark_price`` null: not in the file).

    `timestamp` is UTC text or an integer epoch, as in `read_ohlcv_csv`.
    """
    check_on_error(on_error)
    text = read_delimited(path, FUNDING_LAYOUTS)
    typed, rj_cast = cast_checked(text.rows, [("rate", "float", False)])
    typed, rj_time = _timestamp_to_ns(typed, "timestamp")
    frame = typed.select(LINE, pl.col("timestamp").alias("ts_event"), pl.col("rate").alias("funding_rate"),
                         pl.lit(None, dtype=pl.Float64).alias("mark_price"))
    return finish(text, frame, [rj_cast, rj_time], FUNDING_SCHEMA, on_error)


def _timestamp_to_ns(df: pl.DataFrame, col: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """UTC date-time text or integer epoch → int64 ns. The first row decides which of the two the file uses."""
    present = df.filter(pl.col(col).is_not_null() & (pl.col(col) != ""))
    if present.height == 0:
        typed, rejects = cast_checked(df, [(col, "int", False)])  # every row is missing it
        return typed, rejects
    first = present[col][0].strip()
    if first.lstrip("-").isdigit():
        typed, rj_cast = cast_checked(df, [(col, "int", False)])
        typed, rj_time = epochs_to_ns(typed, [col], allowed=_ANY_UNIT)
        return typed, pl.concat([rj_cast, rj_time])
    src = pl.col(col)
    parsed = pl.coalesce(
        *(src.str.to_datetime(f, strict=False, time_unit="ns").dt.epoch("ns") for f in _DATETIME_FORMATS),
        src.str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("ns")).dt.epoch("ns"),
    )
    out = df.with_columns(parsed.alias("__ts"))
    bad = out.filter(pl.col("__ts").is_null())
    rejects = bad.select(
        pl.col(LINE).alias("line"),
        pl.when(pl.col(col).is_null() | (pl.col(col) == "")).then(pl.lit(f"{col}: empty or missing field"))
        .otherwise(pl.concat_str(pl.lit(f"{col}: '"), pl.col(col).str.slice(0, 60),
                                 pl.lit("' is not a UTC date-time (YYYY-MM-DD HH:MM:SS[.fff])"))).alias("reason"),
    )
    good = out.filter(pl.col("__ts").is_not_null()).with_columns(pl.col("__ts").alias(col)).drop("__ts")
    return good, rejects if rejects.height else empty_reasons()


def _infer_interval(open_times: pl.Series, source: str) -> int:
    steps = open_times.diff().drop_nulls()
    steps = steps.filter(steps > 0)
    if steps.len() == 0:
        raise DataError("cannot infer the bar interval (fewer than two distinct open times); pass interval=",
                        source=source)
    counts = steps.value_counts(name="n").sort(["n", steps.name], descending=[True, False])
    return int(counts[steps.name][0])


def read_nautilus_trades_parquet(path: str | Path, *, on_error: OnError = "raise") -> ParsedData:
    """Nautilus spot trades parquet (timestamp, trade_id, price, quantity, buyer_maker) → TRADES_SCHEMA.

    `timestamp` may be a datetime column (a naive one is taken as UTC) or an integer epoch (unit by
    magnitude); `buyer_maker` a boolean or the text True/False. Null or unparseable cells are
    structural problems, reported with the 1-based row number as the line.
    """
    check_on_error(on_error)
    source = str(path)
    try:
        df = pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise DataError(f"cannot read parquet: {exc}", source=source) from None
    want = ("timestamp", "trade_id", "price", "quantity", "buyer_maker")
    missing = [c for c in want if c not in df.columns]
    if missing:
        raise SchemaError(f"parquet lacks columns {missing}; has {df.columns}", source=source)
    ts = df["timestamp"]
    if isinstance(ts.dtype, pl.Datetime):
        ts = ts.dt.replace_time_zone("UTC") if ts.dtype.time_zone is None else ts
        ts = ts.dt.epoch("ns").cast(pl.Utf8)
    else:
        ts = ts.cast(pl.Utf8)
    rows = pl.DataFrame({
        LINE: pl.int_range(1, df.height + 1, dtype=pl.Int64, eager=True),
        "timestamp": ts,
        **{c: df[c].cast(pl.Utf8) for c in ("trade_id", "price", "quantity", "buyer_maker")},
    })
    typed, rj_cast = cast_checked(rows, [("timestamp", "int", False), ("trade_id", "int", False),
                                         ("price", "float", False), ("quantity", "float", False),
                                         ("buyer_maker", "bool", False)])
    typed, rj_time = epochs_to_ns(typed, ["timestamp"], allowed=_ANY_UNIT)
    frame = typed.select(LINE, pl.col("trade_id").alias("id"), pl.col("timestamp").alias("ts_event"),
                         pl.col("timestamp").alias("ts_init"), "price", "quantity",
                         pl.col("buyer_maker").alias("is_buyer_maker"))
    text = DelimitedText(rows.head(0), empty_reasons(), want, lambda lines: _parquet_rows(rows, lines), source)
    return finish(text, frame, [rj_cast, rj_time], TRADES_SCHEMA, on_error)


def _parquet_rows(rows: pl.DataFrame, lines: list[int]) -> list[str]:
    sub = rows.filter(pl.col(LINE).is_in(lines)).sort(LINE)
    by_line = {r[LINE]: ",".join("" if r[c] is None else str(r[c]) for c in sub.columns if c != LINE)
               for r in sub.iter_rows(named=True)}
    return [by_line.get(n, "") for n in lines]
