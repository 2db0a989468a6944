"""Execution: fees, bar-based fill simulation, the ledger, perpetual margin and funding.

Every component follows the kernel pattern: a frozen config with `to_params()`, preallocated
float64/int64 state, `@njit` `*_nb` kernels (used directly by the backtest loop) and a thin Python
class over the same kernels (live, paper, tests). See docs/execution.md.

    from execution import VenueConfig, load_venue_config
    venue = load_venue_config("configs/venues/binance_usdm.yaml")
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from core.config import FrozenConfig, load_yaml_config
from execution.fees import FeeConfig, FeeModel, fee_nb
from execution.fill_model import (
    FillModel,
    FillModelConfig,
    instrument_params,
    instrument_row,
)
from execution.funding import FundingConfig, FundingSchedule, prepare_series
from execution.ledger import (
    EquityCurve,
    Ledger,
    PositionView,
    equity_frame,
    fills_frame,
    trades_frame,
)
from execution.margin import (
    BINANCE_BTCUSDT_BRACKETS,
    Bracket,
    MarginConfig,
    MarginModel,
    check_brackets,
)


class VenueConfig(FrozenConfig):
    """Everything execution needs to know about one venue account (configs/venues/*.yaml)."""

    fees: FeeConfig = Field(default_factory=FeeConfig)
    fill_model: FillModelConfig = Field(default_factory=FillModelConfig)
    margin: MarginConfig = Field(default_factory=MarginConfig)
    funding: FundingConfig = Field(default_factory=FundingConfig)


def load_venue_config(path: str | Path) -> VenueConfig:
    """Load a venue YAML; errors name the file and key path (`ConfigError`)."""
    return load_yaml_config(VenueConfig, path)


__all__ = [
    "BINANCE_BTCUSDT_BRACKETS",
    "Bracket",
    "EquityCurve",
    "FeeConfig",
    "FeeModel",
    "FillModel",
    "FillModelConfig",
    "FundingConfig",
    "FundingSchedule",
    "Ledger",
    "MarginConfig",
    "MarginModel",
    "PositionView",
    "VenueConfig",
    "check_brackets",
    "equity_frame",
    "fee_nb",
    "fills_frame",
    "instrument_params",
    "instrument_row",
    "load_venue_config",
    "prepare_series",
    "trades_frame",
]
