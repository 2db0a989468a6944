"""Causal bar features: one engine for batch and streaming, plus multi-timeframe joins.

    from market.features import FeatureConfig, FeatureEngine, compute_features
    feats = compute_features(bars)                       # batch
    engine = FeatureEngine(cfg); engine.update(new_bars) # streaming, bit-identical to batch

See docs/features.md for every column's formula, parameters, warm-up and NaN rules.
"""

from market.features.config import FeatureConfig, feature_warmups
from market.features.engine import FeatureEngine, compute_features
from market.features.mtf import HigherTimeframeJoiner, join_higher_timeframe

__all__ = [
    "FeatureConfig",
    "FeatureEngine",
    "HigherTimeframeJoiner",
    "compute_features",
    "feature_warmups",
    "join_higher_timeframe",
]
