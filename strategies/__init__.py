"""Strategies: causal feature frames in, signal frames out (see docs/strategies.md).

Importing the package registers the built-ins: "orderflow_momentum" (A), "vwap_reversion" (B),
"orderflow_family" (A + B under the volatility-regime filter C) and "ema_cross". `strategies`
imports `core` and `market` only.
"""

from strategies.base import (
    FAMILY_SIGNAL_SCHEMA,
    MAX_STRENGTH,
    MIN_STRENGTH,
    SIGNAL_SCHEMA,
    SOURCE_A,
    SOURCE_B,
    Strategy,
    StrategyParams,
    check_feature_config,
)
from strategies.combiner import FamilyParams, OrderflowFamily
from strategies.ema_cross import EmaCross, EmaCrossParams
from strategies.orderflow_momentum import MomentumParams, OrderflowMomentum
from strategies.registry import (
    available,
    get,
    load_strategy_yaml,
    params_from_dict,
    register,
)
from strategies.vol_regime import REGIME_SCHEMA, Regime, RegimeParams, classify_regimes
from strategies.vwap_reversion import ReversionParams, VwapReversion

for _strategy in (OrderflowMomentum(), VwapReversion(), OrderflowFamily(), EmaCross()):
    register(_strategy)

__all__ = [
    "FAMILY_SIGNAL_SCHEMA",
    "MAX_STRENGTH",
    "MIN_STRENGTH",
    "REGIME_SCHEMA",
    "SIGNAL_SCHEMA",
    "SOURCE_A",
    "SOURCE_B",
    "EmaCross",
    "EmaCrossParams",
    "FamilyParams",
    "MomentumParams",
    "OrderflowFamily",
    "OrderflowMomentum",
    "Regime",
    "RegimeParams",
    "ReversionParams",
    "Strategy",
    "StrategyParams",
    "VwapReversion",
    "available",
    "check_feature_config",
    "classify_regimes",
    "get",
    "load_strategy_yaml",
    "params_from_dict",
    "register",
]
