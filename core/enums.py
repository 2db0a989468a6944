"""Enumerations shared across packages."""

from __future__ import annotations

from enum import Enum, IntEnum


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


class TradingState(IntEnum):
    """Account trading state (numba kernels store the int value)."""

    ACTIVE = 0  # entries allowed
    REDUCING = 1  # no new entries; positions are being reduced (e.g. margin use too high)
    HALTED = 2  # no new entries until the condition clears (e.g. daily loss limit until next UTC day)
    FLATTEN = 3  # close everything now, no entries (e.g. extreme volatility regime, kill switch)


class Reason(IntEnum):
    """Why something happened: carried by every fill, order intent and trading-state change.

    Numba kernels store the int value; reports map it back to the name.
    """

    NONE = 0
    SIGNAL_A = 1  # order-flow momentum entry/exit
    SIGNAL_B = 2  # VWAP mean-reversion entry/exit
    SIGNAL_AB = 3  # both (combined same-direction signal)
    SIGNAL_CUSTOM = 4  # any other strategy's signal
    STOP_L1 = 10  # fixed ATR stop
    STOP_L2 = 11  # order-flow stop
    STOP_L3 = 12  # time stop
    TAKE_PROFIT_TRAIL = 13  # trailing take-profit
    LIQUIDATION = 20
    FLATTEN_REGIME = 21  # extreme regime: flatten
    REDUCE_MARGIN = 22  # margin use above threshold
    FUNDING = 23
    # risk verdicts (why an entry was denied or scaled, why the state changed)
    DAILY_LOSS_LIMIT = 30
    CONSECUTIVE_LOSSES_HALF = 31
    CONSECUTIVE_LOSSES_PAUSE = 32
    DRAWDOWN_THROTTLE = 33
    LIQUIDITY_PAUSE = 34
    ENTRY_INTERVAL = 35
    MAX_ENTRIES_24H = 36
    FEE_HURDLE = 37
    POSITION_CAP = 38
    SAME_DIRECTION_CAP = 39
    CAPITAL_IN_USE_CAP = 40
    LOSS_AT_STOP_CAP = 41
    KELLY_NON_POSITIVE = 42
    BELOW_MIN_QTY = 43
    STATE_NOT_ACTIVE = 44
    NEW_DAY = 45
    RECOVERED = 46
    END_OF_DATA = 50
    # appended by risk/: an operator's kill switch (state FLATTEN), and inputs a kernel rejected
    KILL_SWITCH = 47
    INVALID_INPUT = 48
