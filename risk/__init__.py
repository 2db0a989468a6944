"""Risk layer: sizing, half-Kelly, three-layer stops, account rules and the trading state.

Every decision is a numba kernel (`*_nb`) over float64/int64 parameter and state arrays, used by the
backtest loop directly and by live code through the thin wrapper classes exported here. Pure: no
I/O, no clock (timestamps are arguments, int64 ns UTC). See docs/risk.md.
"""

from risk.gate import EntryVerdict, RiskArrays, RiskConfig, RiskEngine, load_risk_config, new_arrays
from risk.kelly import HalfKelly, KellyConfig
from risk.rules import (
    ConsecutiveLosses, ConsecutiveLossesConfig, DailyLossConfig, DailyLossLimit, DrawdownThrottle,
    DrawdownThrottleConfig, EntryThrottle, EntryThrottleConfig, FeeHurdle, FeeHurdleConfig, LiquidityPause,
    LiquidityPauseConfig,
)
from risk.sizing import Sizer, SizingConfig
from risk.state import StateChange, TradingStateConfig, TradingStateMachine
from risk.stops import PositionStops, StopConfig

__all__ = [
    "ConsecutiveLosses", "ConsecutiveLossesConfig", "DailyLossConfig", "DailyLossLimit", "DrawdownThrottle",
    "DrawdownThrottleConfig", "EntryThrottle", "EntryThrottleConfig", "EntryVerdict", "FeeHurdle",
    "FeeHurdleConfig", "HalfKelly", "KellyConfig", "LiquidityPause", "LiquidityPauseConfig", "PositionStops",
    "RiskArrays", "RiskConfig", "RiskEngine", "Sizer", "SizingConfig", "StateChange", "StopConfig",
    "TradingStateConfig", "TradingStateMachine", "load_risk_config", "new_arrays",
]
