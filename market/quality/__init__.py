"""Market-data quality checks: trades (batch and chunked) and klines.

Every input row ends up kept, quarantined with a reason, or counted as an identical duplicate;
reports reconcile these counts (`QualityReport.reconciles`).
"""

from market.quality.config import QualityConfig
from market.quality.klines import KLINE_REASONS, check_klines
from market.quality.report import QualityReport, QualityResult
from market.quality.trades import REASONS as TRADE_REASONS
from market.quality.trades import TradeValidator, check_trades

__all__ = [
    "KLINE_REASONS",
    "TRADE_REASONS",
    "QualityConfig",
    "QualityReport",
    "QualityResult",
    "TradeValidator",
    "check_klines",
    "check_trades",
]
