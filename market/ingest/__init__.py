"""Readers for market-data files: Binance public data, Tardis, Nautilus parquet, websocket captures.

Every reader returns frames with exactly the columns and dtypes of `market.schema`, times in int64
UTC ns, and applies one malformed-input policy (see `market.ingest.parsed`): raise `DataError`
with file and line by default, or quarantine bad lines with ``on_error="quarantine"``.
REST backfill lives in `market.ingest.rest`.
"""

from market.ingest.binance_files import (
    FUNDING_SCHEMA,
    read_binance_agg_trades,
    read_binance_klines,
    read_binance_trades,
    read_funding_csv,
    read_nautilus_trades_parquet,
    read_ohlcv_csv,
)
from market.ingest.detect import FORMATS, detect_format, read_any
from market.ingest.parsed import REJECTED_SCHEMA, OnError, ParsedData
from market.ingest.tardis import read_tardis_trades
from market.ingest.ws_capture import KLINE_UPDATES_SCHEMA, WsCapture, read_ws_capture

__all__ = [
    "FORMATS",
    "FUNDING_SCHEMA",
    "KLINE_UPDATES_SCHEMA",
    "REJECTED_SCHEMA",
    "OnError",
    "ParsedData",
    "WsCapture",
    "detect_format",
    "read_any",
    "read_binance_agg_trades",
    "read_binance_klines",
    "read_binance_trades",
    "read_funding_csv",
    "read_nautilus_trades_parquet",
    "read_ohlcv_csv",
    "read_tardis_trades",
    "read_ws_capture",
]
