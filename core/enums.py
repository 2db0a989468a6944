"""Enumerations shared across packages."""

from __future__ import annotations

from enum import Enum


class Market(str, Enum):
    """Binance market segment."""

    SPOT = "spot"
    USDM = "usdm"  # USD-M perpetual / delivery futures
    COINM = "coinm"  # COIN-M futures


class DataKind(str, Enum):
    """Kinds of market data stored in the catalog."""

    AGG_TRADES = "agg_trades"
    TRADES = "trades"
    KLINES = "klines"  # the interval goes into the kind name: klines_1m, klines_1h (see catalog)
    BOOK_TICKER = "book_ticker"
    DEPTH = "depth"
    MARK_PRICE = "mark_price"
    FUNDING = "funding"
