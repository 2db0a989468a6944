"""Account rules, each a small unit with its own config, state layout and `_nb` kernels, composed
by `risk.gate`: daily loss limit, consecutive losses, drawdown throttle, liquidity pause, entry
throttle and fee hurdle."""

from risk.rules.consecutive_losses import ConsecutiveLosses, ConsecutiveLossesConfig
from risk.rules.daily_loss import DailyLossConfig, DailyLossLimit
from risk.rules.drawdown import DrawdownThrottle, DrawdownThrottleConfig
from risk.rules.entry_throttle import EntryThrottle, EntryThrottleConfig
from risk.rules.fee_hurdle import FeeHurdle, FeeHurdleConfig
from risk.rules.liquidity import LiquidityPause, LiquidityPauseConfig

__all__ = [
    "ConsecutiveLosses", "ConsecutiveLossesConfig", "DailyLossConfig", "DailyLossLimit", "DrawdownThrottle",
    "DrawdownThrottleConfig", "EntryThrottle", "EntryThrottleConfig", "FeeHurdle", "FeeHurdleConfig",
    "LiquidityPause", "LiquidityPauseConfig",
]
