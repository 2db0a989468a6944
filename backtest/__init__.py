"""Backtest results: the result container and its schemas, metrics, attribution, HTML and JSON reports.

Formulas and conventions of every metric: docs/metrics.md.
"""

from backtest.attribution import (
    attribution_by_exit_reason,
    attribution_by_hour,
    attribution_by_signal,
    monthly_returns,
    monthly_returns_table,
    slippage_sensitivity,
    yearly_returns,
)
from backtest.metrics import compute_metrics, daily_equity, equity_drawdown
from backtest.results import (
    EQUITY_SCHEMA,
    FILL_SCHEMA,
    STATE_CHANGE_SCHEMA,
    TRADE_SCHEMA,
    BacktestResult,
    RunMeta,
    empty_frame,
)

__all__ = [
    "EQUITY_SCHEMA", "FILL_SCHEMA", "STATE_CHANGE_SCHEMA", "TRADE_SCHEMA", "BacktestResult", "RunMeta",
    "attribution_by_exit_reason", "attribution_by_hour", "attribution_by_signal", "compute_metrics",
    "daily_equity", "empty_frame", "equity_drawdown", "monthly_returns", "monthly_returns_table",
    "read_metrics_json", "slippage_sensitivity", "write_metrics_json", "write_report", "yearly_returns",
]

_REPORT_NAMES = ("read_metrics_json", "write_metrics_json", "write_report")


def __getattr__(name: str):
    # The report pulls in matplotlib; import it only when asked, so that the replay loop and
    # optimizer workers that only need results and metrics stay light.
    if name in _REPORT_NAMES:
        from backtest import report

        return getattr(report, name)
    raise AttributeError(f"module 'backtest' has no attribute {name!r}")
