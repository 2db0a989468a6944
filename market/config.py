"""The market-data pipeline's configuration (configs/market.yaml, configs/demo.yaml).

Each sub-package owns its own model (bars: `BarSpec`, features: `FeatureConfig`, quality:
`QualityConfig`, synthesis: `SynthConfig`); this module only composes them.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from core.config import FrozenConfig, load_yaml_config
from market.bars.spec import BarSpec, LargeTradeConfig, TimeBars
from market.features.config import FeatureConfig
from market.quality import QualityConfig
from market.synth.config import SynthConfig


class StoreConfig(FrozenConfig):
    root: Path = Path("var/store")


class HigherTimeframe(FrozenConfig):
    """Features of time bars of `every` joined onto the base bars, using only closed bars."""

    every: str = "1h"
    prefix: str = "h1_"
    features: FeatureConfig = FeatureConfig(zscore_features=(), zscore_windows=())


class PipelineConfig(FrozenConfig):
    """Trades → quality → catalog → bars → features (+ a higher-timeframe join)."""

    store: StoreConfig = StoreConfig()
    quality: QualityConfig = QualityConfig()
    bars: BarSpec = Field(default_factory=lambda: TimeBars(every="1m"))
    large_trades: LargeTradeConfig = LargeTradeConfig()
    features: FeatureConfig = FeatureConfig()
    higher_timeframe: HigherTimeframe | None = HigherTimeframe()


class DemoMarket(FrozenConfig):
    """One synthetic market of the demo; `bars` overrides the pipeline's bar spec for it (bar
    thresholds are in the symbol's own units, so each symbol usually needs its own)."""

    synth: SynthConfig
    bars: BarSpec | None = None


class DemoConfig(FrozenConfig):
    """`python -m market demo`: a seeded synthetic market through the whole pipeline."""

    out_dir: Path = Path("var/demo")
    markets: tuple[DemoMarket, ...] = Field(min_length=1)
    pipeline: PipelineConfig = PipelineConfig()

    @field_validator("markets")
    @classmethod
    def _unique_symbols(cls, v: tuple[DemoMarket, ...]) -> tuple[DemoMarket, ...]:
        names = [m.synth.symbol for m in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"each synthetic market needs its own symbol; repeated: {dupes}")
        return v


def load_pipeline_config(path: str | Path) -> PipelineConfig:
    return load_yaml_config(PipelineConfig, path)


def load_demo_config(path: str | Path) -> DemoConfig:
    return load_yaml_config(DemoConfig, path)
