"""Synthetic markets: the project's own seeded fixtures.

- `generate_trades(SynthConfig)`: a realistic, seeded, fast aggregate-trade generator (clustered
  Hawkes arrivals with a daily cycle, heavy-tailed sizes, regime-switching volatility, persistent
  order flow with price impact). `generate_market` also returns the regime path.
- `synthesize_from_klines(klines, seed=...)`: trades that reproduce real 1m klines exactly
  (OHLC, count, volume, taker-buy volume) in integer tick/lot units.
- `provenance(...)`: the metadata the catalog stores with synthetic data.

See docs/synthesis.md.
"""

from market.synth.config import FlowConfig, RegimeConfig, SizeConfig, SynthConfig
from market.synth.from_klines import INFEASIBLE_REASONS, KlineSynthesis, synthesize_from_klines
from market.synth.generator import SyntheticMarket, generate_market, generate_trades
from market.synth.provenance import SYNTHETIC_PROVENANCE, provenance

__all__ = [
    "FlowConfig",
    "INFEASIBLE_REASONS",
    "KlineSynthesis",
    "RegimeConfig",
    "SYNTHETIC_PROVENANCE",
    "SizeConfig",
    "SynthConfig",
    "SyntheticMarket",
    "generate_market",
    "generate_trades",
    "provenance",
    "synthesize_from_klines",
]
