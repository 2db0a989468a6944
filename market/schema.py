"""Canonical column layouts and dtypes for everything `market` reads, stores and produces.

Conventions (DESIGN §5): timestamps are int64 UTC nanoseconds; ids int64; prices and quantities
float64; `is_buyer_maker` bool (False = the aggressor bought = aggressive buy).
Every reader returns frames with exactly these columns in this order; every writer checks them.
"""

from __future__ import annotations

import polars as pl

from core.errors import SchemaError

# Aggregate trades (Binance aggTrades). `id` is the aggregate trade id.
AGG_TRADES_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.Int64,
    "ts_event": pl.Int64,  # venue transaction time
    "ts_init": pl.Int64,  # when we saw it (receive time for captures, = ts_event for files)
    "price": pl.Float64,
    "quantity": pl.Float64,
    "is_buyer_maker": pl.Boolean,
    "first_trade_id": pl.Int64,
    "last_trade_id": pl.Int64,
}

# Raw (individual) trades. `id` is the trade id.
TRADES_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.Int64,
    "ts_event": pl.Int64,
    "ts_init": pl.Int64,
    "price": pl.Float64,
    "quantity": pl.Float64,
    "is_buyer_maker": pl.Boolean,
}

# Columns every bar builder needs from a trades-like frame.
TRADE_CORE_COLUMNS = ("id", "ts_event", "price", "quantity", "is_buyer_maker")

KLINES_SCHEMA: dict[str, pl.DataType] = {
    "open_time": pl.Int64,  # ns
    "close_time": pl.Int64,  # ns, Binance's (open_time + interval - 1 ms)
    "open": pl.Float64,
    "high": pl.Float64,
    "low": pl.Float64,
    "close": pl.Float64,
    "volume": pl.Float64,
    "quote_volume": pl.Float64,
    "trade_count": pl.Int64,
    "taker_buy_volume": pl.Float64,
    "taker_buy_quote_volume": pl.Float64,
}

BOOK_TICKER_SCHEMA: dict[str, pl.DataType] = {
    "update_id": pl.Int64,
    "ts_event": pl.Int64,  # event time where the venue sends one, else receive time
    "ts_init": pl.Int64,
    "bid_price": pl.Float64,
    "bid_qty": pl.Float64,
    "ask_price": pl.Float64,
    "ask_qty": pl.Float64,
}

# Depth updates are stored long: one row per price level change.
DEPTH_SCHEMA: dict[str, pl.DataType] = {
    "ts_event": pl.Int64,
    "ts_init": pl.Int64,
    "first_update_id": pl.Int64,
    "final_update_id": pl.Int64,
    "prev_final_update_id": pl.Int64,  # futures `pu` (continuity check); null on spot and in snapshots
    "is_snapshot": pl.Boolean,
    "side": pl.Utf8,  # "bid" | "ask"
    "price": pl.Float64,
    "quantity": pl.Float64,  # 0 = level removed
}

MARK_PRICE_SCHEMA: dict[str, pl.DataType] = {
    "ts_event": pl.Int64,
    "ts_init": pl.Int64,
    "mark_price": pl.Float64,
    "index_price": pl.Float64,
    "funding_rate": pl.Float64,
    "next_funding_time": pl.Int64,
}

# Funding rates of perpetuals (every 8 h on Binance USD-M). mark_price null = not sent by the source.
FUNDING_SCHEMA: dict[str, pl.DataType] = {
    "ts_event": pl.Int64,
    "funding_rate": pl.Float64,
    "mark_price": pl.Float64,
}

# Rows rejected by quality checks keep every original column plus these.
QUARANTINE_EXTRA: dict[str, pl.DataType] = {
    "row_number": pl.Int64,  # 0-based position in the input batch
    "reason": pl.Utf8,
}

# Bars: one row per closed bar. Produced by market.bars (batch and streaming identical).
BAR_SCHEMA: dict[str, pl.DataType] = {
    "ts_event": pl.Int64,  # when the bar is known closed: last trade ts (trade-driven) or bucket end (time bars)
    "ts_open": pl.Int64,  # first trade ts
    "ts_close": pl.Int64,  # last trade ts
    "duration_ns": pl.Int64,  # ts_close - previous bar's ts_close (first bar: ts_close - ts_open)
    "first_id": pl.Int64,
    "last_id": pl.Int64,
    "open": pl.Float64,
    "high": pl.Float64,
    "low": pl.Float64,
    "close": pl.Float64,
    "volume": pl.Float64,
    "quote_volume": pl.Float64,
    "trade_count": pl.Int64,
    "buy_volume": pl.Float64,
    "sell_volume": pl.Float64,
    "buy_count": pl.Int64,
    "sell_count": pl.Int64,
    "vwap": pl.Float64,
    "buy_vwap": pl.Float64,  # NaN when the bar has no aggressive buys
    "sell_vwap": pl.Float64,  # NaN when the bar has no aggressive sells
    "upticks": pl.Int64,  # trades classified up by the tick rule
    "downticks": pl.Int64,
    "realized_var": pl.Float64,  # sum of squared log returns trade-to-trade (incl. the first trade's return from the previous trade)
    "large_volume": pl.Float64,  # volume of trades with size >= the large-trade threshold
    "large_count": pl.Int64,
    "threshold": pl.Float64,  # the bar's closing threshold (volume / dollar / ticks); NaN for time bars
}
BAR_COLUMNS = tuple(BAR_SCHEMA)


def empty_frame(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)


def conform(df: pl.DataFrame, schema: dict[str, pl.DataType], where: str) -> pl.DataFrame:
    """Return `df` with exactly `schema`'s columns, order and dtypes.

    Missing columns or dtypes that cannot be cast losslessly raise `SchemaError` naming them.
    """
    missing = [c for c in schema if c not in df.columns]
    if missing:
        raise SchemaError(f"missing columns {missing}; have {df.columns}", source=where)
    out = []
    for name, dtype in schema.items():
        col = df.get_column(name)
        if col.dtype != dtype:
            try:
                col = col.cast(dtype, strict=True)
            except Exception as exc:  # polars raises several types here
                raise SchemaError(
                    f"column {name!r} has dtype {col.dtype}, cannot cast to {dtype}: {exc}", source=where
                ) from None
        out.append(col)
    return pl.DataFrame(out)
